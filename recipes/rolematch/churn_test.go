package rolematch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// churnMember is a member behind a proxy of its own, with one application.
type churnMember struct {
	*member
	proxy  *zktest.Proxy
	app    *rolematch.Applicant
	limit  int
	cut    bool
	closed bool
}

// TestChurnInvariants runs applicants on four members through random
// faults (silent partitions, session expiries, members closed without
// cleanup and replaced, applications stopped and made again, roles removed
// and posted again) and checks the recipe's two invariants: never two live
// holders of one role, and, once the faults heal, every role held (the
// applicants have room for all of them).
func TestChurnInvariants(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("ZKACTOR_CHURN_SEED"), 10, 64); err == nil {
		seed = s // to replay the faults of a failed run (their timing differs)
	}
	t.Logf("seed %d (ZKACTOR_CHURN_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var j journal
	roles := roleNames("r", 6)
	controller := newMember(t, "controller", zkc.Addrs(), root, 4*time.Second)
	post(t, controller, "set", roles...)

	serial := 0
	start := func(limit int) *churnMember {
		serial++
		name := fmt.Sprintf("m%d", serial)
		proxy := zktest.NewProxy(t, zkc.Addrs()[0])
		m := &churnMember{member: newMember(t, name, []string{proxy.Addr()}, root, time.Second), proxy: proxy, limit: limit}
		m.app = apply(t, m.member, "set", limit, &j)
		return m
	}
	members := []*churnMember{start(2), start(2), start(3), start(3)}
	j.allHeld(t, controller, "set", roles, 10*time.Second)

	removed := map[string]bool{}
	var faults []string
	until := time.Now().Add(8 * time.Second)
	for time.Now().Before(until) {
		m := members[rng.IntN(len(members))]
		switch k := rng.IntN(10); {
		case k < 3 && !m.cut: // a silent partition, healed by a later step
			m.proxy.Blackhole()
			m.cut = true
			faults = append(faults, m.name+" cut")
		case k < 5 && m.cut:
			m.proxy.Restore()
			m.cut = false
			faults = append(faults, m.name+" healed")
		case k == 5 && !m.cut: // its session expires
			zkc.ExpireSession(t, m.proxy, m.Session.ID())
			faults = append(faults, m.name+" expired")
		case k == 6: // dies without cleanup; a new member takes its place
			m.Session.Close()
			m.closed = true
			for i := range members {
				if members[i] == m {
					members[i] = start(m.limit)
				}
			}
			faults = append(faults, m.name+" died")
		case k == 7 && !m.cut: // stops applying, and applies again
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := m.app.Stop(ctx)
			cancel()
			if err != nil {
				t.Fatalf("stopping %s's application: %v", m.name, err)
			}
			m.app = apply(t, m.member, "set", m.limit, &j)
			faults = append(faults, m.name+" re-applied")
		case k == 8: // a role removed, or one posted back
			role := roles[rng.IntN(len(roles))]
			if removed[role] {
				post(t, controller, "set", role)
				delete(removed, role)
				faults = append(faults, role+" posted")
			} else {
				if err := controller.roles.Remove(ctxT(t), "set", role); err != nil {
					t.Fatal(err)
				}
				removed[role] = true
				faults = append(faults, role+" removed")
			}
		}
		// A random pause between faults is the point here, not
		// synchronisation: the system runs on while it passes.
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
	}
	t.Logf("faults: %v", faults)
	for _, m := range members {
		if m.cut {
			m.proxy.Restore()
		}
	}
	post(t, controller, "set", roles...)
	j.allHeld(t, controller, "set", roles, 20*time.Second)
	j.noOverlap(t)
	for _, info := range mustApplicants(t, controller, "set") {
		if info.Held > info.Limit {
			t.Errorf("applicant %s holds %d, limit %d", info.ID, info.Held, info.Limit)
		}
	}
	t.Logf("%d holdings over the run", len(j.all()))
}
