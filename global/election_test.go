package global_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/plumbing"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestOnlyOneOfRacingCandidatesRuns(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	nodes := make([]*node, 5)
	for i := range nodes {
		nodes[i] = newNode(t, zkc.Addrs(), root, 4*time.Second)
	}
	ctx := ctxT(t)
	var wg sync.WaitGroup
	pids := make([]*actor.PID, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid, err := n.Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint("n", i)))
			if err != nil {
				t.Error(err)
			}
			pids[i] = pid
		}()
	}
	wg.Wait()
	leader := j.oneRunning(t)
	for _, n := range nodes {
		whereis(t, n, "boss", leader.pid)
	}
	// Every RegisterCandidate answered with a PID of the queue's head at
	// its time: the leader's, or (for the ones that raced ahead of it) none
	// other than a candidate's own staged PID.
	if pids[0] == nil {
		t.Fatal("RegisterCandidate returned no PID")
	}
	if len(j.all()) != 1 {
		t.Errorf("%d globals were started, want exactly 1", len(j.all()))
	}
}

func TestFailoverElectsExactlyOneNewGlobal(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	c := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	for i, n := range []*node{a, b, c} {
		if _, err := n.Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	first := j.oneRunning(t)
	// The global exits: its candidacy ends, the next one takes over.
	var owner *node
	for _, n := range []*node{a, b, c} {
		if first.pid.Address == n.System.Address() {
			owner = n
		}
	}
	start := time.Now()
	if err := owner.System.Root.StopFuture(first.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	var second termRecord
	zktest.Eventually(t, 10*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].pid.Equal(first.pid) || r[0].epoch == 0 {
			return fmt.Errorf("want one new global with its epoch, running: %d", len(r))
		}
		second = r[0]
		return nil
	})
	t.Logf("graceful failover: new global running after %v", time.Since(start))
	if second.epoch <= first.epoch {
		t.Errorf("epoch went from %d to %d; it must grow", first.epoch, second.epoch)
	}
	for _, n := range []*node{a, b, c} {
		whereis(t, n, "boss", second.pid)
	}
	if n := len(j.all()); n != 2 {
		t.Errorf("%d globals started in all, want 2", n)
	}
	j.noOverlap(t)
}

func TestRegisterCandidateAgainLeaksNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	p1, err := a.Elections.RegisterCandidate(ctx, "solo", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	leader := j.oneRunning(t)
	if !p1.Equal(leader.pid) {
		t.Fatalf("RegisterCandidate returned %v, the global is %v", p1, leader.pid)
	}
	for range 3 {
		p, err := a.Elections.RegisterCandidate(ctx, "solo", j.props("a-again"))
		if err != nil || !p.Equal(p1) {
			t.Fatalf("again: %v, %v; want the running %v", p, err, p1)
		}
	}
	// A follower registering again keeps one znode and one staged PID.
	for range 3 {
		p, err := b.Elections.RegisterCandidate(ctx, "solo", j.props("b"))
		if err != nil || !p.Equal(p1) {
			t.Fatalf("follower: %v, %v; want the leader %v", p, err, p1)
		}
	}
	raw := zktest.Shared(t).Connect(t)
	kids, _, err := raw.Children(a.Registry.Layout().GlobalPath("solo"))
	if err != nil || len(kids) != 2 {
		t.Fatalf("candidates = %v, %v; want one per node", kids, err)
	}
	if n := len(j.all()); n != 1 {
		t.Errorf("%d globals started, want 1", n)
	}
	// The follower's latest props are the ones it runs when elected.
	if err := a.Elections.Resign(ctx, "solo"); err != nil {
		t.Fatal(err)
	}
	next := j.oneRunning(t)
	if next.node != "b" {
		t.Errorf("the new global runs %s's props", next.node)
	}
}

