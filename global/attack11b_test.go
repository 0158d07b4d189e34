package global_test

// Attack 11b: the fixes of 05f2e0b (late creates, ErrResigned, Elected on
// Started and after a restart, the queue read each time).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// A create of enter that was queued in go-zookeeper while the client was
// disconnected (Session still said connected) stays queued across an
// expiry (loop flushes only sent requests, and the session's hostProvider
// never reports a wrap-around, so flushUnsentRequests never runs) and is
// sent on the next session. protected.Create hands late the session read
// BEFORE the create; markStrays(before) → SweepLater(before), which returns
// at once ("gone with their session", or session == 0). The znode, owned by
// the new session, stays in the queue. Simulated here: the znode is made on
// the current session and late is told an older one (or 0).
func TestAttack11bLateCreateOnANewSession(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(cur int64) int64
	}{
		{"expired session", func(cur int64) int64 { return cur + 1 }},
		{"no session", func(int64) int64 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zkc := zktest.Shared(t)
			root := zktest.Root(t)
			raw := zkc.Connect(t)
			a := newNode(t, zkc.Addrs(), root, 4*time.Second)
			ctx := ctxT(t)
			noop := actor.PropsFromFunc(func(actor.Context) {})
			if _, err := a.Elections.RegisterCandidate(ctx, "boss", noop); err != nil {
				t.Fatal(err)
			}
			h := global.Attack11bCandidacy(a.Elections, "boss")
			if err := a.Elections.Resign(ctx, "boss"); err != nil {
				t.Fatal(err)
			}
			created, err := global.Attack11bCreateOwn(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			global.Attack11bLate(h, created, tc.before(a.Session.ID()))
			zktest.Eventually(t, 5*time.Second, func() error {
				if ok, _, err := raw.Exists(created); err != nil || ok {
					return fmt.Errorf("the late create's znode %s (owned by the live session) is still there (%v)", created, err)
				}
				return nil
			})
		})
	}
}

// Promise 3: Elected once per incarnation. The first incarnation panics on
// its Elected (delivered inside Started's invocation); the restarted one
// gets Elected from its Started, and the pb.Elected that lead sent, still
// in the mailbox, must not be handed over a second time.
func TestAttack11bElectedOncePerIncarnation(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var (
		mu   sync.Mutex
		incs [][]string // per incarnation: messages in order
	)
	done := make(chan struct{})
	var doneOnce sync.Once
	props := actor.PropsFromProducer(func() actor.Actor {
		mu.Lock()
		idx := len(incs)
		incs = append(incs, nil)
		mu.Unlock()
		return actor.ReceiveFunc(func(c actor.Context) {
			var what string
			switch c.Message().(type) {
			case *actor.Started:
				what = "Started"
			case *pb.Elected:
				what = "Elected"
			case *actor.Restarting:
				what = "Restarting"
			case string:
				what = c.Message().(string)
			default:
				return
			}
			mu.Lock()
			incs[idx] = append(incs[idx], what)
			mu.Unlock()
			if what == "Elected" && idx == 0 {
				panic("first incarnation fails on Elected")
			}
			if what == "ping" {
				doneOnce.Do(func() { close(done) })
			}
		})
	})
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", props)
	if err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, ok := a.Elections.Epoch("boss"); !ok {
			return errors.New("not leading")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(incs) < 2 {
			return fmt.Errorf("%d incarnations, want the restart", len(incs))
		}
		return nil
	})
	a.System.Root.Send(pid, "ping") // behind whatever the mailbox holds
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang detector
		t.Fatal("ping not handled")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, msgs := range incs {
		n := 0
		for _, m := range msgs {
			if m == "Elected" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("incarnation %d got Elected %d times: %v", i, n, msgs)
		}
	}
}

// Promise 3: a global that stops itself in Started. Its stop is asked for
// before the guard's Elected: the term is over before it began, and such a
// term "announces nothing" (guard's comment). Before the fix, the sent
// Elected came after Stopping (a system message) and was dropped.
func TestAttack11bStopInStartedAnnouncesNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var (
		mu   sync.Mutex
		msgs []string
	)
	stopped := make(chan struct{})
	props := actor.PropsFromFunc(func(c actor.Context) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Message().(type) {
		case *actor.Started:
			msgs = append(msgs, "Started")
			c.Stop(c.Self())
		case *pb.Elected:
			msgs = append(msgs, "Elected")
		case *actor.Stopped:
			msgs = append(msgs, "Stopped")
			close(stopped)
		}
	})
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", props); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second): // a hang detector
		t.Fatal("the global did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if m == "Elected" {
			t.Errorf("a global that stopped itself in Started was told Elected: %v", msgs)
		}
	}
}

