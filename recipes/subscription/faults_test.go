package subscription_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"

	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/zktest"
)

// registerN registers n fresh actors of node m under name.
func registerN(t *testing.T, m *node, name string, n int) []*actor.PID {
	t.Helper()
	var pids []*actor.PID
	for range n {
		pid := m.Spawn(t)
		if err := m.Registry.Register(ctxT(t), name, pid, nil); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func unregister(t *testing.T, m *node, name string, pids ...*actor.PID) {
	t.Helper()
	for _, pid := range pids {
		if err := m.Registry.Unregister(ctxT(t), name, pid); err != nil {
			t.Fatal(err)
		}
	}
}

// The subscriber's sessions expire while members join and leave (the
// registry's and the subscription connection's, both behind the proxy):
// after the new session it receives exactly the difference, leaves first,
// with consecutive sequence numbers, and holds what ZooKeeper holds. A member
// that came and went during the gap is reported neither way.
func TestSubscriberSessionExpiryGetsExactlyTheDifference(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	member := newNode(t, zkc.Addrs(), root, 0)
	sub := newNode(t, []string{proxy.Addr()}, root, time.Second)
	conn := zkc.Connect(t)
	dir := member.Registry.Layout().ServicePath("svc")

	pids := registerN(t, member, "svc", 4)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)

	old := sub.Session.ID()
	proxy.Blackhole() // from here the subscriber hears nothing
	unregister(t, member, "svc", pids[0], pids[1])
	registerN(t, member, "svc", 3)
	unregister(t, member, "svc", registerN(t, member, "svc", 1)...) // came and went
	zkc.ExpireSession(t, proxy, old)

	converges(t, rec, conn, dir, isRegistration)
	// The subscription's own connection (zkwatch) went through the same
	// blackhole and came back with a new session; the registry's session
	// expired too (its new one may come a little later).
	zktest.Eventually(t, 20*time.Second, func() error {
		if sub.Session.ID() == old {
			return fmt.Errorf("the subscriber's session did not change: no expiry was tested")
		}
		return nil
	})
	if got := kinds(rec.messages()); got != "S4 L L J J J" {
		t.Errorf("messages %q, want \"S4 L L J J J\"", got)
	}
}

// A cut connection that comes back within the session: the watch is set
// again on reconnect and the subscriber gets the difference.
func TestCutConnectionGetsTheDifference(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	member := newNode(t, zkc.Addrs(), root, 0)
	sub := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	conn := zkc.Connect(t)
	dir := member.Registry.Layout().ServicePath("svc")

	pids := registerN(t, member, "svc", 2)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)
	old := sub.Session.ID()
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if sub.Session.Connected() {
			return fmt.Errorf("the subscriber is still connected")
		}
		return nil
	})
	unregister(t, member, "svc", pids[0])
	registerN(t, member, "svc", 2)
	proxy.Restore()
	converges(t, rec, conn, dir, isRegistration)
	if sub.Session.ID() != old {
		t.Errorf("the subscriber's session changed: the cut outlasted it, a reconnect was not tested")
	}
	if got := kinds(rec.messages()); got != "S2 L J J" {
		t.Errorf("messages %q, want \"S2 L J J\"", got)
	}
}

// A member whose session ends without cleanup (closed, or expired as a
// killed process's does) leaves; one whose registry re-creates its
// registration on a new session joins again, as a new life (czxid).
func TestMemberSessionEndLeaves(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	closed := newNode(t, zkc.Addrs(), root, 0)
	expired := newNode(t, []string{proxy.Addr()}, root, time.Second)
	sub := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	dir := sub.Registry.Layout().ServicePath("svc")

	registerN(t, closed, "svc", 2)
	registerN(t, expired, "svc", 1)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)

	closed.Session.Close() // no Unregister, no Registry.Close: the session's end removes them
	converges(t, rec, conn, dir, isRegistration)
	if got := kinds(rec.messages()); got != "S3 L L" {
		t.Errorf("after the close: messages %q, want \"S3 L L\"", got)
	}
	before := rec.held()

	zkc.ExpireSession(t, proxy, expired.Session.ID())
	// The registry re-creates it on its new session.
	zktest.Eventually(t, 20*time.Second, func() error {
		if got := rec.held(); len(got) != 1 || maps.Equal(got, before) {
			return fmt.Errorf("holding %s, before the expiry %s", show(got), show(before))
		}
		return nil
	})
	converges(t, rec, conn, dir, isRegistration)
	after := rec.held()
	if len(before) != 1 || len(after) != 1 {
		t.Fatalf("held %s before the expiry and %s after, want one member each", show(before), show(after))
	}
	for id, cz := range after {
		if before[id] == 0 || cz <= before[id] {
			t.Errorf("after the expiry the member is %s@%d, before %s", id, cz, show(before))
		}
	}
	msgs := rec.messages()
	if got := kinds(msgs); got != "S3 L L L J" {
		t.Errorf("after the expiry: messages %q, want \"S3 L L L J\"", got)
	}
	if l, ok := msgs[3].(*subv1.Left); ok && l.Member.Czxid != before[l.Member.Id] {
		t.Errorf("left %s@%d, want the old life %s", l.Member.Id, l.Member.Czxid, show(before))
	}
}

