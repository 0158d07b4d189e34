package rolematch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// A holder connected only to a follower cut off from its ensemble (its
// quorum links blackholed, its client port still serving, pings still
// answered) stops before the quorum leader expires its session and another
// applicant's holder starts: bytes from a server are no proof of life, the
// lease is.
func TestHolderBehindAnIsolatedFollowerStopsFirst(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies(), zktest.WithSyncLimit(10))
	const timeout = 2 * time.Second
	follower := zkc.Follower(t)
	var others []string
	for i, addr := range zkc.Addrs() {
		if i != follower {
			others = append(others, addr)
		}
	}
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", []string{zkc.Addrs()[follower]}, root, timeout)
	b := newMember(t, "b", others, root, timeout)
	post(t, b, "set", "r")
	apply(t, a, "set", 1, &j)
	if first := j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)["r"]; first.member != "a" {
		t.Fatalf("held by %s, want a", first.member)
	}
	apply(t, b, "set", 1, &j)
	cut := time.Now()
	zkc.IsolateQuorum(follower)
	var second holdRecord
	zktest.Eventually(t, 30*time.Second, func() error {
		h, err := j.holder("r")
		if err != nil {
			return err
		}
		if h.member != "b" {
			return fmt.Errorf("held by %s", h.member)
		}
		second = h
		return nil
	})
	old := j.all()[0]
	t.Logf("a's holder stopped %v after the cut; b's started %v after it; gap %v",
		old.stop.Sub(cut).Round(time.Millisecond), second.start.Sub(cut).Round(time.Millisecond),
		second.start.Sub(old.stop).Round(time.Millisecond))
	j.noOverlap(t)
	zkc.HealQuorum(follower)
	zkc.WaitServing(t, follower)
}

// One-way partitions between a holder and its server: the holder stops
// before another starts, and after the heal every role is held once.
func TestHolderUnderOneWayPartitions(t *testing.T) {
	zkc := zktest.Shared(t)
	const timeout = 2 * time.Second
	faults := []struct {
		name   string
		inject func(p *zktest.Proxy)
	}{
		{"requests dropped", (*zktest.Proxy).DropToTarget},
		{"replies dropped", (*zktest.Proxy).DropFromTarget},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			root := zktest.Root(t)
			var j journal
			proxy := zktest.NewProxy(t, zkc.Addrs()[0])
			a := newMember(t, "a", []string{proxy.Addr()}, root, timeout)
			b := newMember(t, "b", zkc.Addrs(), root, timeout)
			post(t, b, "set", "r0", "r1")
			apply(t, a, "set", 2, &j)
			j.allHeld(t, b, "set", []string{"r0", "r1"}, 10*time.Second)
			apply(t, b, "set", 1, &j) // room for one of a's two roles
			f.inject(proxy)
			// a's holders stop, a's session expires, b takes one role.
			zktest.Eventually(t, 20*time.Second, func() error {
				r := j.running()
				if len(r) != 1 || r[0].member != "b" {
					return fmt.Errorf("%d holders run, want only b's", len(r))
				}
				return nil
			})
			j.noOverlap(t)
			proxy.Restore()
			// a comes back on a new session and takes the role b has no room for.
			held := j.allHeld(t, b, "set", []string{"r0", "r1"}, 10*time.Second)
			if held["r0"].member == held["r1"].member {
				t.Errorf("both roles held by %s, whose limit is 1 or whose session expired", held["r0"].member)
			}
			j.noOverlap(t)
		})
	}
}