// Promise 1: Close with no deadline, ZooKeeper silent while a create is on
// the wire: the wait for the late create and the deletes are each bounded
// (lastCtx), so Close returns within twice the request timeout; after the heal the name has one
// global (b) and nothing of a's remains.
func TestAttack11bCloseWithCreateOnABlackholedWire(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	var j journal
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	a := newNode(t, []string{proxy.Addr()}, root, 3*time.Second)
	ctx := ctxT(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	lead := j.oneRunning(t)
	session := a.Session.ID()
	proxy.DropFromTarget() // the create reaches the server; its reply does not come back
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := a.Elections.RegisterCandidate(short, "boss", j.props("a"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RegisterCandidate: %v, want DeadlineExceeded", err)
	}
	begin := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- a.Elections.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Logf("Close returned after %v: %v", time.Since(begin).Round(time.Millisecond), err)
	case <-time.After(2*a.Session.RequestTimeout() + 2*time.Second): // the bound: the wait for late, then the deletes
		t.Fatalf("Close(Background) with a create on a silent wire has not returned after %v", time.Since(begin).Round(time.Millisecond))
	}
	proxy.Restore()
	zktest.Eventually(t, 10*time.Second, func() error {
		if n := znodesOf(t, raw, root, "boss", session); len(n) != 0 {
			return fmt.Errorf("a's znodes %v remain after Close", n)
		}
		return nil
	})
	if r := j.running(); len(r) != 1 || !r[0].pid.Equal(lead.pid) {
		t.Errorf("running %v, want b's global %v alone", r, lead.pid)
	}
}

// The ErrLate wrapping must not change what callers test: for a request
// the server never answers, Do and DoLate both give DeadlineExceeded, not
// ErrNotConnected (connected), not transient; only DoLate's wraps ErrLate.
func TestAttack11bErrLateKeepsErrorKinds(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	ctx := ctxT(t)
	p := root + "/attack11b-late"
	proxy.DropFromTarget()
	fn := func(conn *zk.Conn) error {
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		return err
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	errDo := a.Session.Do(short, cluster.Op{Name: "create", Path: p}, fn)
	cancel()
	lateCalled := make(chan error, 1)
	short, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	errLate := plumbing.DoLate(short, a.Session, "create", p, func(err error) { lateCalled <- err }, fn)
	cancel()
	type kinds struct{ deadline, notConnected, transient, late bool }
	kindsOf := func(err error) kinds {
		return kinds{errors.Is(err, context.DeadlineExceeded), errors.Is(err, cluster.ErrNotConnected), zkutil.IsTransient(err), errors.Is(err, plumbing.ErrLate)}
	}
	kd, kl := kindsOf(errDo), kindsOf(errLate)
	if !kl.late || kd.late {
		t.Errorf("ErrLate: Do %v, DoLate %v; want only DoLate's", errDo, errLate)
	}
	kl.late = false
	if kd != kl || !kd.deadline {
		t.Errorf("Do: %v %+v; DoLate: %v %+v; want the same kinds, DeadlineExceeded", errDo, kd, errLate, kl)
	}
	proxy.Restore()
	select {
	case err := <-lateCalled:
		t.Logf("late: %v", err)
	case <-time.After(10 * time.Second): // a hang detector
		t.Error("late never called")
	}
}

// Promise 4 without a herd: 8 candidates, the head resigns again and
// again; each time only the new head (the successor) makes requests.
func TestAttack11bNoHerdAtTheHead(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	const n = 8
	var j journal
	nodes := make([]*node, n)
	for i := range n {
		nodes[i] = newNode(t, zkc.Addrs(), root, 4*time.Second)
		if _, err := nodes[i].Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			j.oneRunning(t)
		}
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		q, err := nodes[0].Elections.Queue(ctx, "boss")
		if err != nil || len(q) != n {
			return fmt.Errorf("queue %d, %v; want %d", len(q), err, n)
		}
		return nil
	})
	// Let every candidate settle on its watch: none has requests in flight.
	settled := func() []int64 {
		var c []int64
		zktest.Eventually(t, 10*time.Second, func() error {
			c1 := make([]int64, n)
			for i := range n {
				c1[i] = plumbing.Requests(nodes[i].Session)
			}
			c2 := make([]int64, n)
			for i := range n {
				c2[i] = plumbing.Requests(nodes[i].Session)
			}
			for i := range n {
				if c1[i] != c2[i] {
					return errors.New("requests still going")
				}
			}
			c = c2
			return nil
		})
		return c
	}
	for head := 0; head < n-2; head++ {
		before := settled()
		old := j.oneRunning(t).pid
		if err := nodes[head].Elections.Resign(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
		j.awaitOther(t, old, time.Now().Add(10*time.Second))
		after := settled()
		for i := head + 2; i < n; i++ {
			if d := after[i] - before[i]; d != 0 {
				t.Errorf("head %d resigned: candidate %d (not the successor) made %d requests", head, i, d)
			}
		}
	}
}
