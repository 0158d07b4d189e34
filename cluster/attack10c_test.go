package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// A foreign delete that lands after the server applied our create but
// before the keeper has read the create's reply: the follower's event comes
// while created[path] is still 0, so suspectUnlessOwned ignores it; the
// create was sent with the directory's watch in place, so follower.created
// schedules no check either. Nobody looks again.
func TestAttack10cDeleteBeforeCreateReplyIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	sp := zktest.NewProxy(t, zkc.Addrs()[0])
	cluster.SetFollowerServers(t, zkc.Addrs()) // the follower does not go through sp
	n := newNode(t, nodeOpts{servers: []string{sp.Addr()}, root: zktest.Root(t)})
	raw := zkc.Connect(t)
	register(t, n, "svc", n.Spawn(t)) // the directory is followed from now on
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("svc")
	before, _, err := raw.Children(dir)
	if err != nil {
		t.Fatal(err)
	}

	sp.Delay(time.Second) // replies to the session come a second late
	done := make(chan error, 1)
	go func() { done <- n.Registry.Register(context.Background(), "svc", n.Spawn(t), nil) }()
	var victim string
	zktest.Eventually(t, 5*time.Second, func() error {
		names, _, err := raw.Children(dir)
		if err != nil {
			return err
		}
		for _, c := range names {
			if !slices.Contains(before, c) {
				victim = dir + "/" + c
				return nil
			}
		}
		return errors.New("the new registration is not created yet")
	})
	if err := raw.Delete(victim, -1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sp.Delay(0)
	comeBack(t, raw, n.Session.ID(), victim)
}

// Suspects that arrive while the session is disconnected (same session
// after): the loop drops the kick then, and the Connected notification
// must bring it back.
func TestAttack10cDeleteWhileSessionDisconnectedIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	sp := zktest.NewProxy(t, zkc.Addrs()[0])
	cluster.SetFollowerServers(t, zkc.Addrs()) // the follower does not go through sp
	n := newNode(t, nodeOpts{servers: []string{sp.Addr()}, root: zktest.Root(t)})
	raw := zkc.Connect(t)
	register(t, n, "svc", n.Spawn(t))
	n.Settle(t)
	p, err := onlyChild(raw, n.Registry.Layout().ServicePath("svc"))
	if err != nil {
		t.Fatal(err)
	}
	id := n.Session.ID()
	sp.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if n.Session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	if err := raw.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	// The follower reports it (it has its own connection).
	zktest.Eventually(t, 5*time.Second, func() error {
		if cluster.Settled(n.Registry) {
			return errors.New("the keeper has not taken the suspicion yet")
		}
		return nil
	})
	sp.Restore()
	comeBack(t, raw, id, p)
	if n.Session.ID() != id {
		t.Fatalf("session changed: the test meant the same one")
	}
}

// A foreign set of a kept znode's data: is it ever put back?
func TestAttack10cForeignDataOverwriteIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	pid := n.Spawn(t)
	register(t, n, "svc", pid)
	n.Settle(t)
	p, err := onlyChild(raw, n.Registry.Layout().ServicePath("svc"))
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := raw.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Set(p, []byte("garbage"), -1); err != nil {
		t.Fatal(err)
	}
	other := newNode(t, nodeOpts{servers: zkc.Addrs(), root: n.Registry.Layout().Root})
	zktest.Eventually(t, 5*time.Second, func() error {
		got, _, err := raw.Get(p)
		if err != nil {
			return err
		}
		if string(got) != string(good) {
			pids, _ := other.Registry.GetCapable(context.Background(), "svc")
			return fmt.Errorf("%s still holds the foreign data %q; another node's GetCapable(svc) = %v", p, got, pids)
		}
		return nil
	})
}

