package provider_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// answer is a counter grain's answer: "<count> <member id> <epoch>".
type answer struct {
	count  int
	member string
	epoch  int64
}

func parseAnswer(t testing.TB, s string) answer {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 3 {
		t.Fatalf("bad answer %q", s)
	}
	n, err1 := strconv.Atoi(f[0])
	e, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad answer %q", s)
	}
	return answer{n, f[1], e}
}

// requestEventually sends op to identity from c until an answer comes.
func requestEventually(t testing.TB, c *child, identity, op string) answer {
	t.Helper()
	var res string
	zktest.Eventually(t, wait, func() error {
		var err error
		res, err = c.try("request", identity, op)
		return err
	})
	return parseAnswer(t, res)
}

func byID(cs []*child, id string) *child {
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func ids(cs ...*child) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// eventTime is the CLOCK_MONOTONIC time of a child's "activated"/"deactivated"
// line for identity and epoch, or 0.
func eventTime(c *child, event, identity string, epoch int64) int64 {
	for _, l := range c.lines(event + " " + identity + " " + strconv.FormatInt(epoch, 10) + " ") {
		f := strings.Fields(l)
		ns, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		return ns
	}
	return 0
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestKilledMemberIdentitiesReactivateElsewhere: kill -9 the member that
// hosts an identity; once its session has ended, the others drop it and
// the identity is activated on another member, with a larger epoch.
func TestKilledMemberIdentitiesReactivateElsewhere(t *testing.T) {
	root := zktest.Root(t)
	var cs []*child
	for range 3 {
		cs = append(cs, startChild(t, childOpts{servers: servers(t), root: root}))
	}
	waitMembers(t, ids(cs...), cs...)
	first := requestEventually(t, cs[0], "bob", "incr")
	host := byID(cs, first.member)
	var rest []*child
	for _, c := range cs {
		if c != host {
			rest = append(rest, c)
		}
	}
	host.kill()
	killed := time.Now()
	waitMembers(t, ids(rest...), rest...)
	again := requestEventually(t, rest[0], "bob", "incr")
	t.Logf("re-activated %v after the kill", time.Since(killed).Round(time.Millisecond))
	if again.member == host.ID || again.count != 1 || again.epoch <= first.epoch {
		t.Fatalf("after the kill: %+v; want a new activation (count 1) off %s with an epoch above %d", again, host.ID, first.epoch)
	}
	if a := requestEventually(t, rest[1], "bob", "incr"); a.count != 2 || a.epoch != again.epoch {
		t.Fatalf("from the other member: %+v; want count 2 at epoch %d", a, again.epoch)
	}
}

// TestPartitionedMemberStopsActivationsFirst: a member cut off from
// ZooKeeper (its proxy blackholed; its actor remote still works) stops its
// activations when its lease runs out, before ZooKeeper expires its
// session and another member activates them.
func TestPartitionedMemberStopsActivationsFirst(t *testing.T) {
	root := zktest.Root(t)
	var cs []*child
	var proxies []*zktest.Proxy
	for range 3 {
		p := zktest.NewProxy(t, servers(t)[0])
		proxies = append(proxies, p)
		cs = append(cs, startChild(t, childOpts{servers: []string{p.Addr()}, root: root}))
	}
	waitMembers(t, ids(cs...), cs...)
	first := requestEventually(t, cs[0], "carol", "incr")
	hostIndex := slices.IndexFunc(cs, func(c *child) bool { return c.ID == first.member })
	host := cs[hostIndex]
	var other *child
	for _, c := range cs {
		if c != host {
			other = c
			break
		}
	}
	proxies[hostIndex].Blackhole()
	cut := monoNow()

	// The partitioned member answers until its lease runs out.
	var again answer
	zktest.Eventually(t, wait, func() error {
		res, err := other.try("request", "carol", "incr")
		if err != nil {
			return err
		}
		if again = parseAnswer(t, res); again.member == host.ID {
			return fmt.Errorf("still served by the partitioned member: %+v", again)
		}
		return nil
	})
	if again.epoch <= first.epoch {
		t.Fatalf("after the partition: %+v; want an activation off %s with an epoch above %d", again, host.ID, first.epoch)
	}
	stopped := eventTime(host, "deactivated", "carol", first.epoch)
	started := eventTime(byID(cs, again.member), "activated", "carol", again.epoch)
	t.Logf("stopped %v after the cut, re-activated %v after the cut",
		time.Duration(stopped-cut).Round(time.Millisecond), time.Duration(started-cut).Round(time.Millisecond))
	if stopped == 0 || started == 0 || stopped >= started {
		t.Fatalf("partitioned activation stopped at %d, the new one started at %d: want it stopped first", stopped, started)
	}
	proxies[hostIndex].Restore()
}

// TestSessionExpiryMemberComesBackAsNew: a supervised member whose session
// expires leaves the others' topology, and comes back by itself as a new
// member (a new id) on the same host:port, which the others admit; its
// identities are activated again where asked.
func TestSessionExpiryMemberComesBackAsNew(t *testing.T) {
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, servers(t)[0])
	a := startChild(t, childOpts{servers: servers(t), root: root})
	b := startChild(t, childOpts{servers: servers(t), root: root})
	s := startChild(t, childOpts{role: "supervised", servers: []string{proxy.Addr()}, root: root, port: freePort(t)})
	waitMembers(t, ids(a, b, s), a, b, s)

	zktest.Shared(t).ExpireSession(t, proxy, s.Session)
	var newID string
	zktest.Eventually(t, wait, func() error {
		id, err := s.try("member")
		if err != nil {
			return err
		}
		if id == s.ID {
			return fmt.Errorf("still the old member %s", id)
		}
		newID = id
		return nil
	})
	waitMembers(t, []string{a.ID, b.ID, newID}, a, b)
	zktest.Eventually(t, wait, func() error {
		if got := s.do("members"); got != strings.Join(sorted(a.ID, b.ID, newID), " ") {
			return fmt.Errorf("the new member sees [%s]", got)
		}
		return nil
	})
	// The new member is admitted: it reaches grains elsewhere and hosts its own.
	for i := range 8 {
		id := fmt.Sprintf("erin-%d", i)
		ans := requestEventually(t, s, id, "incr")
		if ans.count != 1 {
			t.Fatalf("%s: %+v", id, ans)
		}
		if again := requestEventually(t, a, id, "incr"); again.count != 2 || again.member != ans.member {
			t.Fatalf("%s from another member: %+v, want count 2 on %s", id, again, ans.member)
		}
	}
}

// TestRestartOnSameHostPortIsAdmitted: a member stopped and started again
// on the same host:port (a new process, so a new id) is admitted.
func TestRestartOnSameHostPortIsAdmitted(t *testing.T) {
	root := zktest.Root(t)
	port := freePort(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	old := startChild(t, childOpts{servers: servers(t), root: root, port: port})
	waitMembers(t, ids(a, old), a, old)
	for i := range 4 {
		requestEventually(t, old, fmt.Sprintf("frank-%d", i), "incr")
	}
	old.kill()
	waitMembers(t, ids(a), a)
	restarted := startChild(t, childOpts{servers: servers(t), root: root, port: port})
	if restarted.Addr != old.Addr || restarted.ID == old.ID {
		t.Fatalf("restarted as %s at %s, was %s at %s", restarted.ID, restarted.Addr, old.ID, old.Addr)
	}
	waitMembers(t, ids(a, restarted), a, restarted)
	hosts := map[string]bool{}
	for i := range 8 {
		ans := requestEventually(t, restarted, fmt.Sprintf("gina-%d", i), "incr")
		hosts[ans.member] = true
	}
	if !hosts[restarted.ID] || !hosts[a.ID] {
		t.Fatalf("grains hosted on %v; want both members", hosts)
	}
}

// TestClientModeWatchesWithoutJoining: a client sees the members, is not
// one of them, and its requests reach the members' activations.
func TestClientModeWatchesWithoutJoining(t *testing.T) {
	root := zktest.Root(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	b := startChild(t, childOpts{servers: servers(t), root: root})
	client := startChild(t, childOpts{role: "client", servers: servers(t), root: root})
	waitMembers(t, ids(a, b), a, b, client)
	for i := range 6 {
		id := fmt.Sprintf("hank-%d", i)
		ans := requestEventually(t, client, id, "incr")
		if ans.member != a.ID && ans.member != b.ID {
			t.Fatalf("%s hosted on %s", id, ans.member)
		}
		if again := requestEventually(t, a, id, "incr"); again.count != 2 {
			t.Fatalf("%s from a member after the client: %+v", id, again)
		}
	}
	if n := len(client.lines("activated ")); n != 0 {
		t.Fatalf("the client activated %d grains", n)
	}
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
