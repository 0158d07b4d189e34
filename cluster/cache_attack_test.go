package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
	"google.golang.org/protobuf/proto"
)

// Absent entries past the bound are "served but not kept": every lookup of
// such a name loads again, and each load's ExistsW on the missing directory
// adds one more watch channel to go-zookeeper's client-side table, freed
// only when the directory is created. Lookups of names that never appear
// grow the client's memory without bound.
func TestAttackAbsentLookupsLeakClientWatchers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	for i := range cluster.DefaultMaxAbsentForTest + 1 {
		if _, err := a.Registry.GetCapable(ctx, fmt.Sprint("nobody-", i)); err != nil {
			t.Fatal(err)
		}
	}
	name := "never-registered"
	const lookups = 200
	for range lookups {
		if _, err := a.Registry.GetCapable(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	n := cluster.ClientWatchers(a.Registry)[root+"/services/"+name]
	t.Logf("%d lookups of one absent name left %d watch channels for it", lookups, n)
	if n > 2 {
		t.Fatalf("%d lookups of one absent name left %d client-side watch channels (unbounded: one per lookup)", lookups, n)
	}
}

// Same with idle entries: a present service re-loaded after every janitor
// drop (nothing changed) stacks one more child-watch channel per load.
func TestAttackReloadWithoutChangeStacksWatchers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	register(t, a, "svc", pid)
	for range 50 {
		// Register of the same (name, PID) changes nothing in ZooKeeper but
		// evicts; the next lookup loads again.
		register(t, a, "svc", pid)
		if _, err := a.Registry.GetCapable(ctx, "svc"); err != nil {
			t.Fatal(err)
		}
	}
	n := cluster.ClientWatchers(a.Registry)[root+"/services/svc"]
	t.Logf("50 reloads without change left %d watch channels", n)
	if n > 3 {
		t.Fatalf("50 reloads without a change left %d client-side watch channels on the directory", n)
	}
}

// setData on a registration (a foreign client; zkactor never sets data in
// place, a metadata change is a delete and a create) is not watched: a
// children watch does not fire for it, and loads after joins keep the
// record as it was read (documented in the package doc). What a lookup
// serves stays what the registering node wrote, and a change made the
// zkactor way (Register with new metadata) is seen.
func TestAttackSetDataOnChildIsNotWatched(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "svc", pid, map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "svc", pid)
	dir := root + "/services/svc"
	p, err := onlyChild(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, st, err := raw.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec pb.Registration
	if err := proto.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Metadata["v"] = "2"
	nd, _ := proto.Marshal(&rec)
	if _, err := raw.Set(p, nd, st.Version); err != nil {
		t.Fatal(err)
	}
	// A join after the set: b's entry is swept and loaded again.
	other := a.Spawn(t)
	register(t, a, "svc", other)
	capable(t, b, "svc", pid, other)
	regs, err := b.Registry.Lookup(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if r.Pid.Id == pid.Id && r.Metadata["v"] != "1" {
			t.Fatalf("after a join, b serves v=%s, want the record as registered (v=1)", r.Metadata["v"])
		}
	}
	if err := a.Registry.Register(ctx, "svc", pid, map[string]string{"v": "3"}); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		regs, err := b.Registry.Lookup(ctx, "svc")
		if err != nil {
			return err
		}
		for _, r := range regs {
			if r.Pid.Id == pid.Id && r.Metadata["v"] == "3" {
				return nil
			}
		}
		return fmt.Errorf("b does not see v=3")
	})
}

// Property: a child re-made under its name (metadata change) together with
// another child leaving, between two loads, is read again (the children
// version moved by 3, the names show 1).
func TestAttackRecreateAndLeaveBetweenLoads(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid, leaver := a.Spawn(t), a.Spawn(t)
	if err := a.Registry.Register(ctx, "svc", pid, map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	register(t, a, "svc", leaver)
	capable(t, b, "svc", pid, leaver)
	_, st0, _ := raw.Children(root + "/services/svc")
	if err := a.Registry.Register(ctx, "svc", pid, map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Registry.Unregister(ctx, "svc", leaver); err != nil {
		t.Fatal(err)
	}
	_, st1, _ := raw.Children(root + "/services/svc")
	t.Logf("cversion %d -> %d", st0.Cversion, st1.Cversion)
	zktest.Eventually(t, 10*time.Second, func() error {
		regs, err := b.Registry.Lookup(context.Background(), "svc")
		if err != nil {
			return err
		}
		if len(regs) != 1 || regs[0].Metadata["v"] != "2" {
			return fmt.Errorf("b sees %v", regs)
		}
		return nil
	})
}
