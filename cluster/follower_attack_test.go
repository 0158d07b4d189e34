package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// The follower's event (or check) is a suspicion that an exists on the
// session settles. But in an ensemble the session's server may lag behind
// the follower's: the follower's server B has applied a foreign delete and
// sent the event, while the session's server A has not applied it yet. An
// exists on A (a local read, no sync) still finds the znode as ours, the
// suspicion is dropped, and when A applies the delete a moment later
// nobody looks again: the registration stays deleted for good.
func TestAttack10SuspicionSettledOnALaggingSessionServer(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies())
	addrs := zkc.Addrs()
	leader, others := leaderAndOthers(t, zkc)
	a, b := others[0], others[1] // session on a, follower on b
	cluster.SetFollowerServers(t, []string{addrs[b]})
	n := newNode(t, nodeOpts{servers: []string{addrs[a]}, root: zktest.Root(t)})
	raw := zktest.Dial(t, []string{addrs[leader]}, zktest.DefaultSessionTimeout)
	register(t, n, "svc", n.Spawn(t))
	register(t, n, "svc", n.Spawn(t))
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("svc")
	names, _, err := raw.Children(dir)
	if err != nil || len(names) != 2 {
		t.Fatalf("children %v, %v", names, err)
	}
	victim := dir + "/" + names[0]

	// Server a hears the leader's proposals and commits 1.5 s late.
	peer, _ := zkc.QuorumProxies(a, leader)
	peer.Delay(1500 * time.Millisecond)
	before := plumbing.Requests(n.Session)
	if err := raw.Delete(victim, -1); err != nil {
		t.Fatal(err)
	}
	// The suspicion is asked about (an exists on the session) and settled.
	zktest.Eventually(t, 10*time.Second, func() error {
		if plumbing.Requests(n.Session) == before || !cluster.Settled(n.Registry) {
			return errors.New("the keeper has not settled the suspicion yet")
		}
		return nil
	})
	settledAfter := plumbing.Requests(n.Session) - before
	peer.Delay(0)
	// Whatever a answered, the znode must come back once a has caught up.
	zktest.Eventually(t, 10*time.Second, func() error {
		ok, st, err := raw.Exists(victim)
		if err != nil {
			return err
		}
		if !ok || st.EphemeralOwner != n.Session.ID() {
			return fmt.Errorf("%s, deleted by a foreign client, is not back (the session asked %d question(s) and the keeper settled: the session's server answered before it had applied the delete)", victim, settledAfter)
		}
		return nil
	})
}

// Registry.Close returns promptly with the follower's connection silenced,
// both when it went silent after connecting and when it never got through
// its handshake.
func TestAttack10CloseWithFollowerBlackholedIsPrompt(t *testing.T) {
	zkc := zktest.Shared(t)
	for _, when := range []string{"after-connect", "from-start"} {
		t.Run(when, func(t *testing.T) {
			fp := zktest.NewProxy(t, zkc.Addrs()[0])
			cluster.SetFollowerServers(t, []string{fp.Addr()})
			if when == "from-start" {
				fp.Blackhole()
			}
			n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
			register(t, n, "svc", n.Spawn(t))
			if when == "after-connect" {
				n.Settle(t)
				fp.Blackhole()
				register(t, n, "other", n.Spawn(t))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := n.Registry.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("Registry.Close took %v with the follower blackholed (%s)", took, when)
			}
		})
	}
}

// ACL'd tree (digest auth): the follower authenticates with the session's
// credentials; a foreign delete by a client with them (an operator) of a
// registration and of the node's znode is repaired.
func TestAttack10ForeignDeleteInACLTreeIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	auth := &cluster.DigestAuth{User: "app", Password: "s3cret"}
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t), auth: auth})
	raw := zkc.Connect(t)
	if err := raw.AddAuth("digest", []byte("app:s3cret")); err != nil {
		t.Fatal(err)
	}
	register(t, n, "guarded", n.Spawn(t))
	reg, err := onlyChild(raw, n.Registry.Layout().ServicePath("guarded"))
	if err != nil {
		t.Fatal(err)
	}
	nodePath := n.Registry.Layout().NodePath(n.Registry.NodeID())
	for round := range 2 {
		for _, p := range []string{reg, nodePath} {
			if err := raw.Delete(p, -1); err != nil {
				t.Fatalf("round %d: delete %s: %v", round, p, err)
			}
		}
		comeBack(t, raw, n.Session.ID(), reg, nodePath)
	}
}

