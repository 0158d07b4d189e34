package config_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

// A subscriber receives the merged config at once, then one message per
// change of either part (created, written, deleted), and nothing for
// changes that are not its own.
func TestSubscribeFollowsBothParts(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	sub := newNode(t, zkc.Addrs(), root, 0)
	w := newNode(t, zkc.Addrs(), root, 0) // the writer: another session
	ctx := ctxT(t)
	r := newRecorder(sub)

	// Subscribed before anything exists: the empty config, at once.
	cancel, err := sub.store.Subscribe(ctx, "svc", "p1", r.pid)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	first := r.waitN(t, 1)
	if first.ServiceRecord.Exists || first.Override.Exists || jsonOf(first.Values) != `{}` || first.Error != "" {
		t.Fatalf("first config = %v", first)
	}
	step := 1
	expect := func(what, values string, svcVersion, ovVersion int32) *configv1.Config {
		t.Helper()
		step++
		got := r.waitN(t, step)
		if jsonOf(got.Values) != values || got.ServiceRecord.Version != svcVersion || got.Override.Version != ovVersion {
			t.Fatalf("after %s: config %d = %s (versions %d/%d), want %s (%d/%d)", what, step,
				jsonOf(got.Values), got.ServiceRecord.Version, got.Override.Version, values, svcVersion, ovVersion)
		}
		return got
	}

	if _, err := w.store.Set(ctx, "svc", values(t, `{"a":1,"b":{"c":2}}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	expect("the service's record was created", `{"a":1,"b":{"c":2}}`, 0, config.Absent)
	if _, err := w.store.SetOverride(ctx, "svc", "p1", values(t, `{"b":{"c":3}}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	expect("the override was created", `{"a":1,"b":{"c":3}}`, 0, 0)
	if _, err := w.store.Set(ctx, "svc", values(t, `{"a":4,"b":{"c":2,"d":5}}`), 0); err != nil {
		t.Fatal(err)
	}
	expect("the service's record changed", `{"a":4,"b":{"c":3,"d":5}}`, 1, 0)

	// Another process's override changes the overrides directory, not
	// this process's config: no message. The next change of ours is the
	// very next message.
	if _, err := w.store.SetOverride(ctx, "svc", "p2", values(t, `{"a":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	if err := w.store.DeleteOverride(ctx, "svc", "p2", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.SetOverride(ctx, "svc", "p1", values(t, `{"a":null}`), 0); err != nil {
		t.Fatal(err)
	}
	expect("the override changed", `{"b":{"c":2,"d":5}}`, 1, 1)
	if err := w.store.DeleteOverride(ctx, "svc", "p1", 1); err != nil {
		t.Fatal(err)
	}
	last := expect("the override was deleted", `{"a":4,"b":{"c":2,"d":5}}`, 1, config.Absent)
	if last.Override.Exists {
		t.Errorf("override still reported: %v", last.Override)
	}
	// The same values written again are a change (a new version).
	if _, err := w.store.Set(ctx, "svc", values(t, `{"a":4,"b":{"c":2,"d":5}}`), 1); err != nil {
		t.Fatal(err)
	}
	expect("a rewrite", `{"a":4,"b":{"c":2,"d":5}}`, 2, config.Absent)
	monotonic(t, r.all())
	// Every message's versions are the ones a compare-and-set writer needs.
	if _, err := w.store.Set(ctx, "svc", values(t, `{}`), r.waitN(t, step).ServiceRecord.Version); err != nil {
		t.Errorf("Set at the version the subscriber was sent: %v", err)
	}
}

// A subscription ends with cancel, with its actor, and with Close: no
// message after that, no goroutine left.
func TestSubscriptionEnds(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"v":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	cancelled, stopped, witness := newRecorder(n), newRecorder(n), newRecorder(n)
	cancel, err := n.store.Subscribe(ctx, "svc", "", cancelled.pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.Subscribe(ctx, "svc", "", stopped.pid); err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.Subscribe(ctx, "svc", "", witness.pid); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{cancelled, stopped, witness} {
		r.waitN(t, 1)
	}
	cancel()
	cancel() // idempotent
	if err := n.system.Root.StopFuture(stopped.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		if got := config.Subscriptions(n.store); got != 1 {
			return fmt.Errorf("%d subscriptions, want the witness's alone", got)
		}
		return nil
	})
	if _, err := n.store.Set(ctx, "svc", values(t, `{"v":1}`), 0); err != nil {
		t.Fatal(err)
	}
	witness.waitN(t, 2) // the change was sent to whoever still listens
	if c := cancelled.count(); c != 1 {
		t.Errorf("a cancelled subscription was sent %d configs after its cancel returned", c-1)
	}

	// Close ends the rest; a Subscribe after it is refused.
	if err := n.store.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := config.Subscriptions(n.store); got != 0 {
		t.Errorf("%d subscriptions after Close", got)
	}
	if _, err := n.store.Subscribe(ctx, "svc", "", witness.pid); !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	// A PID that is already gone: the subscription ends at once.
	n2 := newNode(t, zkc.Addrs(), root, 0)
	dead := n2.system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := n2.system.Root.StopFuture(dead).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.store.Subscribe(ctx, "svc", "", dead); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		if got := config.Subscriptions(n2.store); got != 0 {
			return fmt.Errorf("%d subscriptions for a dead PID", got)
		}
		return nil
	})
}

// A session closed under a live subscription (a process shutting down
// without Store.Close) ends it; Close afterwards returns at once.
func TestSessionClosedUnderSubscription(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	ctx := ctxT(t)
	r := newRecorder(n)
	if _, err := n.store.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	r.waitN(t, 1)
	n.session.Close()
	zktest.Eventually(t, 5*time.Second, func() error {
		if got := config.Subscriptions(n.store); got != 0 {
			return fmt.Errorf("%d subscriptions on a closed session", got)
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := n.store.Close(short); err != nil {
		t.Errorf("Close after the session: %v", err)
	}
}
