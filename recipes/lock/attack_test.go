package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/test/zktest"
)

// fakeWaiter is a waiter-shaped name prefix that no Mutex uses.
const fakeWaiter = "/_c_0123456789abcdef0123456789abcdef-l-"

// TestAttackUnlistableDirIsRefused: a lock directory this session may
// create in but not list (another identity's ACL) can never be waited in.
// Lock must report the refusal (zk.ErrNoAuth) and take its znode away,
// not retry the listing until ctx ends (forever, for a ctx without one).
func TestAttackUnlistableDirIsRefused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	if err := raw.AddAuth("digest", []byte("attack:secret")); err != nil {
		t.Fatal(err)
	}
	dir := lock.Path(root, "res")
	makeDir(t, raw, root+"/locks")
	acl := append(zk.DigestACL(zk.PermAll, "attack", "secret"), zk.WorldACL(zk.PermCreate|zk.PermDelete)...)
	if _, err := raw.Create(dir, nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	m := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	for _, try := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
		var err error
		if try {
			_, err = m.TryLock(ctx)
		} else {
			_, err = m.Lock(ctx)
		}
		cancel()
		if !errors.Is(err, zk.ErrNoAuth) {
			t.Fatalf("Lock (try %v) in a directory it may not list = %v, want zk.ErrNoAuth", try, err)
		}
		waitWaiters(t, raw, dir, 0)
	}
}

// TestAttackUnreadablePredecessor: a live predecessor this session may not
// read (a foreign client's ACL) sets no watch, and the server would send
// no event on it to an exists watch either: Lock must still take the lock
// once it goes, not wait for a wake-up that never comes.
func TestAttackUnreadablePredecessor(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	other := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	makeDir(t, raw, dir)
	p, err := other.Create(dir+fakeWaiter, nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAdmin))
	if err != nil {
		t.Fatal(err)
	}
	m := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	if _, err := m.TryLock(ctx); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryLock behind a live foreign waiter = %v, want ErrLocked", err)
	}
	res := lockAsync(ctx, m)
	waitWaiters(t, raw, dir, 2)
	if err := other.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	r := await(t, res, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)
}

// TestAttackDataWrittenIntoTheQueue: a foreign client overwrites the data
// of a waiter's znode and of the holder's with garbage. Neither is read;
// the watches fire on the change and are armed again: the waiter keeps
// its place, the holder keeps the lock (Lost stays open) and its Unlock
// hands the lock on.
func TestAttackDataWrittenIntoTheQueue(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	a := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := lockAsync(ctx, b)
	q := waitWaiters(t, raw, dir, 2)
	for range 3 {
		for _, n := range q {
			if _, err := raw.Set(dir+"/"+n, []byte{0xff, 0xfe, 0x01}, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A round trip on the holder's path: its watch events came before.
	if _, _, err := raw.Get(h.Path()); err != nil {
		t.Fatal(err)
	}
	if got := waiters(t, raw, dir); len(got) != 2 || got[0] != q[0] || got[1] != q[1] {
		t.Fatalf("waiters after the writes = %v, want %v", got, q)
	}
	select {
	case <-h.Lost():
		t.Fatalf("the holder lost the lock to a data write: %v", h.Err())
	default:
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, res, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.held.Token() <= h.Token() {
		t.Errorf("tokens %d then %d", h.Token(), r.held.Token())
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)
}

// TestAttackFollowStoppedActor: a tenure tied to an actor that has
// stopped already is released at once, and the next waiter takes over.
func TestAttackFollowStoppedActor(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	dir := lock.Path(root, "res")
	a := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := system.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := lockAsync(ctx, b)
	waitWaiters(t, raw, dir, 2)
	h.Follow(system, pid)
	r := await(t, res, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)
}

// TestAttackFollowNil: Follow with a nil PID or actor system is a caller's
// mistake; it must not crash the process later, from the goroutine that
// watches the tenure, when the lock is lost.
func TestAttackFollowNil(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	m := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Follow(system, nil)
	h.Follow(nil, system.NewLocalPID("nobody"))
	if err := raw.Delete(h.Path(), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost did not close after the znode was deleted")
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAttackNewWithoutSession: a nil session is refused by New, not left
// to panic in the first Lock.
func TestAttackNewWithoutSession(t *testing.T) {
	if m, err := lock.New(nil, "/zkactor", "res", lock.Options{}); err == nil {
		t.Fatalf("New without a session = %v, nil", m)
	}
}

// TestAttackSecondUnlockWhileUnreachable: Unlock promises an error when
// ZooKeeper cannot be reached within ctx. A second Unlock while the first
// is still trying (an actor's Follow and the caller, say) must not report
// the lock released while its znode is still there.
func TestAttackSecondUnlockWhileUnreachable(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, 4*time.Second)
	m := newMutex(t, s, root, "res")
	h, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole()
	before := plumbing.Requests(s)
	first := make(chan error, 1)
	go func() { first <- h.Unlock(ctx) }()
	zktest.Eventually(t, 10*time.Second, func() error {
		if plumbing.Requests(s) == before {
			return errors.New("the first Unlock has not sent its delete yet")
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = h.Unlock(short)
	if ok, _, xerr := raw.Exists(h.Path()); xerr != nil || ok && err == nil {
		t.Fatalf("a second Unlock while ZooKeeper is unreachable = %v with the znode still there (%v, %v)", err, ok, xerr)
	}
	proxy.Restore()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatal("the first Unlock did not return")
	}
	waitWaiters(t, raw, lock.Path(root, "res"), 0)
}
