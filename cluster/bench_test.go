package cluster_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// Benchmarks against the shared ZooKeeper server (standalone, loopback).
// They measure; they assert nothing about timing.

// BenchmarkGetCapableHit: a lookup served from the cache, which should be
// a map read and one allocation (the caller's copy of the slice).
func BenchmarkGetCapableHit(b *testing.B) {
	n, _ := benchCluster(b)
	ctx := ctxT(b)
	register(b, n, "svc", n.Spawn(b))
	if got, err := n.Registry.GetCapable(ctx, "svc"); err != nil || len(got) != 1 {
		b.Fatalf("GetCapable = %v, %v", got, err) // and the cache is filled
	}
	requests := plumbing.Requests(n.Session)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pids, err := n.Registry.GetCapable(ctx, "svc")
		if err != nil || len(pids) != 1 {
			b.Fatalf("GetCapable = %v, %v", pids, err)
		}
	}
	b.StopTimer()
	if d := plumbing.Requests(n.Session) - requests; d != 0 {
		b.Fatalf("cached lookups issued %d ZooKeeper requests", d)
	}
}

// BenchmarkGetCapableHitParallel: the same from every P at once; hits
// take no lock a writer holds, so this should scale.
func BenchmarkGetCapableHitParallel(b *testing.B) {
	n, _ := benchCluster(b)
	ctx := ctxT(b)
	register(b, n, "svc", n.Spawn(b))
	if _, err := n.Registry.GetCapable(ctx, "svc"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pids, err := n.Registry.GetCapable(ctx, "svc")
			if err != nil || len(pids) != 1 {
				b.Errorf("GetCapable = %v, %v", pids, err)
				return
			}
		}
	})
}

// BenchmarkGetCapableMiss: a lookup that must read ZooKeeper: each
// iteration asks for a name never looked up before (nothing is registered
// under it, so the read is a get-children and an exists, both watched).
func BenchmarkGetCapableMiss(b *testing.B) {
	n, _ := benchCluster(b)
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("miss-%d", i)
		i++
		b.StartTimer()
		if pids, err := n.Registry.GetCapable(ctx, name); err != nil || len(pids) != 0 {
			b.Fatalf("GetCapable(%s) = %v, %v", name, pids, err)
		}
	}
}

