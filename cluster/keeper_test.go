package cluster_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// registerAll registers every PID under name (new names when name is "")
// from callers goroutines.
func registerAll(t *testing.T, n *node, name string, pids []*actor.PID, callers int) {
	t.Helper()
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(pids))
	next := make(chan int, len(pids))
	for i := range pids {
		next <- i
	}
	close(next)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				nm := name
				if nm == "" {
					nm = fmt.Sprintf("n%d", i)
				}
				errs <- n.Registry.Register(ctx, nm, pids[i], nil)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// comeBack waits until every path exists again, owned by session.
func comeBack(t *testing.T, raw *zk.Conn, session int64, paths ...string) {
	t.Helper()
	zktest.Eventually(t, 10*time.Second, func() error {
		for _, p := range paths {
			ok, st, err := raw.Exists(p)
			if err != nil {
				return err
			}
			if !ok || st.EphemeralOwner != session {
				return fmt.Errorf("%s, deleted by a foreign client, is not back", p)
			}
		}
		return nil
	})
}

// A burst of registrations costs the registering session its creates and
// nothing else: the keeper follows the directories on a connection of its
// own, so no listing queues behind the creates (it used to list a busy
// directory every 50 ms, the whole directory each time). And the znodes
// made during the burst are still followed: deleted by someone else, they
// come back.
func TestBurstOfRegistrationsCostsOnlyItsCreates(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	const burst, callers = 400, 32
	for _, shape := range []string{"one-name", "new-names"} {
		pids := make([]*actor.PID, burst)
		for i := range pids {
			pids[i] = n.Spawn(t)
		}
		name := "busy"
		if shape == "new-names" {
			name = "" // each a container parent, then the registration: one Session.Do
		}
		if name != "" {
			register(t, n, name, n.Spawn(t)) // the directory exists
		}
		n.Settle(t)
		before := plumbing.Requests(n.Session)
		registerAll(t, n, name, pids, callers)
		n.Settle(t)
		if got := plumbing.Requests(n.Session) - before; got != burst {
			t.Fatalf("%s: %d requests on the session for %d registrations, want %d (the creates alone)", shape, got, burst, burst)
		}

		var victims []string
		for _, i := range []int{burst / 3, burst / 2, burst - 1} {
			if name != "" {
				names, _, err := raw.Children(n.Registry.Layout().ServicePath(name))
				if err != nil {
					t.Fatal(err)
				}
				victims = append(victims, n.Registry.Layout().ServicePath(name)+"/"+names[i])
				continue
			}
			p, err := onlyChild(raw, n.Registry.Layout().ServicePath(fmt.Sprintf("n%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			victims = append(victims, p)
		}
		for _, v := range victims {
			if err := raw.Delete(v, -1); err != nil {
				t.Fatal(err)
			}
		}
		comeBack(t, raw, n.Session.ID(), victims...)
	}
}

// A registration deleted by someone else the moment Register returns is
// re-created: the first znode of a directory is created only once the
// follower's watch on it is set, so no delete falls before the watch.
func TestForeignDeleteRightAfterRegisterIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	for i := range 20 {
		name := fmt.Sprintf("svc%d", i)
		register(t, n, name, n.Spawn(t))
		dir := n.Registry.Layout().ServicePath(name)
		p, err := onlyChild(raw, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
		comeBack(t, raw, n.Session.ID(), p)
	}
}

// The repair of a foreign delete costs the session one exists and one
// create, whatever the size of the directory: no listing.
func TestForeignDeleteRepairCostsNoListing(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	pids := make([]*actor.PID, 200)
	for i := range pids {
		pids[i] = n.Spawn(t)
	}
	registerAll(t, n, "big", pids, 16)
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("big")
	names, _, err := raw.Children(dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := dir + "/" + names[len(names)/2]
	before := plumbing.Requests(n.Session)
	if err := raw.Delete(victim, -1); err != nil {
		t.Fatal(err)
	}
	comeBack(t, raw, n.Session.ID(), victim)
	n.Settle(t)
	if got := plumbing.Requests(n.Session) - before; got != 2 {
		t.Fatalf("the repair cost the session %d requests, want 2 (an exists, a create)", got)
	}
}

// A delete made while the follower's connection is down (its watches gone
// with it) is found when the watches are set again: every znode of the
// directory is checked then. The node's own session stays connected.
func TestForeignDeleteWhileFollowerIsCutIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	fp := followerProxy(t, zkc)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	register(t, n, "svc", n.Spawn(t))
	register(t, n, "svc", n.Spawn(t))
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("svc")
	names, _, err := raw.Children(dir)
	if err != nil || len(names) != 2 {
		t.Fatalf("children %v, %v; want 2", names, err)
	}
	victim := dir + "/" + names[0]

	fp.Cut()
	if err := raw.Delete(victim, -1); err != nil {
		t.Fatal(err)
	}
	// A registration made meanwhile, in a new directory, goes out without
	// a watch in place: it is checked once one is.
	register(t, n, "later", n.Spawn(t))
	late, err := onlyChild(raw, n.Registry.Layout().ServicePath("later"))
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Delete(late, -1); err != nil {
		t.Fatal(err)
	}
	fp.Restore()
	comeBack(t, raw, n.Session.ID(), victim, late)
}

// The same with the follower's connection silenced, not closed: the first
// registration of a name waits for the watch at most a moment, then goes
// out without it, and a delete of it is found once the follower is back.
func TestRegisterWhileFollowerIsSilencedIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	fp := followerProxy(t, zkc)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	n.Settle(t)
	fp.Blackhole()
	start := time.Now()
	register(t, n, "svc", n.Spawn(t))
	took := time.Since(start)
	p, err := onlyChild(raw, n.Registry.Layout().ServicePath("svc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	fp.Restore()
	comeBack(t, raw, n.Session.ID(), p)
	t.Logf("Register took %v with the follower silenced", took.Round(time.Millisecond))
}

// Unregister and Register of one PID, back to back, many times: the
// follower's delete events of our own unregisters are suspicions the
// session settles, never a second znode or a lost one.
func TestRegisterUnregisterChurnEndsRegistered(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	pid := n.Spawn(t)
	ctx := ctxT(t)
	for range 50 {
		register(t, n, "churn", pid)
		if err := n.Registry.Unregister(ctx, "churn", pid); err != nil {
			t.Fatal(err)
		}
	}
	register(t, n, "churn", pid)
	n.Settle(t)
	p, err := onlyChild(raw, n.Registry.Layout().ServicePath("churn"))
	if err != nil {
		t.Fatal(err)
	}
	ok, st, err := raw.Exists(p)
	if err != nil || !ok || st.EphemeralOwner != n.Session.ID() {
		t.Fatalf("after the churn: exists %v, %v", ok, err)
	}
	if err := n.Registry.Unregister(ctx, "churn", pid); err != nil {
		t.Fatal(err)
	}
	n.Settle(t)
	zktest.Eventually(t, 5*time.Second, func() error {
		names, _, err := raw.Children(n.Registry.Layout().ServicePath("churn"))
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		if len(names) != 0 {
			return fmt.Errorf("%v left after the last Unregister", names)
		}
		return nil
	})
}

// A node with a member in a busy service pays nothing for the others'
// joins and leaves: its keeper used to list the whole directory (on its
// session) after every change, at most every 50 ms, to see whether its
// own registration was still there.
func TestOthersChurnCostsAMemberNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	register(t, a, "busy", a.Spawn(t))
	a.Settle(t)
	before := plumbing.Requests(a.Session)
	pids := make([]*actor.PID, 200)
	for i := range pids {
		pids[i] = b.Spawn(t)
	}
	registerAll(t, b, "busy", pids, 16)
	ctx := ctxT(t)
	for _, p := range pids[:100] {
		if err := b.Registry.Unregister(ctx, "busy", p); err != nil {
			t.Fatal(err)
		}
	}
	b.Settle(t)
	a.Settle(t)
	if got := plumbing.Requests(a.Session) - before; got != 0 {
		t.Fatalf("a's session sent %d requests during 300 changes by b, want none", got)
	}
}

// A session expiry deletes every registration, and the follower reports
// each delete: those suspicions belong to the old session, and cost the
// new one nothing. It makes every registration again, one create each.
func TestExpiryCostsTheNewSessionItsCreates(t *testing.T) {
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	cluster.SetFollowerServers(t, zkc.Addrs()) // stays up and sees the deletes
	n := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: zktest.Root(t), timeout: time.Second})
	raw := zkc.Connect(t)
	const regs = 100
	pids := make([]*actor.PID, regs)
	for i := range pids {
		pids[i] = n.Spawn(t)
	}
	registerAll(t, n, "svc", pids, 8)
	n.Settle(t)
	old := n.Session.ID()
	before := plumbing.Requests(n.Session)
	zkc.ExpireSession(t, proxy, old)
	dir := n.Registry.Layout().ServicePath("svc")
	id := newSession(t, n.Session, old)
	zktest.Eventually(t, 20*time.Second, func() error {
		names, _, err := raw.Children(dir)
		if err != nil {
			return err
		}
		for _, c := range names {
			ok, st, err := raw.Exists(dir + "/" + c)
			if err != nil {
				return err
			}
			if ok && st.EphemeralOwner != id {
				return fmt.Errorf("%s still the old session's", c)
			}
		}
		if len(names) != regs {
			return fmt.Errorf("%d of %d registrations back", len(names), regs)
		}
		return nil
	})
	n.Settle(t)
	// The node's znode and each registration: one create each. A request
	// or two more is a retry across the reconnect.
	if got := plumbing.Requests(n.Session) - before; got > regs+1+4 {
		t.Fatalf("the expiry cost the session %d requests for %d znodes, want about one each", got, regs+1)
	}
}
