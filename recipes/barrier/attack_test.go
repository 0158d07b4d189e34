package barrier_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/zktest"
)

// fakeParticipant is a participant-shaped name prefix that no Barrier uses.
const fakeParticipant = "/_c_0123456789abcdef0123456789abcdef-p-"

// TestAttackPersistentParticipantDoesNotCount: a persistent znode of a
// participant's shape has no session behind it: Leave passes it over, and
// Enter must not count it either, else a barrier of two opens with one live
// participant.
func TestAttackPersistentParticipantDoesNotCount(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	dir := barrier.Path(root, "phase")
	makeDir(t, raw, dir)
	if _, err := raw.Create(dir+fakeParticipant, nil, zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	a := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	ctx, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
	defer cancel()
	if err := a.Enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter with one live participant of two = %v, want the deadline (ready exists: %v)", err, readyExists(t, raw, dir))
	}
	if readyExists(t, raw, dir) {
		t.Error("the barrier opened with one live participant of two")
	}

	// Two live participants pass, and the persistent one does not hold up
	// their Leave.
	ctx = ctxT(t)
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	c := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	rb := async(func() error { return b.Enter(ctx) })
	if err := c.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	if r := await(t, rb, 10*time.Second); r.err != nil {
		t.Fatal(r.err)
	}
	leaveAll(t, ctx, b, c)
	waitParticipants(t, raw, dir, 1) // the persistent one, left alone
}

// TestAttackForeignReadyAdmitsNobody: a ready znode that someone other
// than a participant creates while a participant waits (garbage, or an
// empty record whose last_sequence 0 is the first participant's sequence
// in a new directory) admits nobody: the documentation promises so, and
// a waiter woken by its creation must read it before passing.
func TestAttackForeignReadyAdmitsNobody(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	for name, data := range map[string][]byte{"garbage": {0xff, 0xfe, 0x01}, "empty": nil} {
		t.Run(name, func(t *testing.T) {
			dir := barrier.Path(root, name)
			makeDir(t, raw, dir)
			a := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, name, 2)
			ctx, cancel := context.WithTimeout(ctxT(t), 3*time.Second)
			defer cancel()
			ra := async(func() error { return a.Enter(ctx) })
			waitParticipants(t, raw, dir, 1)
			if _, err := raw.Create(dir+"/ready", data, 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
			if r := await(t, ra, 10*time.Second); !errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("Enter alone of two, after a foreign ready appeared = %v, want the deadline", r.err)
			}
		})
	}
}

// TestAttackUnwritableReadyIsRefused: a ready znode this session may read
// but not write (another client's ACL) cannot be renewed. Enter must
// report the refusal (zk.ErrNoAuth) and take its znode away, not retry the
// write in a loop with no pause until ctx ends.
func TestAttackUnwritableReadyIsRefused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	dir := barrier.Path(root, "phase")
	makeDir(t, raw, dir)
	if _, err := raw.Create(dir+"/ready", []byte{0xff, 0xfe, 0x01}, 0, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Delete(dir+"/ready", -1) })
	a := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 1)
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	if err := a.Enter(ctx); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("Enter against a ready it may not write = %v, want zk.ErrNoAuth", err)
	}
	waitParticipants(t, raw, dir, 0)
}

// TestAttackUnreadableParticipantDoesNotStrandLeave: Leave waits on the
// lowest participant's znode. One created by a client whose ACL refuses
// this session a read cannot be watched (the server sets no watch on a
// refused read, and delivers no event to an exists watch on it): Leave
// must not wait on a watch that never fires, and must end once it goes.
func TestAttackUnreadableParticipantDoesNotStrandLeave(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	other := zkc.Connect(t)
	dir := barrier.Path(root, "phase")
	makeDir(t, raw, dir)
	// The lowest participant, on a raw session, that nobody may read.
	p, err := other.Create(dir+fakeParticipant, nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAdmin))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	a := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	ra := async(func() error { return a.Enter(ctx) })
	waitParticipants(t, raw, dir, 2)
	if err := b.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	if r := await(t, ra, 10*time.Second); r.err != nil {
		t.Fatal(r.err)
	}
	// a and b leave (their znodes go) and wait for the lowest, the raw one.
	la := async(func() error { return a.Leave(ctx) })
	lb := async(func() error { return b.Leave(ctx) })
	waitParticipants(t, raw, dir, 1)
	if err := other.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	for _, l := range []<-chan returned{la, lb} {
		if r := await(t, l, 10*time.Second); r.err != nil {
			t.Fatal(r.err)
		}
	}
	waitParticipants(t, raw, dir, 0)
}

// TestAttackNewBadArguments: a nil session, and a size that Ready's int32
// cannot hold, are refused by New, not left to the first Enter.
func TestAttackNewBadArguments(t *testing.T) {
	if b, err := barrier.New(nil, "/zkactor", "phase", 2, barrier.Options{}); err == nil {
		t.Errorf("New without a session = %v, nil", b)
	}
	s := dial(t, zktest.Shared(t).Addrs(), 4*time.Second)
	if b, err := barrier.New(s, "/zkactor", "phase", math.MaxInt32+1, barrier.Options{}); err == nil {
		t.Errorf("New with size %d = %v, nil", math.MaxInt32+1, b)
	}
}
