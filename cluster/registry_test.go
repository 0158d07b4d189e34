package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

func TestRegisterIsSeenClusterWide(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)

	// B looks first, so that its cache holds the empty answer and only a
	// watch can make it see A's registration.
	if got, err := b.Registry.GetCapable(ctx, "worker"); err != nil || len(got) != 0 {
		t.Fatalf("GetCapable before any registration = %v, %v; want empty", got, err)
	}
	p1, p2 := a.Spawn(t), b.Spawn(t)
	if err := a.Registry.Register(ctx, "worker", p1, map[string]string{"zone": "a"}); err != nil {
		t.Fatal(err)
	}
	// Read-your-writes on the registering node, at once.
	got, err := a.Registry.GetCapable(ctx, "worker")
	if err != nil || !samePIDs(got, []*actor.PID{p1}) {
		t.Fatalf("A's GetCapable right after Register = %v, %v", got, err)
	}
	capable(t, b, "worker", p1)
	if err := b.Registry.Register(ctx, "worker", p2, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, a, "worker", p1, p2)
	capable(t, b, "worker", p1, p2)

	recs, err := b.Registry.Lookup(ctx, "worker")
	if err != nil {
		t.Fatal(err)
	}
	var zone string
	for _, r := range recs {
		if r.Pid.Id == p1.Id && r.Pid.Address == p1.Address {
			zone = r.Metadata["zone"]
			if r.NodeId != a.Registry.NodeID() || r.NodeAddress != a.System.Address() {
				t.Errorf("record of p1 names node %s at %s, want %s at %s", r.NodeId, r.NodeAddress, a.Registry.NodeID(), a.System.Address())
			}
		}
	}
	if zone != "a" {
		t.Errorf("metadata of p1 = %q, want zone a", zone)
	}

	peers, err := a.Registry.GetPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Errorf("Peers = %v, want both nodes", peers)
	}

	if err := a.Registry.Unregister(ctx, "worker", p1); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "worker", p2)
	capable(t, a, "worker", p2)
}

func TestCacheHitsCostNoRequest(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	p1 := a.Spawn(t)
	if err := a.Registry.Register(ctx, "svc", p1, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "svc", p1)
	settled(t, b) // the keeper's checks are the session's requests too

	before := plumbing.Requests(b.Session)
	for range 10000 {
		got, err := b.Registry.GetCapable(ctx, "svc")
		if err != nil || len(got) != 1 {
			t.Fatalf("GetCapable = %v, %v", got, err)
		}
		got[0] = nil // the slice is the caller's: this must not reach the cache
	}
	if n := plumbing.Requests(b.Session) - before; n != 0 {
		t.Fatalf("10000 cached lookups issued %d ZooKeeper requests, want 0", n)
	}
	capable(t, b, "svc", p1)

	// A change sweeps the entry: the next lookup reads again.
	p2 := a.Spawn(t)
	if err := a.Registry.Register(ctx, "svc", p2, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "svc", p1, p2)
	if n := plumbing.Requests(b.Session) - before; n == 0 {
		t.Fatal("a lookup after a change issued no request: the cache was not swept")
	}
}

func TestRegistrationGoesWhenActorStops(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	for _, name := range []string{"one", "two"} {
		if err := a.Registry.Register(ctx, name, pid, nil); err != nil {
			t.Fatal(err)
		}
		capable(t, b, name, pid)
	}
	if err := a.System.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "one")
	capable(t, b, "two")
	capable(t, a, "one")
	raw := zkc.Connect(t)
	zktest.Eventually(t, 5*time.Second, func() error {
		kids, _, err := raw.Children(a.Registry.Layout().ServicePath("one"))
		if err == nil && len(kids) > 0 {
			return fmt.Errorf("znodes left: %v", kids)
		}
		return nil
	})
}

func TestRegisterIsIdempotent(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	for range 3 {
		if err := a.Registry.Register(ctx, "dup", pid, map[string]string{"v": "1"}); err != nil {
			t.Fatal(err)
		}
	}
	raw := zkc.Connect(t)
	dir := a.Registry.Layout().ServicePath("dup")
	kids, stat, err := raw.Children(dir)
	if err != nil || len(kids) != 1 {
		t.Fatalf("children of %s = %v, %v; want one registration", dir, kids, err)
	}
	cversion := stat.Cversion
	// The same registration again changes nothing in ZooKeeper.
	if err := a.Registry.Register(ctx, "dup", pid, map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	if _, stat, _ := raw.Children(dir); stat.Cversion != cversion {
		t.Errorf("an identical Register changed the children (cversion %d → %d)", cversion, stat.Cversion)
	}
	// New metadata replaces the record, and lookups see it.
	if err := a.Registry.Register(ctx, "dup", pid, map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		recs, err := a.Registry.Lookup(ctx, "dup")
		if err != nil || len(recs) != 1 || recs[0].Metadata["v"] != "2" {
			return fmt.Errorf("Lookup = %v, %v; want one record with v=2", recs, err)
		}
		return nil
	})
	if kids, _, _ := raw.Children(dir); len(kids) != 1 {
		t.Errorf("after a metadata change: children %v, want one", kids)
	}
}