// The subscriber's own session closed: the subscription ends.
func TestSubscriptionEndsWithItsSession(t *testing.T) {
	zkc := zktest.Shared(t)
	sub := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	subs := subscriptions(t, sub, subscription.Options{})
	_, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	sub.Session.Close()
	zktest.Eventually(t, 10*time.Second, func() error {
		if n := subscription.Active(subs); n != 0 {
			return fmt.Errorf("%d subscriptions active after the session closed", n)
		}
		return nil
	})
}

// A member re-registered with new metadata (a delete and a create under
// the same id) while the subscriber is cut off: the names alone show no
// change, the children version does, and the subscriber gets the old life's
// leave and the new life's join.
func TestReRegistrationUnderTheSameIDIsALeaveAndAJoin(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	member := newNode(t, zkc.Addrs(), root, 0)
	sub := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	conn := zkc.Connect(t)
	dir := member.Registry.Layout().ServicePath("svc")

	pids := registerN(t, member, "svc", 3)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctx, "svc", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)
	before := rec.held()
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if sub.Session.Connected() {
			return fmt.Errorf("the subscriber is still connected")
		}
		return nil
	})
	if err := member.Registry.Register(ctx, "svc", pids[1], map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	zktest.Eventually(t, 20*time.Second, func() error {
		if got := rec.held(); maps.Equal(got, before) {
			return fmt.Errorf("still holding %s", show(got))
		}
		return nil
	})
	converges(t, rec, conn, dir, isRegistration)
	msgs := rec.messages()
	if got := kinds(msgs); got != "S3 L J" {
		t.Fatalf("messages %q, want \"S3 L J\"", got)
	}
	l, j := msgs[1].(*subv1.Left).Member, msgs[2].(*subv1.Joined).Member
	if l.Id != j.Id || l.Czxid >= j.Czxid || j.GetRegistration().GetMetadata()["v"] != "2" || l.GetRegistration().GetMetadata()["v"] != "" {
		t.Errorf("left %v, joined %v: want the same id, the old life and then the new one with v=2", l, j)
	}
}

// Subscribe while ZooKeeper cannot be reached: an error within ctx, and
// nothing left running.
func TestSubscribeUnreachableFailsWithinCtx(t *testing.T) {
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sub := newNode(t, []string{proxy.Addr()}, zktest.Root(t), 4*time.Second)
	subs := subscriptions(t, sub, subscription.Options{})
	_, pid := newRecorder(sub)
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if sub.Session.Connected() {
			return fmt.Errorf("the subscriber is still connected")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	if _, err := subs.Subscribe(ctx, "svc", pid); !errors.Is(err, cluster.ErrNotConnected) {
		t.Errorf("Subscribe while cut off: %v, want ErrNotConnected", err)
	}
	if n := subscription.Active(subs); n != 0 {
		t.Errorf("%d subscriptions active after a failed Subscribe", n)
	}
	proxy.Restore()
}

// The server that the subscriptions' connection uses is killed (a
// 3-server ensemble) while members join and leave, and no other server
// can be reached until the changes are done: the connection moves to
// another server, and the subscriber gets exactly the difference.
func TestServerKilledMidStreamMovesAndSendsTheDifference(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3)
	proxies, addrs := zktest.Proxies(t, zkc)
	root := zktest.Root(t)
	member := newNode(t, zkc.Addrs(), root, 0)
	sub := newNode(t, addrs, root, 0)
	conn := zkc.Connect(t)
	dir := member.Registry.Layout().ServicePath("svc")

	pids := registerN(t, member, "svc", 4)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	converges(t, rec, conn, dir, isRegistration)
	used := slices.Index(addrs, subscription.WatchServer(subs))
	if used < 0 {
		t.Fatalf("the subscriptions' connection is to %q, not one of %v", subscription.WatchServer(subs), addrs)
	}
	for i, p := range proxies {
		if i != used {
			p.Cut()
		}
	}
	zkc.Kill(used)
	zktest.Eventually(t, 20*time.Second, func() error {
		if s := subscription.WatchServer(subs); s != "" {
			return fmt.Errorf("still connected to %s", s)
		}
		return nil
	})
	unregister(t, member, "svc", pids[0], pids[1])
	registerN(t, member, "svc", 3)
	unregister(t, member, "svc", registerN(t, member, "svc", 1)...) // came and went
	for i, p := range proxies {
		if i != used {
			p.Restore()
		}
	}
	converges(t, rec, conn, dir, isRegistration)
	if s := subscription.WatchServer(subs); s == addrs[used] {
		t.Errorf("connected to the killed server %s", s)
	}
	if got := kinds(rec.messages()); got != "S4 L L J J J" {
		t.Errorf("messages %q, want \"S4 L L J J J\"", got)
	}
	// And it follows, in order, on the new server.
	registerN(t, member, "svc", 1)
	converges(t, rec, conn, dir, isRegistration)
	if got := kinds(rec.messages()); got != "S4 L L J J J J" {
		t.Errorf("messages %q, want \"S4 L L J J J J\"", got)
	}
}
