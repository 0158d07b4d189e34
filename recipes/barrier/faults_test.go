package barrier_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestDeadParticipantDoesNotCount: of a barrier of three, one participant
// dies while waiting to enter: one is closed (its znode goes at once), one
// is cut off for good (its znode goes when the servers expire its
// session). Neither counts: the two survivors and a newcomer wait until a
// third live participant arrives.
func TestDeadParticipantDoesNotCount(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	a := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	closed := dial(t, zkc.Addrs(), 4*time.Second)
	d := newBarrier(t, closed, root, "phase", 3)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	e := newBarrier(t, dial(t, []string{proxy.Addr()}, time.Second), root, "phase", 3)

	ra := async(func() error { return a.Enter(ctx) })
	waitParticipants(t, raw, dir, 1)
	rd := async(func() error { return d.Enter(ctx) })
	waitParticipants(t, raw, dir, 2)
	closed.Close()
	if r := await(t, rd, 10*time.Second); !errors.Is(r.err, cluster.ErrClosed) {
		t.Errorf("Enter on a session closed meanwhile = %v, want ErrClosed", r.err)
	}
	waitParticipants(t, raw, dir, 1)
	ectx, ecancel := context.WithCancel(ctx)
	defer ecancel()
	re := async(func() error { return e.Enter(ectx) })
	waitParticipants(t, raw, dir, 2)
	proxy.Blackhole() // e is gone for good: its session expires on the servers
	waitParticipants(t, raw, dir, 1)

	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	rb := async(func() error { return b.Enter(ctx) })
	waitParticipants(t, raw, dir, 2) // a and b: two of three, nobody passes
	if readyExists(t, raw, dir) {
		t.Fatal("the barrier opened with two live participants of three")
	}
	third := time.Now()
	c := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	if err := c.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []<-chan returned{ra, rb} {
		r := await(t, ch, 10*time.Second)
		if r.err != nil || r.at.Before(third) {
			t.Errorf("Enter %d = %v at %v; the third live participant arrived at %v", i, r.err, r.at, third)
		}
	}
	ecancel()
	if r := await(t, re, 10*time.Second); !errors.Is(r.err, context.Canceled) {
		t.Errorf("the cut-off participant's Enter = %v, want context.Canceled", r.err)
	}
	leaveAll(t, ctx, a, b, c)
	waitParticipants(t, raw, dir, 0)
}

// TestExpiryWhileEntering: a participant's session expires while it waits
// to enter; it arrives again on its new session (its old znode went with
// the old one), and counts once.
func TestExpiryWhileEntering(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	as := dial(t, []string{proxy.Addr()}, time.Second)
	a := newBarrier(t, as, root, "phase", 3)
	ra := async(func() error { return a.Enter(ctx) })
	waitParticipants(t, raw, dir, 1)
	old := participants(t, raw, dir)[0]
	zkc.ExpireSession(t, proxy, as.ID())
	zktest.Eventually(t, 10*time.Second, func() error {
		got := participants(t, raw, dir)
		if len(got) != 1 || got[0] == old {
			return errors.New("A has not arrived again on its new session")
		}
		return nil
	})
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	rb := async(func() error { return b.Enter(ctx) })
	waitParticipants(t, raw, dir, 2)
	if readyExists(t, raw, dir) {
		t.Fatal("the barrier opened with two participants of three (A counted twice?)")
	}
	c := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	if err := c.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []<-chan returned{ra, rb} {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatalf("Enter %d: %v", i, r.err)
		}
	}
	leaveAll(t, ctx, a, b, c)
	waitParticipants(t, raw, dir, 0)
}

// TestExpiryWhileInside: a participant's session expires after it entered.
// Its znode goes with the session, so the others' Leave does not wait for
// it; its own Leave waits only for the others.
func TestExpiryWhileInside(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	as := dial(t, []string{proxy.Addr()}, time.Second)
	a := newBarrier(t, as, root, "phase", 3)
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	c := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 3)
	for i, ch := range []<-chan returned{
		async(func() error { return a.Enter(ctx) }),
		async(func() error { return b.Enter(ctx) }),
		async(func() error { return c.Enter(ctx) }),
	} {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatalf("Enter %d: %v", i, r.err)
		}
	}
	zkc.ExpireSession(t, proxy, as.ID())
	waitParticipants(t, raw, dir, 2)
	leaveAll(t, ctx, b, c) // without A
	if err := a.Leave(ctx); err != nil {
		t.Fatalf("Leave after the session expired inside: %v", err)
	}
	if readyExists(t, raw, dir) {
		t.Error("ready left behind")
	}
}

