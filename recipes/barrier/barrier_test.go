package barrier_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	barrierv1 "github.com/zkactor/zkactor/proto/recipes/barrier/v1"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestEnterAndLeave: with a barrier of three, nobody passes Enter before
// the third arrives, an arrival wakes no waiter, and nobody passes Leave
// before the last one leaves. Nothing is left behind.
func TestEnterAndLeave(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := barrier.Path(root, "phase")
	var (
		bs       []*barrier.Barrier
		sessions []*cluster.Session
		events   atomic.Int64
	)
	for range 3 {
		s := dial(t, zkc.Addrs(), 4*time.Second)
		sessions = append(sessions, s)
		t.Cleanup(s.OnWatchEvent(func(ev zk.Event) {
			if ev.Type != zk.EventSession {
				events.Add(1)
			}
		}))
		bs = append(bs, newBarrier(t, s, root, "phase", 3))
	}
	a := async(func() error { return bs[0].Enter(ctx) })
	waitParticipants(t, raw, dir, 1)
	b := async(func() error { return bs[1].Enter(ctx) })
	waitParticipants(t, raw, dir, 2)
	// A round trip on A's and B's sessions: a watch event B's arrival
	// caused would have reached them before the reply.
	for _, s := range sessions[:2] {
		if err := s.Do(ctx, cluster.Op{Name: "exists", Path: dir}, func(c *zk.Conn) error {
			_, _, err := c.Exists(dir)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n := events.Load(); n != 0 {
		t.Errorf("arrivals fired %d watch events among the waiters, want 0", n)
	}
	third := time.Now()
	c := async(func() error { return bs[2].Enter(ctx) })
	for i, ch := range []<-chan returned{a, b, c} {
		r := await(t, ch, 10*time.Second)
		if r.err != nil {
			t.Fatalf("Enter %d: %v", i, r.err)
		}
		if r.at.Before(third) {
			t.Errorf("Enter %d returned before the third participant arrived", i)
		}
	}
	if err := bs[0].Enter(ctx); !errors.Is(err, barrier.ErrEntered) {
		t.Errorf("Enter twice = %v, want ErrEntered", err)
	}

	a = async(func() error { return bs[0].Leave(ctx) })
	b = async(func() error { return bs[1].Leave(ctx) })
	waitParticipants(t, raw, dir, 2) // one of A and B is gone, the other (the lowest or not) waits
	last := time.Now()
	c = async(func() error { return bs[2].Leave(ctx) })
	for i, ch := range []<-chan returned{a, b, c} {
		r := await(t, ch, 10*time.Second)
		if r.err != nil {
			t.Fatalf("Leave %d: %v", i, r.err)
		}
		if r.at.Before(last) {
			t.Errorf("Leave %d returned before the last participant left", i)
		}
	}
	if got := participants(t, raw, dir); len(got) != 0 || readyExists(t, raw, dir) {
		t.Errorf("left behind: participants %v, ready %v", got, readyExists(t, raw, dir))
	}
	if err := bs[0].Leave(ctx); !errors.Is(err, barrier.ErrNotEntered) {
		t.Errorf("Leave without Enter = %v, want ErrNotEntered", err)
	}
	// The barrier can be used again.
	for i, ch := range []<-chan returned{
		async(func() error { return bs[0].Enter(ctx) }),
		async(func() error { return bs[1].Enter(ctx) }),
		async(func() error { return bs[2].Enter(ctx) }),
	} {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatalf("second round, Enter %d: %v", i, r.err)
		}
	}
	for i, ch := range []<-chan returned{
		async(func() error { return bs[0].Leave(ctx) }),
		async(func() error { return bs[1].Leave(ctx) }),
		async(func() error { return bs[2].Leave(ctx) }),
	} {
		if r := await(t, ch, 10*time.Second); r.err != nil {
			t.Fatalf("second round, Leave %d: %v", i, r.err)
		}
	}
}

func TestBadArguments(t *testing.T) {
	s := dial(t, zktest.Shared(t).Addrs(), 4*time.Second)
	if _, err := barrier.New(s, "/zkactor", "a/b", 2, barrier.Options{}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("New with a bad name = %v, want ErrBadName", err)
	}
	if _, err := barrier.New(s, "/zkactor", "ok", 0, barrier.Options{}); err == nil {
		t.Error("New with size 0 succeeded")
	}
}

// TestLeftoverReady: a ready znode left from an earlier round (its last
// leaver died) or holding garbage admits nobody new; the participant that
// completes the count renews it.
func TestLeftoverReady(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	for _, data := range [][]byte{mustMarshal(t, &barrierv1.Ready{Size: 2, LastSequence: 0}), {0xff, 0xfe, 0x01}} {
		name := "stale"
		if data[0] == 0xff {
			name = "garbage"
		}
		dir := barrier.Path(root, name)
		acl := zk.WorldACL(zk.PermAll)
		makeDir(t, raw, dir)
		if _, err := raw.Create(dir+"/ready", data, 0, acl); err != nil {
			t.Fatal(err)
		}
		// Sequence numbers start at 0 in a new directory: burn one, so
		// that the stale record's 0 is below every participant's.
		if _, err := raw.Create(dir+"/other", nil, zk.FlagSequence, acl); err != nil {
			t.Fatal(err)
		}
		x := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, name, 2)
		y := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, name, 2)
		first := async(func() error { return x.Enter(ctx) })
		waitParticipants(t, raw, dir, 1)
		second := time.Now()
		if err := y.Enter(ctx); err != nil {
			t.Fatal(err)
		}
		r := await(t, first, 10*time.Second)
		if r.err != nil || r.at.Before(second) {
			t.Errorf("%s: the first Enter returned %v at %v, before the second arrived at %v", name, r.err, r.at, second)
		}
		l := async(func() error { return x.Leave(ctx) })
		if err := y.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		if r := await(t, l, 10*time.Second); r.err != nil {
			t.Fatal(r.err)
		}
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCancelEnter: an Enter whose ctx ends returns ctx's error and takes
// its participant znode away, so it does not count.
func TestCancelEnter(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	dir := barrier.Path(root, "phase")
	b := newBarrier(t, dial(t, zkc.Addrs(), 4*time.Second), root, "phase", 2)
	ctx, cancel := context.WithCancel(ctxT(t))
	r := async(func() error { return b.Enter(ctx) })
	waitParticipants(t, raw, dir, 1)
	cancel()
	if got := await(t, r, 10*time.Second); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("cancelled Enter = %v, want context.Canceled", got.err)
	}
	// The cancelled Enter's ctx cannot carry the delete: it goes out once
	// Enter has returned (or with a stray sweep, when the create's reply
	// was cut short too).
	zktest.Eventually(t, 5*time.Second, func() error {
		if got := participants(t, raw, dir); len(got) != 0 {
			return fmt.Errorf("participants after a cancelled Enter: %v", got)
		}
		return nil
	})
}
