package subscription_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestSnapshotThenJoinsAndLeavesInOrder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	var pids []*actor.PID
	for i := range 3 {
		pid := a.Spawn(t)
		if err := a.Registry.Register(ctx, "workers", pid, map[string]string{"i": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	cancel, err := subs.Subscribe(ctx, "workers", pid)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	zktest.Eventually(t, 10*time.Second, func() error {
		if rec.count() == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	snap := rec.messages()[0].(*subv1.Snapshot)
	if snap.Service != "workers" || len(snap.Members) != 3 {
		t.Fatalf("snapshot of %q with %d members, want workers with 3", snap.Service, len(snap.Members))
	}
	for i, m := range snap.Members {
		// Registered one after the other: creation order is registration order.
		if got := m.GetRegistration().GetMetadata()["i"]; got != fmt.Sprint(i) {
			t.Errorf("snapshot member %d has metadata i=%q", i, got)
		}
		if got := m.GetRegistration().GetPid().GetId(); got != pids[i].Id {
			t.Errorf("snapshot member %d is %s, want %s", i, got, pids[i].Id)
		}
	}

	for i := 3; i < 6; i++ {
		pid := a.Spawn(t)
		if err := a.Registry.Register(ctx, "workers", pid, map[string]string{"i": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Registry.Unregister(ctx, "workers", pids[0]); err != nil {
		t.Fatal(err)
	}
	conn := zkc.Connect(t)
	converges(t, rec, conn, a.Registry.Layout().ServicePath("workers"), isRegistration)

	var joined []string
	var lastCzxid int64
	for _, m := range rec.messages()[1:] {
		switch m := m.(type) {
		case *subv1.Joined:
			joined = append(joined, m.Member.GetRegistration().GetMetadata()["i"])
			if m.Member.Czxid < lastCzxid {
				t.Errorf("join of czxid %d after one of %d", m.Member.Czxid, lastCzxid)
			}
			lastCzxid = m.Member.Czxid
		case *subv1.Left:
			if got := m.Member.GetRegistration().GetMetadata()["i"]; got != "0" {
				t.Errorf("left: member i=%q, want 0", got)
			}
		}
	}
	if strings.Join(joined, ",") != "3,4,5" {
		t.Errorf("joins in order %v, want 3,4,5", joined)
	}
	t.Logf("messages: %s", kinds(rec.messages()))
}

func TestBadNameRefused(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	subs := subscriptions(t, n, subscription.Options{})
	_, pid := newRecorder(n)
	for _, name := range []string{"", "a/b", "..", "bad\x00name"} {
		if _, err := subs.Subscribe(ctxT(t), name, pid); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("Subscribe(%q) = %v, want ErrBadName", name, err)
		}
	}
	if _, err := subs.Subscribe(ctxT(t), "ok", nil); err == nil {
		t.Error("Subscribe with a nil PID succeeded")
	}
	if got := subscription.Active(subs); got != 0 {
		t.Errorf("%d subscriptions active after refused ones", got)
	}
}

// debugLog records the Debug records that name a path.
type debugLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *debugLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *debugLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level != slog.LevelDebug {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "path" {
			l.mu.Lock()
			l.paths = append(l.paths, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}
func (l *debugLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *debugLog) WithGroup(string) slog.Handler      { return l }

func (l *debugLog) logged(path string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.paths {
		if p == path {
			return true
		}
	}
	return false
}

func TestGarbageChildrenSkippedWithDebugLog(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	dir := a.Registry.Layout().ServicePath("mixed")
	acl := zk.WorldACL(zk.PermAll)
	garbage := func(name string, data []byte) {
		t.Helper()
		if _, err := zkutil.CreateWithParents(conn, root, dir+"/"+name, data, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	register := func() {
		t.Helper()
		if err := a.Registry.Register(ctx, "mixed", a.Spawn(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	garbage("junk", []byte("not a registration"))
	register()
	log := &debugLog{}
	subs := subscriptions(t, b, subscription.Options{Logger: slog.New(log)})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctx, "mixed", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)
	if !log.logged(dir + "/junk") {
		t.Errorf("no Debug log names %s/junk", dir)
	}
	garbage("empty", nil)
	garbage("pidless", []byte{0x0a, 0x01, 'x'}) // a Registration with a name and no PID
	register()
	if err := conn.Delete(dir+"/junk", -1); err != nil {
		t.Fatal(err)
	}
	register()
	converges(t, rec, conn, dir, isRegistration)
	for _, p := range []string{"empty", "pidless"} {
		if !log.logged(dir + "/" + p) {
			t.Errorf("no Debug log names %s/%s", dir, p)
		}
	}
	if got := kinds(rec.messages()); got != "S1 J J" {
		t.Errorf("messages %q, want \"S1 J J\" (garbage neither joins nor leaves)", got)
	}
}

func TestSubscriptionEndsWithActorCancelAndCtx(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	subs := subscriptions(t, b, subscription.Options{})
	active := func(want int) {
		t.Helper()
		zktest.Eventually(t, 10*time.Second, func() error {
			if got := subscription.Active(subs); got != want {
				return fmt.Errorf("%d subscriptions active, want %d", got, want)
			}
			return nil
		})
	}

	// The subscribing actor stops.
	_, stopped := newRecorder(b)
	if _, err := subs.Subscribe(ctx, "s", stopped); err != nil {
		t.Fatal(err)
	}
	// Canceled by cancel.
	canceled, pid := newRecorder(b)
	cancel, err := subs.Subscribe(ctx, "s", pid)
	if err != nil {
		t.Fatal(err)
	}
	// Ended by its ctx.
	subCtx, endCtx := context.WithCancel(ctx)
	ctxEnded, pid2 := newRecorder(b)
	if _, err := subs.Subscribe(subCtx, "s", pid2); err != nil {
		t.Fatal(err)
	}
	// Goes on: the barrier that shows a later change has been delivered.
	barrier, pid3 := newRecorder(b)
	if _, err := subs.Subscribe(ctx, "s", pid3); err != nil {
		t.Fatal(err)
	}
	active(4)
	b.System.Root.Stop(stopped)
	active(3)
	cancel()
	cancel() // idempotent
	active(2)
	endCtx()
	active(1)

	if err := a.Registry.Register(ctx, "s", a.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if got := kinds(barrier.messages()); got != "S0 J" {
			return fmt.Errorf("barrier has %q", got)
		}
		return nil
	})
	for _, r := range []*recorder{canceled, ctxEnded} {
		if got := kinds(r.messages()); got != "S0" {
			t.Errorf("an ended subscription's receiver has %q, want only the snapshot", got)
		}
	}
}

func TestNodesJoinAndLeave(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	subs := subscriptions(t, a, subscription.Options{})
	rec, pid := newRecorder(a)
	if _, err := subs.SubscribeNodes(ctx, pid); err != nil {
		t.Fatal(err)
	}
	c := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	converges(t, rec, conn, a.Registry.Layout().NodesPath(), isNode)
	c.Stop()
	converges(t, rec, conn, a.Registry.Layout().NodesPath(), isNode)
	msgs := rec.messages()
	if got := kinds(msgs); got != "S1 J L" {
		t.Fatalf("messages %q, want \"S1 J L\"", got)
	}
	if s := msgs[0].(*subv1.Snapshot); s.Service != "" || s.Members[0].GetNode().GetId() != a.Registry.NodeID() {
		t.Errorf("snapshot %v, want node %s", s, a.Registry.NodeID())
	}
	j := msgs[1].(*subv1.Joined).Member.GetNode()
	if j.GetId() != c.Registry.NodeID() || j.GetAddress() != c.System.Address() {
		t.Errorf("joined node %v, want %s at %s", j, c.Registry.NodeID(), c.System.Address())
	}
	if l := msgs[2].(*subv1.Left).Member.GetNode(); l.GetId() != c.Registry.NodeID() {
		t.Errorf("left node %v, want %s", l, c.Registry.NodeID())
	}
}
