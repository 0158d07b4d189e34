package global_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// 5. A leader connected only to a follower that is cut off from its
// ensemble (its quorum links blackholed, its client port still serving)
// stops its global before the quorum leader expires its session and the
// next candidate is elected. The old lease counted the follower's pings as
// proof of life and overlapped by about a second in 3 of 3 trials.
func TestLeaderBehindAnIsolatedFollowerStopsFirst(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies(), zktest.WithSyncLimit(10))
	const timeout = 2 * time.Second
	for trial := range 3 {
		follower := zkc.Follower(t)
		var others []string
		for i, addr := range zkc.Addrs() {
			if i != follower {
				others = append(others, addr)
			}
		}
		root := zktest.Root(t)
		var j journal
		ctx := ctxT(t)
		a := newNode(t, []string{zkc.Addrs()[follower]}, root, timeout)
		b := newNode(t, others, root, timeout)
		if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
			t.Fatal(err)
		}
		if first := j.oneRunning(t); first.node != "a" {
			t.Fatalf("trial %d: leader is %s, want a", trial, first.node)
		}
		if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		zkc.IsolateQuorum(follower)
		var second termRecord
		zktest.Eventually(t, 30*time.Second, func() error {
			r := j.running()
			if len(r) != 1 || r[0].node != "b" || r[0].epoch == 0 {
				return fmt.Errorf("b is not the only global yet (%d running)", len(r))
			}
			second = r[0]
			return nil
		})
		old := j.all()[0]
		t.Logf("trial %d: a's global stopped %v after the cut; b's started %v after it; gap %v", trial,
			old.stop.Sub(cut).Round(time.Millisecond), second.start.Sub(cut).Round(time.Millisecond),
			second.start.Sub(old.stop).Round(time.Millisecond))
		j.noOverlap(t)
		zkc.HealQuorum(follower)
		zkc.WaitServing(t, follower)
		a.Stop()
		b.Stop()
	}
}

// One-way partitions and slow replies between a leader and its server: the
// global stops before another starts, and once healed exactly one runs
// within the session timeout plus a second.
func TestLeaderUnderOneWayPartitionsAndDelays(t *testing.T) {
	zkc := zktest.Shared(t)
	const timeout = 2 * time.Second
	faults := []struct {
		name   string
		inject func(p *zktest.Proxy)
	}{
		{"requests dropped", (*zktest.Proxy).DropToTarget},
		{"replies dropped", (*zktest.Proxy).DropFromTarget},
		{"replies delayed by half the session timeout", func(p *zktest.Proxy) { p.Delay(timeout / 2) }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			root := zktest.Root(t)
			var j journal
			ctx := ctxT(t)
			proxy := zktest.NewProxy(t, zkc.Addrs()[0])
			a := newNode(t, []string{proxy.Addr()}, root, timeout)
			b := newNode(t, zkc.Addrs(), root, timeout)
			if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
				t.Fatal(err)
			}
			j.oneRunning(t)
			if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
				t.Fatal(err)
			}
			injected := time.Now()
			f.inject(proxy)
			// Hold the fault well past the session timeout.
			zktest.Eventually(t, 20*time.Second, func() error {
				if r := j.all(); len(r) == 0 || r[0].stop.IsZero() {
					return fmt.Errorf("a's global still runs")
				}
				return nil
			})
			stopped := j.all()[0].stop
			<-time.After(timeout + timeout/2) // the fault lasts; nothing is synchronised on this
			j.noOverlap(t)
			proxy.Restore()
			healed := time.Now()
			got := j.oneRunning(t)
			t.Logf("a's global stopped %v into the fault; after the heal %s leads (epoch %d), %v later",
				stopped.Sub(injected).Round(time.Millisecond), got.node, got.epoch, time.Since(healed).Round(time.Millisecond))
			if d := time.Since(healed); d > timeout+time.Second {
				t.Errorf("one global runs only %v after the heal, want within %v", d, timeout+time.Second)
			}
			j.noOverlap(t)
		})
	}
}

// A leader whose requests are dropped and whose candidate znode changes (a
// write by someone else fires its watch, and re-arming it would hang) stops
// its global when the lease runs out, not a request timeout later, even
// when no message comes to trigger the guard.
func TestLeaderStopsOnTimeWhileRewatchHangs(t *testing.T) {
	zkc := zktest.Shared(t)
	raw := zkc.Connect(t)
	const timeout = 4 * time.Second
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, timeout)
	b := newNode(t, zkc.Addrs(), root, timeout)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	first := j.oneRunning(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	proxy.DropToTarget()
	if _, err := raw.Set(leaderPath(t, raw, root, "boss", first.epoch), []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 3*timeout, func() error {
		if r := j.all(); r[0].stop.IsZero() {
			return fmt.Errorf("a's global still runs")
		}
		return nil
	})
	stopped := j.all()[0].stop.Sub(cut)
	t.Logf("a's global stopped %v after the cut", stopped.Round(time.Millisecond))
	j.oneRunning(t) // b, once a's session has expired
	j.noOverlap(t)  // a request timeout (10 s) would have let a run on beside b
}
