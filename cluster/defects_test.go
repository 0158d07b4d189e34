package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// Regression tests for the registry defects of issue 8 (items 1-4).

func settled(t testing.TB, n *node) {
	t.Helper()
	zktest.Eventually(t, 5*time.Second, func() error {
		if !cluster.Settled(n.Registry) {
			return errors.New("the keeper still has znodes to create or delete")
		}
		return nil
	})
}

// Item 1: two concurrent Registers of one (name, PID) with different
// metadata share one path; the one that finished second used to delete the
// znode the other had acknowledged.
func TestConcurrentRegisterOfOnePIDKeepsTheZnode(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	pid := a.Spawn(t)
	dir := a.Registry.Layout().ServicePath("dup")

	for round := range 20 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = a.Registry.Register(ctx, "dup", pid, map[string]string{"v": fmt.Sprint(round, "-", i)})
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		settled(t, a)
		kids, _, err := raw.Children(dir)
		if err != nil || len(kids) != 1 {
			t.Fatalf("round %d: both Registers returned nil, yet children of %s = %v, %v; want one", round, dir, kids, err)
		}
		data, _, err := raw.Get(dir + "/" + kids[0])
		if err != nil {
			t.Fatal(err)
		}
		rec := &pb.Registration{}
		if err := proto.Unmarshal(data, rec); err != nil {
			t.Fatal(err)
		}
		if v := rec.Metadata["v"]; v != fmt.Sprint(round, "-0") && v != fmt.Sprint(round, "-1") {
			t.Fatalf("round %d: the znode holds metadata %q of an earlier round", round, v)
		}
	}
}

// guardedService makes a service whose container nobody may create
// children in (a foreign client made it read-only), and returns a node.
func guardedService(t *testing.T, zkc *zktest.Cluster, root, name string) *node {
	t.Helper()
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	raw := zkc.Connect(t)
	services := n.Registry.Layout().ServicesPath()
	if _, err := raw.Create(services, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	if _, err := raw.Create(n.Registry.Layout().ServicePath(name), nil, 0, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatal(err)
	}
	return n
}

// Item 2: Register of one PID under two names at once, the first failing:
// the PID used to go unwatched, so the second registration outlived the
// actor.
func TestRegisterUnderTwoNamesFirstFailsStillWatches(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	b := guardedService(t, zkc, root, "guarded")
	raw := zkc.Connect(t)
	ctx := ctxT(t)

	const rounds = 16
	var pids []*actor.PID
	for round := range rounds {
		pid := b.Spawn(t)
		pids = append(pids, pid)
		var wg sync.WaitGroup
		var refused, accepted error
		wg.Add(2)
		go func() { defer wg.Done(); refused = b.Registry.Register(ctx, "guarded", pid, nil) }()
		go func() { defer wg.Done(); accepted = b.Registry.Register(ctx, fmt.Sprint("open-", round), pid, nil) }()
		wg.Wait()
		if !errors.Is(refused, zk.ErrNoAuth) {
			t.Fatalf("round %d: Register under the guarded name = %v, want ErrNoAuth", round, refused)
		}
		if accepted != nil {
			t.Fatalf("round %d: %v", round, accepted)
		}
	}
	for _, pid := range pids {
		if err := b.System.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		for round := range rounds {
			dir := b.Registry.Layout().ServicePath(fmt.Sprint("open-", round))
			if kids, _, err := raw.Children(dir); err == nil && len(kids) > 0 {
				return fmt.Errorf("round %d: registration %v outlives its stopped actor", round, kids)
			}
		}
		return nil
	})
}

// Issue 7 item 4 and the keeper: a create the server refuses (here with
// ErrNoAuth) is reported to the caller and dropped, not retried in the
// background for ever.
func TestRefusedCreateIsNotRetried(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	b := guardedService(t, zkc, root, "guarded")
	err := b.Registry.Register(ctxT(t), "guarded", b.Spawn(t), nil)
	if !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("Register under a guarded name = %v, want ErrNoAuth", err)
	}
	settled(t, b)
	before := plumbing.Requests(b.Session)
	// The keeper is idle: a later wake finds nothing to do.
	if err := b.Registry.Register(ctxT(t), "open", b.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	settled(t, b)
	if n := plumbing.Requests(b.Session) - before; n > 3 {
		t.Errorf("one Register after a refused one issued %d requests; the refused path is still being retried", n)
	}
}

// Item 3: Close while ZooKeeper is unreachable used to wait the request
// timeout (10 s) per registration. It must be bounded without a deadline.
func TestCloseWhileUnreachableIsBounded(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	for _, detected := range []bool{true, false} {
		t.Run(fmt.Sprint("disconnect-detected=", detected), func(t *testing.T) {
			ctx := ctxT(t)
			proxy := zktest.NewProxy(t, zkc.Addrs()[0])
			timeout := 2 * time.Second
			a := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: root, timeout: timeout})
			for i := range 5 {
				if err := a.Registry.Register(ctx, fmt.Sprint("svc-", i), a.Spawn(t), nil); err != nil {
					t.Fatal(err)
				}
			}
			proxy.Blackhole()
			if detected {
				zktest.Eventually(t, 5*time.Second, func() error {
					if a.Session.Connected() {
						return errors.New("still connected")
					}
					return nil
				})
			}
			start := time.Now()
			err := a.Registry.Close(context.Background())
			took := time.Since(start)
			if !errors.Is(err, cluster.ErrNotConnected) {
				t.Errorf("Close while unreachable = %v, want ErrNotConnected", err)
			}
			limit := 500 * time.Millisecond
			if !detected {
				limit = timeout // go-zookeeper notices the silence within 2/3 of it
			}
			if took > limit {
				t.Errorf("Close while unreachable took %v, want at most %v", took, limit)
			}
			t.Logf("Close took %v: %v", took, err)
			// Session.Close is not under test here: let it reach the server.
			proxy.Restore()
		})
	}
}

// Item 4: a second live process with the same node id used to delete the
// first one's node znode when its join failed.
func TestSecondNodeWithSameIDIsRefused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, nodeID: "fixed"})
	raw := zkc.Connect(t)
	nodePath := a.Registry.Layout().NodePath("fixed")

	for range 3 {
		_, err := startNode(nodeOpts{servers: zkc.Addrs(), root: root, nodeID: "fixed"})
		if !errors.Is(err, cluster.ErrNodeIDTaken) {
			t.Fatalf("second node with id %q: %v, want ErrNodeIDTaken", "fixed", err)
		}
		t.Logf("refused: %v", err)
		ok, stat, err := raw.Exists(nodePath)
		if err != nil || !ok {
			t.Fatalf("the first node's znode %s is gone after the refused join (%v)", nodePath, err)
		}
		if stat.EphemeralOwner != a.Session.ID() {
			t.Fatalf("%s owned by %#x, want the first node's session %#x", nodePath, stat.EphemeralOwner, a.Session.ID())
		}
	}
	peers, err := a.Registry.GetPeers(ctxT(t))
	if err != nil || len(peers) != 1 {
		t.Errorf("Peers = %v, %v; want the first node", peers, err)
	}
}