// TestConnectionLostDuringCreate: the create reaches the server but its
// reply is lost and the connection drops; Enter finds its own znode by its
// GUID and counts once. An Enter that gave up leaves no orphan.
func TestConnectionLostDuringCreate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newBarrier(t, dial(t, []string{proxy.Addr()}, 4*time.Second), root, "phase", 2)
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	makeDir(t, raw, dir) // so that the create under test is the participant's

	// 1. A gave up before the reply: its znode is swept once the session
	// is back.
	proxy.DropFromTarget()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := a.Enter(short); err == nil {
		t.Fatal("Enter with its replies lost succeeded")
	}
	cancel()
	waitParticipants(t, raw, dir, 1) // applied by the server
	proxy.Restore()
	waitParticipants(t, raw, dir, 0)

	// 2. A is still within its ctx when the connection comes back.
	proxy.DropFromTarget()
	ra := async(func() error { return a.Enter(ctx) })
	waitParticipants(t, raw, dir, 1)
	proxy.Restore()
	// Had A made a second znode, B would pass with A's two.
	if err := b.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	if r := await(t, ra, 10*time.Second); r.err != nil {
		t.Fatal(r.err)
	}
	if got := participants(t, raw, dir); len(got) != 2 {
		t.Errorf("participants %v, want A's one and B's", got)
	}
	leaveAll(t, ctx, a, b)
	waitParticipants(t, raw, dir, 0)
}

// leaveAll makes every participant leave at once and waits until all have.
func leaveAll(t testing.TB, ctx context.Context, bs ...*barrier.Barrier) {
	t.Helper()
	var chs []<-chan returned
	for _, b := range bs {
		chs = append(chs, async(func() error { return b.Leave(ctx) }))
	}
	for i, ch := range chs {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatalf("Leave %d: %v", i, r.err)
		}
	}
}

// TestEnterGivenUpDuringARead: Enter's ctx ends while its read of ready is
// on the wire (the servers' replies to A are held back: it hears the
// barrier open late, asks, and gives up before the answer). Enter returns
// ctx's error and takes its znode away; the read completes later. That
// read must write nothing open returns: the chaos checker's -race run
// (seed 12, class cut) reported the abandoned read and open's return both
// writing the watch result. Here go-zookeeper's request queue orders the
// read's completion after the abandon's delete, which gives the race
// detector a happens-before, so this test does not reproduce that report;
// it pins down the path and its outcome.
func TestEnterGivenUpDuringARead(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	as := dial(t, []string{proxy.Addr()}, 4*time.Second)
	a := newBarrier(t, as, root, "phase", 2)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	ra := async(func() error { return a.Enter(actx) })
	last := int64(-1)
	zktest.Eventually(t, 10*time.Second, func() error { // A waits on ready's watch, idle
		wchp, err := zkc.FourLetterWord(0, "wchp")
		if err != nil || !strings.Contains(wchp, dir+"/ready") {
			return fmt.Errorf("no watch on %s/ready: %q, %v", dir, wchp, err)
		}
		if n := plumbing.Requests(as); n != last {
			last = n
			return fmt.Errorf("A has made %d requests, and may be making more", n)
		}
		return nil
	})
	proxy.Delay(time.Second)

	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	if err := b.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	// A hears of ready's creation a second later and reads it: a request
	// whose answer takes another second.
	sent := plumbing.Requests(as)
	zktest.Eventually(t, 10*time.Second, func() error {
		if plumbing.Requests(as) == sent {
			return errors.New("A has not asked yet")
		}
		return nil
	})
	cancel()
	// Enter deletes A's znode before it returns: its answer comes after the
	// read's, in order.
	if r := await(t, ra, 10*time.Second); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Enter given up = %v, want context.Canceled", r.err)
	}
	proxy.Restore()
	waitParticipants(t, raw, dir, 1)
	leaveAll(t, ctx, b)
}
