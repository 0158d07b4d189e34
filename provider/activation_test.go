package provider_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/provider"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestPassivationRemovesTheRecord: a grain that stops itself takes its
// znode with it; the next request activates it afresh, with a larger epoch.
func TestPassivationRemovesTheRecord(t *testing.T) {
	root := zktest.Root(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	b := startChild(t, childOpts{servers: servers(t), root: root})
	waitMembers(t, ids(a, b), a, b)
	conn := zktest.Shared(t).Connect(t)
	path := provider.ActivationPath(cluster.Layout{Root: root}, "counter", "ivy")

	first := requestEventually(t, a, "ivy", "incr")
	if ok, stat, err := conn.Exists(path); err != nil || !ok || stat.Czxid != first.epoch {
		t.Fatalf("%s exists = %v (%+v), %v; want it, created at zxid %d", path, ok, stat, err, first.epoch)
	}
	requestEventually(t, b, "ivy", "stop")
	zktest.Eventually(t, wait, func() error {
		if ok, _, err := conn.Exists(path); err != nil || ok {
			return fmt.Errorf("%s exists = %v, %v after the grain stopped", path, ok, err)
		}
		return nil
	})
	if eventTime(byID([]*child{a, b}, first.member), "deactivated", "ivy", first.epoch) == 0 {
		t.Error("the passivated grain did not stop")
	}
	again := requestEventually(t, b, "ivy", "incr")
	if again.count != 1 || again.epoch <= first.epoch {
		t.Fatalf("after passivation: %+v; want a fresh activation with an epoch above %d", again, first.epoch)
	}
}

// TestCachedLookupCostsNoRequest: once an activation is known, lookups are
// reads of memory: 100000 of them cost no ZooKeeper request
// (Session.Requests does not count the lease probes).
func TestCachedLookupCostsNoRequest(t *testing.T) {
	root := zktest.Root(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	b := startChild(t, childOpts{servers: servers(t), root: root})
	waitMembers(t, ids(a, b), a, b)
	requestEventually(t, a, "judy", "incr")
	f := strings.Fields(b.do("cost", "judy"))
	requests, _ := strconv.Atoi(f[0])
	ns, _ := strconv.Atoi(f[1])
	t.Logf("100000 cached lookups: %d ZooKeeper requests, %d ns each under -race", requests, ns)
	if requests != 0 {
		t.Fatalf("100000 cached lookups cost %d ZooKeeper requests", requests)
	}
}

// TestBadNamesAreClearErrors: kind and identity names that cannot be znode
// names are refused with cluster.ErrBadName's message; a kind no member
// hosts is ErrNoMember.
func TestBadNamesAreClearErrors(t *testing.T) {
	root := zktest.Root(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	waitMembers(t, ids(a), a)
	for _, tc := range []struct{ identity, kind, want string }{
		{"..", "counter", cluster.ErrBadName.Error()},
		{"x", ".", cluster.ErrBadName.Error()},
		{"x", "nokind", provider.ErrNoMember.Error()},
	} {
		_, err := a.try("lookup", tc.identity, tc.kind)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.identity) {
			t.Errorf("lookup %q of kind %q: %v; want an error naming it and saying %q", tc.identity, tc.kind, err, tc.want)
		}
	}
}

// TestGracefulShutdownIsPrompt: Shutdown returns at once (no fixed
// sleeps), the others see the member leave, and its identities are
// activated elsewhere without waiting for a session timeout.
func TestGracefulShutdownIsPrompt(t *testing.T) {
	root := zktest.Root(t)
	var cs []*child
	for range 3 {
		cs = append(cs, startChild(t, childOpts{servers: servers(t), root: root, sessionTimeout: 4 * time.Second}))
	}
	waitMembers(t, ids(cs...), cs...)
	// An identity hosted on cs[2].
	var identity string
	var first answer
	for i := 0; identity == ""; i++ {
		id := fmt.Sprintf("kate-%d", i)
		if ans := requestEventually(t, cs[0], id, "incr"); ans.member == cs[2].ID {
			identity, first = id, ans
		}
	}
	start := time.Now()
	us, _ := strconv.Atoi(cs[2].do("shutdown"))
	took := time.Duration(us) * time.Microsecond
	waitMembers(t, ids(cs[:2]...), cs[0], cs[1])
	left := time.Since(start)
	again := requestEventually(t, cs[1], identity, "incr")
	back := time.Since(start)
	t.Logf("Shutdown took %v; the others saw the member leave within %v; %s back within %v (session timeout 4s)",
		took, left.Round(time.Millisecond), identity, back.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	if back > 3*time.Second || again.member == cs[2].ID || again.count != 1 || again.epoch <= first.epoch {
		t.Errorf("after the shutdown: %+v after %v; want a new activation before the session timeout", again, back)
	}
	if eventTime(cs[2], "deactivated", identity, first.epoch) == 0 {
		t.Error("the activation did not stop on Shutdown")
	}
}

// TestSingletonIsElectedOnceWithEpoch: members standing for a singleton
// elect one; every member finds it; when its member shuts down, another
// takes over with a larger epoch.
func TestSingletonIsElectedOnceWithEpoch(t *testing.T) {
	root := zktest.Root(t)
	var cs []*child
	for range 3 {
		cs = append(cs, startChild(t, childOpts{servers: servers(t), root: root}))
	}
	waitMembers(t, ids(cs...), cs...)
	for _, c := range cs {
		c.do("singleton", "ledger")
	}
	leader, epoch := whereis(t, cs, "")
	elected := 0
	for _, c := range cs {
		elected += len(c.lines("elected ledger "))
	}
	if elected != 1 {
		t.Fatalf("ledger elected %d times", elected)
	}
	old := byID(cs, leader)
	old.do("shutdown")
	var rest []*child
	for _, c := range cs {
		if c != old {
			rest = append(rest, c)
		}
	}
	next, nextEpoch := whereis(t, rest, leader)
	if next == leader || nextEpoch <= epoch {
		t.Fatalf("after the leader's shutdown: %s epoch %d, was %s epoch %d", next, nextEpoch, leader, epoch)
	}
	if len(byID(rest, next).lines(fmt.Sprintf("elected ledger %d ", nextEpoch))) != 1 {
		t.Fatalf("the new singleton did not get its epoch %d first", nextEpoch)
	}
}

// whereis waits until every child names the same running singleton
// "ledger", other than not, and returns it.
func whereis(t *testing.T, cs []*child, not string) (string, int64) {
	t.Helper()
	var leader string
	var epoch int64
	zktest.Eventually(t, wait, func() error {
		var seen []string
		for _, c := range cs {
			res, err := c.try("whereis", "ledger")
			if err != nil {
				return err
			}
			seen = append(seen, res)
		}
		for _, s := range seen {
			if s != seen[0] {
				return fmt.Errorf("members disagree: %q", seen)
			}
		}
		f := strings.Fields(seen[0])
		if len(f) != 2 || f[0] == "" || f[0] == not {
			return fmt.Errorf("no new singleton yet: %q", seen[0])
		}
		leader = f[0]
		epoch, _ = strconv.ParseInt(f[1], 10, 64)
		return nil
	})
	return leader, epoch
}
