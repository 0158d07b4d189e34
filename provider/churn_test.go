package provider_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zkactor/zkactor/test/zktest"
)

// TestChurnNeverTwoActivations: while every member requests the same
// identities non-stop, a member is killed (-9), another is partitioned
// from ZooKeeper until its session expires (it comes back as a new
// member), one joins and one leaves gracefully. Afterwards every identity
// is answered, and the activations every member reported (start and stop,
// on the machine's monotonic clock) never overlap for one identity: a kill
// ends its process's activations at the latest when the kill returns.
func TestChurnNeverTwoActivations(t *testing.T) {
	const identities = 20
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, servers(t)[0])
	a := startChild(t, childOpts{servers: servers(t), root: root})
	victim := startChild(t, childOpts{servers: servers(t), root: root})
	cut := startChild(t, childOpts{role: "supervised", servers: []string{proxy.Addr()}, root: root, port: freePort(t)})
	waitMembers(t, ids(a, victim, cut), a, victim, cut)
	loaders := []*child{a, victim, cut}
	for _, c := range loaders {
		c.do("load-start", strconv.Itoa(identities))
	}
	activated := func() error {
		seen := map[string]bool{}
		for _, c := range loaders {
			for _, l := range c.lines("activated ") {
				seen[strings.Fields(l)[1]] = true
			}
		}
		if len(seen) < identities {
			return fmt.Errorf("%d identities activated so far", len(seen))
		}
		return nil
	}
	zktest.Eventually(t, wait, activated)

	// kill -9.
	victim.kill()
	killedAt := monoNow()
	waitMembers(t, ids(a, cut), a)

	// A partition past the session timeout: the member comes back as new.
	zktest.Shared(t).ExpireSession(t, proxy, cut.Session)
	var reborn string
	zktest.Eventually(t, wait, func() error {
		id, err := cut.try("member")
		if err == nil && id == cut.ID {
			err = fmt.Errorf("not back yet")
		}
		reborn = id
		return err
	})
	waitMembers(t, []string{a.ID, reborn}, a)

	// A join, and a graceful leave.
	joiner := startChild(t, childOpts{servers: servers(t), root: root})
	joiner.do("load-start", strconv.Itoa(identities))
	waitMembers(t, []string{a.ID, reborn, joiner.ID}, a, joiner)
	a.do("shutdown")
	waitMembers(t, []string{reborn, joiner.ID}, joiner)

	for _, c := range []*child{cut, joiner} {
		res := c.do("load-stop")
		t.Logf("load from %s: %s (ok failed)", c.ID, res)
	}
	// Every identity requested after the heal is answered.
	for i := range identities {
		requestEventually(t, joiner, fmt.Sprintf("id-%d", i), "get")
	}

	// Never two activations of one identity at once.
	type span struct {
		from, to int64
		where    string
	}
	spans := map[string][]span{}
	for _, c := range []*child{a, victim, cut, joiner} {
		open := map[string]span{}
		for _, l := range c.out.snapshot() {
			f := strings.Fields(l)
			switch {
			case len(f) == 5 && f[0] == "activated":
				from, _ := strconv.ParseInt(f[4], 10, 64)
				open[f[1]+" "+f[2]] = span{from: from, where: f[3] + " epoch " + f[2]}
			case len(f) == 4 && f[0] == "deactivated":
				if s, ok := open[f[1]+" "+f[2]]; ok {
					s.to, _ = strconv.ParseInt(f[3], 10, 64)
					spans[f[1]] = append(spans[f[1]], s)
					delete(open, f[1]+" "+f[2])
				}
			}
		}
		for key, s := range open {
			s.to = monoNow() // still running
			if c == victim {
				s.to = killedAt
			}
			id := strings.Fields(key)[0]
			spans[id] = append(spans[id], s)
		}
	}
	total := 0
	for id, ss := range spans {
		total += len(ss)
		slices.SortFunc(ss, func(x, y span) int { return int(x.from - y.from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from < ss[i-1].to {
				t.Errorf("%s: two activations at once: %s [%d, %d] and %s [%d, %d]",
					id, ss[i-1].where, ss[i-1].from, ss[i-1].to, ss[i].where, ss[i].from, ss[i].to)
			}
		}
	}
	t.Logf("%d activations of %d identities, none overlapping", total, len(spans))
}