func TestForeignDataIsSkipped(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "mixed", pid, nil); err != nil {
		t.Fatal(err)
	}
	raw := zkc.Connect(t)
	dir := a.Registry.Layout().ServicePath("mixed")
	noPID, _ := proto.Marshal(&pb.Node{Id: "x", Address: "y"}) // valid protobuf, wrong record
	for name, data := range map[string][]byte{
		"garbage": {0xff, 0x00, 0x13, 0x37, 'j', 'u', 'n', 'k'},
		"empty":   nil,
		"other":   noPID,
		"text":    []byte(`{"pid":"not protobuf"}`),
	} {
		if _, err := raw.Create(dir+"/"+name, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	capable(t, a, "mixed", pid)
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	capable(t, b, "mixed", pid)
	// Garbage among the nodes too.
	if _, err := raw.Create(a.Registry.Layout().NodePath("garbage"), []byte{0xff}, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		peers, err := b.Registry.GetPeers(ctx)
		if err != nil || len(peers) != 2 {
			return fmt.Errorf("Peers = %v, %v; want the two real nodes", peers, err)
		}
		return nil
	})
}

func TestBadNames(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	for _, name := range []string{"", "a/b", "/", ".", "..", "tab\there", "nul\x00", "bell\a", "\xff\xfe", strings.Repeat("x", cluster.MaxNameLength+1), "rep\ufffd", "obj\ufffc", "emoji\U0001F600"} {
		err := a.Registry.Register(ctx, name, pid, nil)
		if !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("Register(%q) = %v, want ErrBadName", name, err)
		}
		if _, err := a.Registry.GetCapable(ctx, name); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("GetCapable(%q) = %v, want ErrBadName", name, err)
		}
		if err := a.Registry.Unregister(ctx, name, pid); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("Unregister(%q) = %v, want ErrBadName", name, err)
		}
	}
	for _, name := range []string{"worker", "a b", "ünïcødé", "x.y-z_1", "zookeeper", strings.Repeat("x", cluster.MaxNameLength)} {
		if err := a.Registry.Register(ctx, name, pid, nil); err != nil {
			t.Errorf("Register(%q) = %v, want nil", name, err)
		}
	}
	if err := a.Registry.Register(ctx, "ok", nil, nil); err == nil {
		t.Error("Register with a nil PID succeeded")
	}
	big := map[string]string{"k": strings.Repeat("v", cluster.MaxMetadataSize+1)}
	if err := a.Registry.Register(ctx, "big", pid, big); !errors.Is(err, cluster.ErrTooLarge) {
		t.Errorf("Register with oversized metadata = %v, want ErrTooLarge", err)
	}
	for _, root := range []string{"", "zkactor", "/a/", "/a//b", "/a/../b", "/zookeeper", "/zookeeper/x", "/a\ufffd"} {
		if root == "" {
			continue // "" means the default
		}
		_, err := startNode(nodeOpts{servers: zkc.Addrs(), root: root})
		if !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("root %q: %v, want ErrBadName", root, err)
		}
	}
}

func TestACLProtectsRegistrations(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	owner := &cluster.DigestAuth{User: "app", Password: "s3cret"}
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, auth: owner})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "guarded", pid, nil); err != nil {
		t.Fatal(err)
	}
	path := a.Registry.Layout().ServicePath("guarded")
	for _, creds := range []string{"", "app:wrong", "intruder:s3cret"} {
		raw := zkc.Connect(t)
		if creds != "" {
			if err := raw.AddAuth("digest", []byte(creds)); err != nil {
				t.Fatal(err)
			}
		}
		kids, _, err := raw.Children(path)
		if err != nil || len(kids) != 1 {
			t.Fatalf("anyone may read: children = %v, %v", kids, err)
		}
		reg := path + "/" + kids[0]
		if err := raw.Delete(reg, -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("creds %q: delete %s = %v, want ErrNoAuth", creds, reg, err)
		}
		if _, err := raw.Set(reg, []byte("overwritten"), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("creds %q: set %s = %v, want ErrNoAuth", creds, reg, err)
		}
		if _, err := raw.Create(path+"/intruder", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("creds %q: create under %s = %v, want ErrNoAuth", creds, path, err)
		}
	}
	capable(t, a, "guarded", pid)

	// A node with the wrong credentials gets a clear error naming the path.
	_, err := startNode(nodeOpts{servers: zkc.Addrs(), root: root, auth: &cluster.DigestAuth{User: "app", Password: "wrong"}})
	if !errors.Is(err, zk.ErrNoAuth) || !strings.Contains(err.Error(), root+"/nodes/") {
		t.Errorf("joining with wrong credentials: %v; want ErrNoAuth naming %s/nodes/...", err, root)
	}
	// The right credentials on another node work.
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, auth: owner})
	if err := b.Registry.Register(ctx, "guarded", b.Spawn(t), nil); err != nil {
		t.Fatalf("same identity on another node: %v", err)
	}
}

func TestZooKeeperDown(t *testing.T) {
	// A port nobody listens on: Dial fails within its ctx with a clear error.
	p := zktest.NewProxy(t, "127.0.0.1:1")
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cluster.Dial(ctx, cluster.Config{Servers: []string{p.Addr()}, Logger: testLogger()})
	if !errors.Is(err, cluster.ErrNotConnected) {
		t.Fatalf("Dial to nothing = %v, want ErrNotConnected", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Dial waited %v past its ctx", waited)
	}
}