func TestCacheClearedWhenGlobalExits(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := b.Elections.WhereisGlobal(ctx, "lonely"); !errors.Is(err, global.ErrNotFound) {
		t.Fatalf("WhereisGlobal before any candidate = %v, want ErrNotFound", err)
	}
	pid, err := a.Elections.RegisterCandidate(ctx, "lonely", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	whereis(t, b, "lonely", pid)
	b.Settle(t) // the keeper's checks are the session's requests too
	before := plumbing.Requests(b.Session)
	for range 1000 {
		if _, err := b.Elections.WhereisGlobal(ctx, "lonely"); err != nil {
			t.Fatal(err)
		}
	}
	if n := plumbing.Requests(b.Session) - before; n != 0 {
		t.Errorf("1000 cached WhereisGlobal issued %d requests, want 0", n)
	}
	if err := a.System.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	whereis(t, b, "lonely", nil)
	whereis(t, a, "lonely", nil)
	if _, err := b.Elections.WhereisGlobal(ctx, "lonely"); !errors.Is(err, global.ErrNotFound) {
		t.Errorf("after the global exited: %v, want ErrNotFound", err)
	}
}

func TestNoHerdEffect(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	nodes := make([]*node, 20)
	for i := range nodes {
		nodes[i] = newNode(t, zkc.Addrs(), root, 4*time.Second)
		// One at a time, so the queue order is the node order.
		if _, err := nodes[i].Elections.RegisterCandidate(ctx, "herd", j.props(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	first := j.oneRunning(t)
	if first.node != "n0" {
		t.Fatalf("leader is %s, want n0", first.node)
	}
	// Let every candidate settle on its predecessor watch, and every
	// keeper finish its checks.
	for _, n := range nodes {
		n.Settle(t)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		a := make([]int64, len(nodes))
		for i, n := range nodes {
			a[i] = plumbing.Requests(n.Session)
		}
		for range 5 {
			time.Sleep(10 * time.Millisecond) // a quiet interval, not synchronisation: the check repeats
		}
		for i, n := range nodes {
			if plumbing.Requests(n.Session) != a[i] {
				return errors.New("candidates still busy")
			}
		}
		return nil
	})
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i] = plumbing.Requests(n.Session)
	}
	if err := nodes[0].Elections.Resign(ctx, "herd"); err != nil {
		t.Fatal(err)
	}
	second := j.oneRunning(t)
	if second.node != "n1" {
		t.Fatalf("after n0 resigned the leader is %s, want n1", second.node)
	}
	woken := 0
	for i := 2; i < len(nodes); i++ {
		if d := plumbing.Requests(nodes[i].Session) - before[i]; d != 0 {
			woken++
			t.Errorf("candidate n%d issued %d requests when n0 left: herd effect", i, d)
		}
	}
	// The successor watched the leader, the first of the queue it read:
	// it leads without reading the queue again.
	if d := plumbing.Requests(nodes[1].Session) - before[1]; d > 1 {
		t.Errorf("the successor issued %d requests, want at most 1", d)
	}
	t.Logf("leader exit woke %d of %d waiting candidates besides the successor", woken, len(nodes)-2)
}

func TestEpochGrowsAcrossFailovers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	var epochs []int64
	for i := range 11 {
		for _, n := range []*node{a, b} {
			if _, err := n.Elections.RegisterCandidate(ctx, "epoch", j.props(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		r := j.oneRunning(t)
		epochs = append(epochs, r.epoch)
		if first, ok := r.first.(*pb.Elected); !ok || first.Epoch != r.epoch {
			t.Errorf("term %d: first message %v, want Elected", i, r.first)
		}
		owner := a
		if r.pid.Address == b.System.Address() {
			owner = b
		}
		if err := owner.System.Root.StopFuture(r.pid).Wait(); err != nil {
			t.Fatal(err)
		}
		zktest.Eventually(t, 10*time.Second, func() error {
			if rs := j.running(); len(rs) == 1 && rs[0].pid.Equal(r.pid) {
				return errors.New("old global still running")
			}
			return nil
		})
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i] <= epochs[i-1] {
			t.Errorf("epoch did not grow: %v", epochs)
			break
		}
	}
	j.noOverlap(t)
}

func TestMessagesBeforeStartWait(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	pid, err := a.Elections.RegisterCandidate(ctx, "eager", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	// Sent at once, perhaps before the actor is spawned.
	for i := range 200 {
		a.System.Root.Send(pid, &pb.PID{Id: fmt.Sprint(i)})
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		terms := j.all()
		if len(terms) != 1 || len(terms[0].handled) != 200 {
			return fmt.Errorf("terms %d, handled %v", len(terms), terms)
		}
		return nil
	})
	r := j.all()[0]
	if _, ok := r.first.(*pb.Elected); !ok {
		t.Errorf("first message %T, want *Elected", r.first)
	}
	for i, id := range r.handled {
		if id != fmt.Sprint(i) {
			t.Fatalf("message %d is %s: order lost", i, id)
		}
	}
}

func TestBadNameAndClosed(t *testing.T) {
	zkc := zktest.Shared(t)
	a := newNode(t, zkc.Addrs(), zktest.Root(t), 4*time.Second)
	ctx := ctxT(t)
	var j journal
	if _, err := a.Elections.RegisterCandidate(ctx, "a/b", j.props("x")); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("RegisterCandidate(\"a/b\") = %v, want ErrBadName", err)
	}
	if _, err := a.Elections.WhereisGlobal(ctx, ""); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("WhereisGlobal(\"\") = %v, want ErrBadName", err)
	}
	if err := a.Elections.Resign(ctx, "never"); !errors.Is(err, global.ErrNotCandidate) {
		t.Errorf("Resign of no candidacy = %v, want ErrNotCandidate", err)
	}
	// Closed: every call says so, and nothing is left running.
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("x")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	if err := a.Elections.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := j.running(); len(r) != 0 {
		t.Errorf("%d globals run after Close", len(r))
	}
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("x")); !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("RegisterCandidate after Close = %v, want ErrClosed", err)
	}
	if err := a.Elections.Resign(ctx, "boss"); !errors.Is(err, global.ErrNotCandidate) {
		t.Errorf("Resign after Close = %v, want ErrNotCandidate", err)
	}
	if _, ok := <-a.Elections.Observe(ctx, "boss"); ok {
		t.Error("Observe after Close delivered a leader; want a closed channel")
	}
	if err := a.Elections.Close(ctx); err != nil {
		t.Errorf("a second Close = %v, want nil", err)
	}
}
