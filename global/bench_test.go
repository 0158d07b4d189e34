package global_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// BenchmarkWhereisGlobalHit measures a cached WhereisGlobal.
func BenchmarkWhereisGlobalHit(b *testing.B) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	var j journal
	n := newNode(b, zkc.Addrs(), root, 4*time.Second)
	ctx := context.Background()
	if _, err := n.Elections.RegisterCandidate(ctx, "boss", j.props("n")); err != nil {
		b.Fatal(err)
	}
	j.oneRunning(b)
	if _, err := n.Elections.WhereisGlobal(ctx, "boss"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := n.Elections.WhereisGlobal(ctx, "boss"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGracefulFailover measures, per run, the time from stopping the
// running global until a new global runs on another node and a third
// node's WhereisGlobal returns it; it reports the median and p99.
func BenchmarkGracefulFailover(b *testing.B) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	var j journal
	x := newNode(b, zkc.Addrs(), root, 4*time.Second)
	y := newNode(b, zkc.Addrs(), root, 4*time.Second)
	observer := newNode(b, zkc.Addrs(), root, 4*time.Second)
	ctx := context.Background()
	var samples []time.Duration
	var requests int64
	total := func() (n int64) {
		for _, m := range []*node{x, y, observer} {
			n += plumbing.Requests(m.Session)
		}
		return n
	}
	if _, err := zkc.FourLetterWord(0, "srst"); err != nil {
		b.Logf("srst: %v", err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for _, n := range []*node{x, y} {
			if _, err := n.Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint(i))); err != nil {
				b.Fatal(err)
			}
		}
		cur := j.oneRunning(b)
		owner := x
		if cur.pid.Address == y.System.Address() {
			owner = y
		}
		b.StartTimer()
		before := total()
		start := time.Now()
		owner.System.Root.Stop(cur.pid)
		for {
			r := j.running()
			if len(r) == 1 && !r[0].pid.Equal(cur.pid) {
				if got, err := observer.Elections.WhereisGlobal(ctx, "boss"); err == nil && got.Equal(r[0].pid) {
					break
				}
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("no failover within 10s")
			}
		}
		samples = append(samples, time.Since(start))
		requests += total() - before
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
	// ZooKeeper requests of all three nodes from the stop until the
	// observer sees the new global (lease probes not included).
	b.ReportMetric(float64(requests)/float64(len(samples)), "requests/change")
	reportFsync(b, zkc)
}

// reportFsync reports the server's fsync times (mntr, since the last
// srst): the tail of a leader change is the tail of the delete's fsync.
// The benchmarks reset them (srst) when they start.
func reportFsync(b *testing.B, zkc *zktest.Cluster) {
	out, err := zkc.FourLetterWord(0, "mntr")
	if err != nil {
		b.Logf("mntr: %v", err)
		return
	}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		switch k {
		case "zk_avg_fsynctime", "zk_max_fsynctime":
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				b.ReportMetric(f, strings.TrimPrefix(k, "zk_")+"-ms")
			}
		}
	}
}

// BenchmarkLeaderChangeAmong200 stands 200 candidates for one name, each on
// a session of its own, and measures a graceful leader change: from the
// stop of the running global until the next one runs. It reports the
// median, the p99 and the ZooKeeper requests of all 200 sessions per
// change (lease probes not included), which a herd would multiply.
func BenchmarkLeaderChangeAmong200(b *testing.B) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	var j journal
	nodes := make([]*node, 200)
	for i := range nodes {
		nodes[i] = newNode(b, zkc.Addrs(), root, 10*time.Second)
	}
	ctx := context.Background()
	for i, n := range nodes {
		if _, err := n.Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	byAddress := map[string]*node{}
	for _, n := range nodes {
		byAddress[n.System.Address()] = n
	}
	total := func() (n int64) {
		for _, m := range nodes {
			n += plumbing.Requests(m.Session)
		}
		return n
	}
	var (
		samples  []time.Duration
		requests int64
	)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		cur := j.oneRunning(b)
		owner := byAddress[cur.pid.Address]
		b.StartTimer()
		before := total()
		start := time.Now()
		owner.System.Root.Stop(cur.pid)
		for {
			if r := j.running(); len(r) == 1 && !r[0].pid.Equal(cur.pid) {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("no leader change within 10s")
			}
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		requests += total() - before
		// The old leader stands again, at the back of the queue.
		if _, err := owner.Elections.RegisterCandidate(ctx, "boss", j.props(cur.node)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
	b.ReportMetric(float64(requests)/float64(len(samples)), "requests/change")
}

// BenchmarkRemoteLookupsUnderLoad: node A leads a global and registers a
// service; node B looks both up from 8 goroutines at once, 1 M times each
// per name (with -benchtime 1x), from its cache. ns/op is per lookup;
// B must issue no ZooKeeper request meanwhile.
//
//	go test -run '^$' -bench RemoteLookupsUnderLoad -benchtime 1x ./global/
func BenchmarkRemoteLookupsUnderLoad(b *testing.B) {
	const goroutines, perGoroutine = 8, 1_000_000
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	var j journal
	a := newNode(b, zkc.Addrs(), root, 4*time.Second)
	bb := newNode(b, zkc.Addrs(), root, 4*time.Second)
	ctx := context.Background()
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		b.Fatal(err)
	}
	j.oneRunning(b)
	if err := a.Registry.Register(ctx, "workers", a.Spawn(b), nil); err != nil {
		b.Fatal(err)
	}
	zktest.Eventually(b, 10*time.Second, func() error {
		if _, err := bb.Elections.WhereisGlobal(ctx, "boss"); err != nil {
			return err
		}
		if pids, err := bb.Registry.GetCapable(ctx, "workers"); err != nil || len(pids) != 1 {
			return fmt.Errorf("GetCapable = %v, %v", pids, err)
		}
		return nil
	})
	before := plumbing.Requests(bb.Session)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		errs := make(chan error, goroutines)
		for g := range goroutines {
			go func() {
				for i := range perGoroutine {
					if g%2 == 0 && i%2 == 0 || g%2 == 1 && i%2 == 1 {
						if _, err := bb.Elections.WhereisGlobal(ctx, "boss"); err != nil {
							errs <- err
							return
						}
					} else if pids, err := bb.Registry.GetCapable(ctx, "workers"); err != nil || len(pids) != 1 {
						errs <- fmt.Errorf("GetCapable = %v, %v", pids, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range goroutines {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if d := plumbing.Requests(bb.Session) - before; d != 0 {
		b.Fatalf("cached lookups issued %d ZooKeeper requests", d)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*goroutines*perGoroutine), "ns/lookup")
}