// BenchmarkRegister: Register of a new (name, PID), which returns once
// ZooKeeper has the ephemeral znode: one create round trip.
func BenchmarkRegister(b *testing.B) {
	n, _ := benchCluster(b)
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		pid := n.Spawn(b) // a live actor: the registry drops those that stop
		b.StartTimer()
		if err := n.Registry.Register(ctx, "reg", pid, map[string]string{"zone": "a"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnregisterVisible: from Unregister on node A until node B's
// GetCapable no longer returns the PID: A's delete, the watch event to B,
// B's sweep and its next read of ZooKeeper. Each iteration first
// registers a PID and waits until B sees it (ns/op includes that part;
// ns/visible and the percentiles do not).
func BenchmarkUnregisterVisible(b *testing.B) {
	a, bb := benchCluster(b)
	ctx := ctxT(b)
	var samples []time.Duration
	b.ResetTimer()
	for b.Loop() {
		pid := a.Spawn(b)
		register(b, a, "vis", pid)
		capable(b, bb, "vis", pid)

		start := time.Now()
		if err := a.Registry.Unregister(ctx, "vis", pid); err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(10 * time.Second)
		for {
			pids, err := bb.Registry.GetCapable(ctx, "vis")
			if err != nil {
				b.Fatal(err)
			}
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("B still sees %v 10s after A's Unregister", pids)
			}
			runtime.Gosched() // a hit is a map read: poll without sleeping
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	slices.Sort(samples)
	pct := func(p float64) float64 { return float64(samples[int(p*float64(len(samples)-1))]) }
	b.ReportMetric(float64(sum)/float64(len(samples)), "ns/visible")
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}

// benchCluster starts two nodes under a fresh root on the shared server.
func benchCluster(b *testing.B) (*node, *node) {
	b.Helper()
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	return newNode(b, nodeOpts{servers: zkc.Addrs(), root: root}), newNode(b, nodeOpts{servers: zkc.Addrs(), root: root})
}

func register(b testing.TB, n *node, name string, pid *actor.PID) {
	b.Helper()
	if err := n.Registry.Register(context.Background(), name, pid, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRegisterThroughput compares Register with the ZooKeeper floor,
// in one run on one server: a bare go-zookeeper connection making the same
// znodes (for a new name, the container parent and then the ephemeral
// child; under one name, the child alone). Both at 1 and at 64 concurrent
// callers; regs/s is the figure to compare, and x-floor is zkactor's over
// the raw run just before it. With -rounds N, raw and zkactor alternate N
// times per shape, so the x-floor figures are pairs taken side by side:
// the raw floor itself moves a lot between runs on a shared machine (and
// -count would run all of one before the other). client-µs/op and
// server-µs/op are the processor time of the test process and of the
// server per registration.
//
//	go test -run '^$' -bench RegisterThroughput -benchtime 6000x ./cluster/ -rounds 5
//
// With -batch M, each round is one run in which raw and zkactor take turns
// of M registrations (pairedRound): x-floor is then the ratio of the two
// sides' rates over the same minutes.
//
//	go test -run '^$' -bench RegisterThroughput -benchtime 6000x ./cluster/ -rounds 3 -batch 500
func BenchmarkRegisterThroughput(b *testing.B) {
	zktest.Shared(b).WarmUp(b)    // else the first figure, raw's, is a cold JVM's
	floor := map[string]float64{} // raw regs/s by shape and callers, of this run
	for _, callers := range []int{1, 64} {
		for _, shape := range []string{"new-name", "one-name"} {
			for range *rounds {
				if *batch > 0 {
					pairedRound(b, callers, shape)
				} else {
					registerRound(b, floor, callers, shape)
				}
			}
		}
	}
}

// batch, when not 0, makes BenchmarkRegisterThroughput alternate raw and
// zkactor every batch registrations within one run (pairedRound).
var batch = flag.Int("batch", 0, "BenchmarkRegisterThroughput: alternate raw and zkactor every this many registrations, in one run")

// rounds is BenchmarkRegisterThroughput's number of raw and zkactor runs
// per shape, alternating.
var rounds = flag.Int("rounds", 1, "BenchmarkRegisterThroughput: raw and zkactor runs per shape, alternating")

// rawRegistrations returns the floor's registration i for shape: a bare
// go-zookeeper connection making the same znodes under a root of its own.
func rawRegistrations(b *testing.B, shape string) func(i int) error {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	c := zkc.Connect(b)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := zkutil.CreateWithParents(c, root, root+"/services/one", nil, 0, acl); err != nil {
		b.Fatal(err)
	}
	return func(i int) error {
		dir := root + "/services/one"
		if shape == "new-name" {
			dir = fmt.Sprintf("%s/services/n%d", root, i)
			if _, err := c.CreateContainer(dir, nil, zk.FlagContainer, acl); err != nil {
				return err
			}
		}
		_, err := c.Create(fmt.Sprintf("%s/r%d", dir, i), []byte("registration"), zk.FlagEphemeral, acl)
		return err
	}
}

// zkactorRegistrations returns Register number i for shape (of b.N), on a
// node of a fresh two-node cluster.
func zkactorRegistrations(b *testing.B, shape string) (*node, func(i int) error) {
	n, _ := benchCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	pids := make([]*actor.PID, b.N)
	for i := range pids {
		if shape == "one-name" || i == 0 {
			pids[i] = n.Spawn(b) // a live actor: the registry drops those that stop
		} else {
			pids[i] = pids[0]
		}
	}
	return n, func(i int) error {
		name := "one"
		if shape == "new-name" {
			name = fmt.Sprintf("n%d", i)
		}
		return n.Registry.Register(ctx, name, pids[i], nil)
	}
}

// pairedRound runs raw and zkactor registrations of one shape in turns of
// batch each, in one run (each side first in every other pair, and the
// keeper idle before the next turn), and reports each side's rate over all
// its turns:
// whatever the machine or the server does meanwhile (a JIT, a collection,
// a slow fsync, another process) falls on both sides alike, where separate
// runs of a few seconds each see it on one side only.
func pairedRound(b *testing.B, callers int, shape string) {
	b.Run(fmt.Sprintf("paired/%s/callers=%d", shape, callers), func(b *testing.B) {
		zkc := zktest.Shared(b)
		raw := rawRegistrations(b, shape)
		n, reg := zkactorRegistrations(b, shape)
		var rawT, zkT, rawClient, zkClient, rawServer, zkServer time.Duration
		before := plumbing.Requests(n.Session)
		b.ResetTimer()
		for k, from := 0, 0; from < b.N; k, from = k+1, from+*batch {
			to := min(from+*batch, b.N)
			rawTurn := func() {
				t, c, s := runOps(b, zkc, callers, from, to, raw)
				rawT, rawClient, rawServer = rawT+t, rawClient+c, rawServer+s
			}
			zkTurn := func() {
				t, c, s := runOps(b, zkc, callers, from, to, reg)
				zkT, zkClient, zkServer = zkT+t, zkClient+c, zkServer+s
				// What the keeper does after Register returns is zkactor's
				// cost: let it finish before the other side's turn.
				b.StopTimer()
				zktest.Eventually(b, 10*time.Second, func() error {
					if !plumbing.Settled(n.Registry) {
						return errors.New("the keeper is busy")
					}
					return nil
				})
				b.StartTimer()
			}
			if k%2 == 0 { // each side goes first in every other pair
				rawTurn()
				zkTurn()
			} else {
				zkTurn()
				rawTurn()
			}
		}
		b.StopTimer()
		perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
		rawRate, zkRate := float64(b.N)/rawT.Seconds(), float64(b.N)/zkT.Seconds()
		b.ReportMetric(rawRate, "raw-regs/s")
		b.ReportMetric(zkRate, "regs/s")
		b.ReportMetric(zkRate/rawRate, "x-floor")
		b.ReportMetric(perOp(rawClient), "raw-client-µs/op")
		b.ReportMetric(perOp(zkClient), "client-µs/op")
		b.ReportMetric(perOp(rawServer), "raw-server-µs/op")
		b.ReportMetric(perOp(zkServer), "server-µs/op")
		b.ReportMetric(float64(plumbing.Requests(n.Session)-before)/float64(b.N), "requests/reg")
	})
}

// registerRound runs the raw floor, then zkactor, for one shape.
func registerRound(b *testing.B, floor map[string]float64, callers int, shape string) {
	b.Run(fmt.Sprintf("raw/%s/callers=%d", shape, callers), func(b *testing.B) {
		floor[fmt.Sprint(shape, callers)] = throughput(b, zktest.Shared(b), callers, rawRegistrations(b, shape))
	})
	b.Run(fmt.Sprintf("zkactor/%s/callers=%d", shape, callers), func(b *testing.B) {
		n, reg := zkactorRegistrations(b, shape)
		before := plumbing.Requests(n.Session)
		rate := throughput(b, zktest.Shared(b), callers, reg)
		// The node's requests (its creates: the keeper reads nothing) per
		// registration, up to the last registration's return.
		b.ReportMetric(float64(plumbing.Requests(n.Session)-before)/float64(b.N), "requests/reg")
		if f := floor[fmt.Sprint(shape, callers)]; f > 0 {
			b.ReportMetric(rate/f, "x-floor") // the raw run just before, on the same server
		}
	})
}

// throughput runs op(0..b.N-1) from callers goroutines and reports ops/s,
// with the processor time per op of this process (client-µs/op: the
// client, and whatever else the test process runs) and of zkc's server
// (server-µs/op, in 10 ms ticks: use a few thousand ops). On two cores
// the two share the processors, so a client's CPU is taken from the
// server's.
func throughput(b *testing.B, zkc *zktest.Cluster, callers int, op func(i int) error) (opsPerSecond float64) {
	b.Helper()
	b.ResetTimer()
	elapsed, client, server := runOps(b, zkc, callers, 0, b.N, op)
	b.StopTimer()
	opsPerSecond = float64(b.N) / elapsed.Seconds()
	b.ReportMetric(opsPerSecond, "regs/s")
	b.ReportMetric(float64(client.Microseconds())/float64(b.N), "client-µs/op")
	b.ReportMetric(float64(server.Microseconds())/float64(b.N), "server-µs/op")
	return opsPerSecond
}

// runOps runs op(from..to-1) from callers goroutines and returns the time
// it took, and the processor time of this process and of zkc's server.
func runOps(b *testing.B, zkc *zktest.Cluster, callers, from, to int, op func(i int) error) (elapsed, client, server time.Duration) {
	b.Helper()
	next := atomic.Int64{}
	next.Store(int64(from))
	errs := make(chan error, callers)
	server0, client0 := zkc.CPUTime(0), processCPU()
	start := time.Now()
	for range callers {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					errs <- nil
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var failed error
	for range callers {
		if err := <-errs; err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		b.Fatal(failed)
	}
	return time.Since(start), processCPU() - client0, zkc.CPUTime(0) - server0
}

// processCPU is the processor time this process has used (user and
// system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServiceChurn: node A's service has N members; per iteration one
// joins or one leaves (alternately), and node B's lookup after the change
// is timed: the watch has swept B's entry, so the lookup reads the change.
// reads/change is B's ZooKeeper requests for it (the goal: ≤ 2 at any N).
//
//	go test -run '^$' -bench ServiceChurn -benchtime 200x ./cluster/
func BenchmarkServiceChurn(b *testing.B) {
	for _, members := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			a, bb := benchCluster(b)
			ctx := ctxT(b)
			var pids []*actor.PID
			for range members {
				pid := a.Spawn(b)
				register(b, a, "churn", pid)
				pids = append(pids, pid)
			}
			capable(b, bb, "churn", pids...)
			var samples []time.Duration
			var reads int64
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				if i%2 == 0 {
					pid := a.Spawn(b)
					register(b, a, "churn", pid)
					pids = append(pids, pid)
				} else {
					if err := a.Registry.Unregister(ctx, "churn", pids[0]); err != nil {
						b.Fatal(err)
					}
					pids = pids[1:]
				}
				for deadline := time.Now().Add(10 * time.Second); cluster.Cached(bb.Registry, "churn"); {
					if time.Now().After(deadline) {
						b.Fatal("B's entry not swept 10s after the change")
					}
					runtime.Gosched()
				}
				before := plumbing.Requests(bb.Session)
				b.StartTimer()
				start := time.Now()
				got, err := bb.Registry.GetCapable(ctx, "churn")
				samples = append(samples, time.Since(start))
				b.StopTimer()
				reads += plumbing.Requests(bb.Session) - before
				if err != nil || len(got) != len(pids) {
					b.Fatalf("B sees %d members, want %d (%v)", len(got), len(pids), err)
				}
			}
			slices.Sort(samples)
			b.ReportMetric(float64(samples[len(samples)/2]), "p50-ns")
			b.ReportMetric(float64(samples[len(samples)*99/100]), "p99-ns")
			b.ReportMetric(float64(reads)/float64(len(samples)), "reads/change")
		})
	}
}

// BenchmarkCacheScale looks up 100,000 distinct names, half of them
// registered (by one PID) and half absent, and reports what the cache
// holds then: entries, goroutines and heap. Not a speed figure; run once:
//
//	go test -run '^$' -bench CacheScale -benchtime 1x ./cluster/
func BenchmarkCacheScale(b *testing.B) {
	const names = 100_000
	a, bb := benchCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pid := a.Spawn(b)

	var next atomic.Int64
	errs := make(chan error, 64)
	for range 64 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= names/2 {
					errs <- nil
					return
				}
				if err := a.Registry.Register(context.Background(), fmt.Sprint("s", i), pid, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	next.Store(0)
	for range 64 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= names {
					errs <- nil
					return
				}
				name := fmt.Sprint("s", i/2) // even i: registered
				if i%2 == 1 {
					name = fmt.Sprint("absent", i)
				}
				if _, err := bb.Registry.GetCapable(ctx, name); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	st := cluster.CacheStats(bb.Registry)
	b.ReportMetric(float64(names)/elapsed.Seconds(), "lookups/s")
	b.ReportMetric(float64(st.Entries), "entries")
	b.ReportMetric(float64(st.Absent), "absent-entries")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines-added")
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/(1<<20), "heap-MiB-added")
}