// The main session expires while the follower's connection is cut: the
// re-creations on the new session go out with no watch in place, and one
// deleted by someone else before the follower is back is found by the
// check that follows its re-arm.
func TestAttack10ExpiryWhileFollowerIsCutIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	sp := zktest.NewProxy(t, zkc.Addrs()[0])
	fp := followerProxy(t, zkc)
	n := newNode(t, nodeOpts{servers: []string{sp.Addr()}, root: zktest.Root(t), timeout: time.Second})
	raw := zkc.Connect(t)
	register(t, n, "svc", n.Spawn(t))
	n.Settle(t)
	dir := n.Registry.Layout().ServicePath("svc")
	nodePath := n.Registry.Layout().NodePath(n.Registry.NodeID())

	fp.Cut()
	old := n.Session.ID()
	zkc.ExpireSession(t, sp, old)
	var p string
	id := newSession(t, n.Session, old)
	zktest.Eventually(t, 20*time.Second, func() error {
		var err error
		if p, err = onlyChild(raw, dir); err != nil {
			return err
		}
		for _, q := range []string{p, nodePath} {
			ok, st, err := raw.Exists(q)
			if err != nil {
				return err
			}
			if !ok || st.EphemeralOwner != id {
				return fmt.Errorf("%s not re-created on the new session", q)
			}
		}
		return nil
	})
	for _, q := range []string{p, nodePath} {
		if err := raw.Delete(q, -1); err != nil {
			t.Fatal(err)
		}
	}
	fp.Restore()
	comeBack(t, raw, n.Session.ID(), p, nodePath)
}

// Two registrations and their container directory deleted in one
// transaction come back, and the directory is still followed afterwards.
func TestAttack10DirectoryOfTwoDeletedWithThemIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	register(t, n, "svc", n.Spawn(t))
	register(t, n, "svc", n.Spawn(t))
	dir := n.Registry.Layout().ServicePath("svc")
	names, _, err := raw.Children(dir)
	if err != nil || len(names) != 2 {
		t.Fatalf("children %v, %v", names, err)
	}
	p1, p2 := dir+"/"+names[0], dir+"/"+names[1]
	for round := range 3 {
		if _, err := raw.Multi(&zk.DeleteRequest{Path: p1, Version: -1}, &zk.DeleteRequest{Path: p2, Version: -1},
			&zk.DeleteRequest{Path: dir, Version: -1}); err != nil {
			t.Fatalf("round %d: multi delete: %v", round, err)
		}
		comeBack(t, raw, n.Session.ID(), p1, p2)
		if err := raw.Delete(p2, -1); err != nil {
			t.Fatal(err)
		}
		comeBack(t, raw, n.Session.ID(), p1, p2)
	}
}

// Register, Unregister and Register again of new names while the
// follower's replies come late (past armWait): an addWatch reply of a
// directory that went idle and was followed again in between must not
// leave a registration unfollowed.
func TestAttack10ChurnWithSlowFollowerIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	fp := followerProxy(t, zkc)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	raw := zkc.Connect(t)
	n.Settle(t)
	ctx := ctxT(t)
	fp.Delay(400 * time.Millisecond)
	var victims []string
	for i := range 4 {
		name := fmt.Sprintf("svc%d", i)
		pid := n.Spawn(t)
		register(t, n, name, pid)
		if err := n.Registry.Unregister(ctx, name, pid); err != nil {
			t.Fatal(err)
		}
		register(t, n, name, pid)
		p, err := onlyChild(raw, n.Registry.Layout().ServicePath(name))
		if err != nil {
			t.Fatal(err)
		}
		victims = append(victims, p)
	}
	fp.Delay(0)
	n.Settle(t)
	for _, v := range victims {
		if err := raw.Delete(v, -1); err != nil {
			t.Fatal(err)
		}
	}
	comeBack(t, raw, n.Session.ID(), victims...)
}

// While the follower's connection is down, a register/unregister churn of
// distinct names leaves the follower's state proportional to what is
// wanted, not to what passed through; once it is back, everything the
// churn left goes.
func TestAttack10FollowerStateBoundedDuringOutage(t *testing.T) {
	zkc := zktest.Shared(t)
	fp := followerProxy(t, zkc)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	n.Settle(t)
	ctx := ctxT(t)
	fp.Cut()
	const churn = 40
	for i := range churn {
		name := fmt.Sprintf("churn%d", i)
		pid := n.Spawn(t)
		register(t, n, name, pid)
		if err := n.Registry.Unregister(ctx, name, pid); err != nil {
			t.Fatal(err)
		}
	}
	dirs, due, toCheck, inflight, wanted := cluster.FollowerSizes(n.Registry)
	t.Logf("during the outage: dirs %d due %d toCheck %d inflight %d wanted %d", dirs, due, toCheck, inflight, wanted)
	fp.Restore()
	zktest.Eventually(t, 10*time.Second, func() error {
		d, du, tc, in, w := cluster.FollowerSizes(n.Registry)
		if d != 1 || du != 0 || tc != 0 || in != 0 || w != 1 {
			return fmt.Errorf("after the outage: dirs %d due %d toCheck %d inflight %d wanted %d; want 1 0 0 0 1", d, du, tc, in, w)
		}
		return nil
	})
	if toCheck > wanted {
		t.Fatalf("during the outage the follower held %d znodes to check for %d wanted: %d unregistered paths pile up until it reconnects", toCheck, wanted, toCheck-wanted)
	}
}
