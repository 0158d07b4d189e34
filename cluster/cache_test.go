package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// One join or one leave costs a watching node at most two reads, whatever
// the service's size: the children again, and the data of the one that
// joined.
func TestChurnCostIsFlat(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	var pids []*actor.PID
	for range 50 {
		pid := a.Spawn(t)
		register(t, a, "svc", pid)
		pids = append(pids, pid)
	}
	capable(t, b, "svc", pids...)
	for round := range 10 {
		join := round%2 == 0
		if join {
			pid := a.Spawn(t)
			register(t, a, "svc", pid)
			pids = append(pids, pid)
		} else {
			if err := a.Registry.Unregister(ctx, "svc", pids[0]); err != nil {
				t.Fatal(err)
			}
			pids = pids[1:]
		}
		// The watch sweeps b's entry; b's next lookup reads the change.
		zktest.Eventually(t, 10*time.Second, func() error {
			if cluster.Cached(b.Registry, "svc") {
				return errors.New("b's entry not swept yet")
			}
			return nil
		})
		// b's keeper may still check its own directory (a join of the
		// nodes at the start): not part of the lookup's cost.
		zktest.Eventually(t, 10*time.Second, func() error {
			if !cluster.Settled(b.Registry) {
				return errors.New("b's keeper is busy")
			}
			return nil
		})
		before := plumbing.Requests(b.Session)
		got, err := b.Registry.GetCapable(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if !samePIDs(got, pids) {
			t.Fatalf("round %d: b sees %d members, want %d", round, len(got), len(pids))
		}
		if n := plumbing.Requests(b.Session) - before; n > 2 {
			t.Fatalf("round %d (join %v): the lookup after one change made %d requests, want ≤ 2", round, join, n)
		}
	}
}

// A registration re-made under its own znode name with new metadata (a
// delete and a create between two reads of the children) is read again:
// the children version shows what the names alone do not.
func TestMetadataChangeUnderTheSameNameIsSeen(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid, other := a.Spawn(t), a.Spawn(t)
	register(t, a, "svc", other)
	for v := range 5 {
		meta := map[string]string{"v": fmt.Sprint(v)}
		if err := a.Registry.Register(ctx, "svc", pid, meta); err != nil {
			t.Fatal(err)
		}
		zktest.Eventually(t, 10*time.Second, func() error {
			regs, err := b.Registry.Lookup(context.Background(), "svc")
			if err != nil {
				return err
			}
			for _, r := range regs {
				if r.Pid.Id == pid.Id {
					if r.Metadata["v"] != meta["v"] {
						return fmt.Errorf("b sees v=%s, want %s", r.Metadata["v"], meta["v"])
					}
					return nil
				}
			}
			return errors.New("b does not see the registration")
		})
	}
}

// Names nobody registered are looked up without growing the cache past its
// bound for absent entries.
func TestAbsentNamesAreBounded(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	for i := range 1100 {
		if pids, err := a.Registry.GetCapable(ctx, fmt.Sprint("nobody-", i)); err != nil || len(pids) != 0 {
			t.Fatalf("GetCapable = %v, %v", pids, err)
		}
	}
	if st := cluster.CacheStats(a.Registry); st.Absent > 1024 || st.Entries > 1024 {
		t.Fatalf("cache after 1100 absent names: %+v, want at most 1024", st)
	}
}
