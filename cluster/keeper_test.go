package cluster_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// A burst of registrations under one name, from many callers, lists the
// name's directory about once per VerifyDelay, not once per create: a
// create that landed while a listing was on the wire used to start another
// listing at once, so a busy directory was listed back to back (0.2
// listings per registration at 64 callers). And the znodes created during
// the burst are still watched: deleted by someone else, they come back.
func TestBusyDirectoryIsListedEveryVerifyDelay(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	ctx := ctxT(t)
	const burst, callers = 400, 32
	pids := make([]*actor.PID, burst+1)
	for i := range pids {
		pids[i] = n.Spawn(t)
	}
	if err := n.Registry.Register(ctx, "busy", pids[0], nil); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if !cluster.Settled(n.Registry) {
			return fmt.Errorf("keeper not settled")
		}
		return nil
	})

	before := plumbing.Requests(n.Session)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	next := make(chan *actor.PID, burst)
	for _, p := range pids[1:] {
		next <- p
	}
	close(next)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				errs <- n.Registry.Register(ctx, "busy", p, nil)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each registration is one create (the directory is known to exist);
	// the rest are the keeper's listings.
	listings := plumbing.Requests(n.Session) - before - burst
	bound := 3 + 2*int64(elapsed/cluster.VerifyDelay)
	t.Logf("%d registrations in %v: %d listings (bound %d)", burst, elapsed.Round(time.Millisecond), listings, bound)
	if listings > bound {
		t.Fatalf("%d listings of the directory during a burst of %v, want at most %d (one per %v)",
			listings, elapsed.Round(time.Millisecond), bound, cluster.VerifyDelay)
	}

	// Znodes created during the burst are watched: a foreign delete of
	// some of them is repaired.
	raw := zkc.Connect(t)
	dir := n.Registry.Layout().ServicePath("busy")
	names, _, err := raw.Children(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != burst+1 {
		t.Fatalf("%d registrations in ZooKeeper, want %d", len(names), burst+1)
	}
	victims := []string{names[len(names)/3], names[len(names)/2], names[len(names)-1]}
	for _, v := range victims {
		if err := raw.Delete(dir+"/"+v, -1); err != nil {
			t.Fatal(err)
		}
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		for _, v := range victims {
			ok, _, err := raw.Exists(dir + "/" + v)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s deleted by a foreign client is not back", v)
			}
		}
		return nil
	})
}