// After an expiry the old session's deletes reach the follower; those that
// come after the keeper re-created the znode are asked about on the
// session (exists, sync, exists): the registering session pays for them.
func TestAttack10cExpiryRepairCostsOnlyCreates(t *testing.T) {
	zkc := zktest.Shared(t)
	sp := zktest.NewProxy(t, zkc.Addrs()[0])
	cluster.SetFollowerServers(t, zkc.Addrs())
	n := newNode(t, nodeOpts{servers: []string{sp.Addr()}, root: zktest.Root(t), timeout: 2 * time.Second})
	pids := make([]*actor.PID, 300)
	for i := range pids {
		pids[i] = n.Spawn(t)
	}
	registerAll(t, n, "big", pids, 16)
	n.Settle(t)
	old := n.Session.ID()
	before := plumbing.Requests(n.Session)
	zkc.ExpireSession(t, sp, old)
	newSession(t, n.Session, old)
	n.Settle(t)
	cost := plumbing.Requests(n.Session) - before
	// 300 registrations + the node znode, their creates; a little slack.
	if limit := int64(len(pids)) + 20; cost > limit {
		t.Fatalf("re-creating %d znodes after an expiry cost the session %d requests (> %d)", len(pids)+1, cost, limit)
	}
	t.Logf("re-creating %d znodes cost %d requests", len(pids)+1, cost)
}

// The follower's server stops; the follower reconnects to another server
// of the ensemble. A registration deleted during the gap is found by the
// checks after the re-arm, and one deleted after it by the new watch.
func TestAttack10cFollowerServerStopsFollowerMovesOn(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3)
	addrs := zkc.Addrs()
	leader, others := leaderAndOthers(t, zkc)
	f, g := others[0], others[1]
	cluster.SetFollowerServers(t, []string{addrs[f], addrs[g]})
	n := newNode(t, nodeOpts{servers: []string{addrs[leader]}, root: zktest.Root(t)})
	raw := zktest.Dial(t, []string{addrs[leader]}, zktest.DefaultSessionTimeout)
	for range 3 {
		register(t, n, "svc", n.Spawn(t))
	}
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("svc")
	names, _, err := raw.Children(dir)
	if err != nil || len(names) != 3 {
		t.Fatalf("children %v, %v", names, err)
	}
	zkc.Stop(f)
	gapVictim := dir + "/" + names[0]
	if err := raw.Delete(gapVictim, -1); err != nil {
		t.Fatal(err)
	}
	comeBack(t, raw, n.Session.ID(), gapVictim)
	n.Settle(t)
	later := dir + "/" + names[1]
	if err := raw.Delete(later, -1); err != nil {
		t.Fatal(err)
	}
	comeBack(t, raw, n.Session.ID(), later)
}

// Registry.Close while registrations are under way and foreign deletes
// keep the follower and the keeper busy: Close returns, nothing leaks
// (goleak in TestMain), and no kept znode of the node outlives it.
func TestAttack10cCloseRacesRegistrationsAndRepairs(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	dir := n.Registry.Layout().ServicePath("svc")
	register(t, n, "svc", n.Spawn(t))
	stop := make(chan struct{})
	regDone := make(chan struct{})
	go func() {
		defer close(regDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = n.Registry.Register(context.Background(), fmt.Sprintf("svc%d", i%5), n.Spawn(t), nil)
		}
	}()
	delDone := make(chan struct{})
	go func() {
		defer close(delDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if names, _, err := raw.Children(dir); err == nil {
				for _, c := range names {
					_ = raw.Delete(dir+"/"+c, -1)
				}
			}
		}
	}()
	// Let both run until some repairs happened.
	zktest.Eventually(t, 10*time.Second, func() error {
		if cluster.Settled(n.Registry) {
			return errors.New("the keeper is idle")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.Registry.Close(ctx)
	close(stop)
	<-regDone
	<-delDone
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	id := n.Session.ID()
	zktest.Eventually(t, 10*time.Second, func() error {
		svcs, _, err := raw.Children(n.Registry.Layout().ServicesPath())
		if err != nil {
			return err
		}
		for _, s := range svcs {
			cs, _, err := raw.Children(n.Registry.Layout().ServicePath(s))
			if err != nil {
				continue
			}
			for _, c := range cs {
				p := n.Registry.Layout().ServicePath(s) + "/" + c
				ok, st, err := raw.Exists(p)
				if err == nil && ok && st.EphemeralOwner == id {
					return fmt.Errorf("%s still kept by the closed registry's session", p)
				}
			}
		}
		return nil
	})
}
