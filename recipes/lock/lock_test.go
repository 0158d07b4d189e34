package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	lockv1 "github.com/zkactor/zkactor/proto/recipes/lock/v1"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestLockTryLockUnlock(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	a := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	dir := lock.Path(root, "res")

	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Token() <= 0 {
		t.Errorf("token %d, want > 0", h.Token())
	}
	data, stat, err := raw.Get(h.Path())
	if err != nil {
		t.Fatalf("the held znode %s: %v", h.Path(), err)
	}
	if stat.Czxid != h.Token() {
		t.Errorf("token %d, znode's czxid %d", h.Token(), stat.Czxid)
	}
	var rec lockv1.Waiter
	if err := proto.Unmarshal(data, &rec); err != nil || rec.Name != "res" {
		t.Errorf("waiter record %v, %v", &rec, err)
	}
	// TryLock from another session fails at once and leaves nothing.
	if _, err := b.TryLock(ctx); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryLock while held = %v, want ErrLocked", err)
	}
	if got := waiters(t, raw, dir); len(got) != 1 {
		t.Errorf("waiters after a failed TryLock: %v", got)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Errorf("second Unlock = %v", err)
	}
	if got := waiters(t, raw, dir); len(got) != 0 {
		t.Errorf("waiters after Unlock: %v", got)
	}
	select {
	case <-h.Lost():
		t.Error("Lost closed after Unlock")
	default:
	}
	if h.Err() != nil {
		t.Errorf("Err after Unlock = %v", h.Err())
	}
	h2, err := b.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock of a free lock: %v", err)
	}
	if h2.Token() <= h.Token() {
		t.Errorf("tokens %d then %d: not growing", h.Token(), h2.Token())
	}
	if err := h2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBadNames(t *testing.T) {
	s := dial(t, zktest.Shared(t).Addrs(), 4*time.Second)
	for _, name := range []string{"", "a/b", "..", "x\x00y"} {
		if _, err := lock.New(s, "/zkactor", name, lock.Options{}); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("New(%q) = %v, want ErrBadName", name, err)
		}
	}
	if _, err := lock.New(s, "relative", "ok", lock.Options{}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("New with root \"relative\" = %v, want ErrBadName", err)
	}
}

// TestForeignChildrenArePassedOver: znodes other clients put in the lock's
// directory (other names, a persistent znode of the waiter shape, garbage
// data) neither block the lock nor break it.
func TestForeignChildrenArePassedOver(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	acl := zk.WorldACL(zk.PermAll)
	makeDir(t, raw, dir)
	for _, name := range []string{"garbage", "_c_0123456789abcdef0123456789abcdef-l-0000000000", "_c_nothex-l-0000000001"} {
		if _, err := raw.Create(dir+"/"+name, []byte{0xff, 0x01}, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	m := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := m.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock beside foreign znodes: %v", err)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	kids, _, err := raw.Children(dir)
	if err != nil || len(kids) != 3 {
		t.Errorf("children after Unlock = %v, %v; want the three foreign ones, untouched", kids, err)
	}
}

// TestTokensGrowInQueueOrder: waiters get the lock in the order they
// queued, each with a larger token.
func TestTokensGrowInQueueOrder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	var ms []*lock.Mutex
	for range 4 {
		ms = append(ms, newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res"))
	}
	first, err := ms[0].Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chs []<-chan result
	for i := 1; i < len(ms); i++ {
		chs = append(chs, lockAsync(ctx, ms[i]))
		waitWaiters(t, raw, dir, i+1) // queue in this order
	}
	prev := first
	for i, ch := range chs {
		if err := prev.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		r := await(t, ch, 10*time.Second)
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i+1, r.err)
		}
		if r.held.Token() <= prev.Token() {
			t.Errorf("token %d after %d", r.held.Token(), prev.Token())
		}
		prev = r.held
	}
	if err := prev.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)
}

// TestCancelWhileWaiting: a waiter whose ctx ends returns ctx's error and
// deletes its znode; the waiter behind it is not blocked.
func TestCancelWhileWaiting(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	a := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	c := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithCancel(ctx)
	bres := lockAsync(bctx, b)
	waitWaiters(t, raw, dir, 2)
	cres := lockAsync(ctx, c)
	q := waitWaiters(t, raw, dir, 3)
	cancel()
	if r := await(t, bres, 10*time.Second); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Lock = %v, %v; want context.Canceled", r.held, r.err)
	}
	if got := waiters(t, raw, dir); len(got) != 2 || got[0] != q[0] || got[1] != q[2] {
		t.Fatalf("waiters after the cancel = %v, want %v without the middle one", got, q)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, cres, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)
}

// TestLockAfterSessionClosed: a Lock on a closed session fails at once with
// ErrClosed instead of retrying until ctx ends.
func TestLockAfterSessionClosed(t *testing.T) {
	zkc := zktest.Shared(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	m := newMutex(t, s, zktest.Root(t), "res")
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.Lock(ctx); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Lock on a closed session = %v, want ErrClosed", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Lock on a closed session waited until ctx ended")
	}
}
