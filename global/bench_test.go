package global_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
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
// node's WhereisGlobal returns it; it reports the median and p99, next to
// the floor measured in the same run on the same server (raw): bare
// go-zookeeper clients doing what a leader change needs at the least, the
// leader's delete, the successor's watch notification and one read, and
// the observer's notification and its reads of the queue and the new
// head's record. Nothing spins while it waits: the benchmark's own
// goroutine would take one of the machine's cores from the nodes.
//
//	go test -run '^$' -bench GracefulFailover -benchtime 200x ./global/
func BenchmarkGracefulFailover(b *testing.B) {
	b.Run("raw", benchRawFailover)
	b.Run("zkactor", benchGracefulFailover)
}

func benchGracefulFailover(b *testing.B) {
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
		next := j.awaitOther(b, cur.pid, start.Add(10*time.Second))
		// The observer's cache is swept by its own watch, perhaps before the
		// new global started: ask it now, and again (briefly pausing) until
		// it names the new one.
		seen := next.start
		for {
			got, err := observer.Elections.WhereisGlobal(ctx, "boss")
			if err == nil && got.Equal(next.pid) {
				if now := time.Now(); now.After(seen) {
					seen = now
				}
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("the observer did not see the new global within 10s")
			}
			time.Sleep(20 * time.Microsecond) // a poll interval, not to spin a core
		}
		samples = append(samples, seen.Sub(start))
		requests += total() - before
	}
	reportLatencies(b, samples)
	// ZooKeeper requests of all three nodes from the stop until the
	// observer sees the new global (lease probes not included).
	b.ReportMetric(float64(requests)/float64(len(samples)), "requests/change")
	reportFsync(b, zkc)
}

// benchRawFailover is the floor of a leader change on bare go-zookeeper
// clients: the leader's znode and the successor's are in place, the
// successor watches the leader's and the observer the queue; timed from
// the leader's delete until the successor has read the queue after its
// notification, and the observer has read the queue and the head's data
// after its own.
func benchRawFailover(b *testing.B) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	leader, successor, observer := zkc.Connect(b), zkc.Connect(b), zkc.Connect(b)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/globals/boss"
	if _, err := zkutil.CreateWithParents(leader, root, dir, nil, 0, acl); err != nil {
		b.Fatal(err)
	}
	if _, err := zkc.FourLetterWord(0, "srst"); err != nil {
		b.Logf("srst: %v", err)
	}
	var samples []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		lp, err := leader.Create(dir+"/c-", []byte("leader"), zk.FlagEphemeral|zk.FlagSequence, acl)
		if err != nil {
			b.Fatal(err)
		}
		sp, err := successor.Create(dir+"/c-", []byte("successor"), zk.FlagEphemeral|zk.FlagSequence, acl)
		if err != nil {
			b.Fatal(err)
		}
		_, _, succWatch, err := successor.ExistsW(lp)
		if err != nil {
			b.Fatal(err)
		}
		_, _, obsWatch, err := observer.ChildrenW(dir)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 2)
		b.StartTimer()
		start := time.Now()
		go func() {
			<-succWatch
			_, _, err := successor.Children(dir) // am I the head now?
			done <- err
		}()
		go func() {
			<-obsWatch
			kids, _, err := observer.Children(dir)
			if err == nil && len(kids) > 0 {
				slices.Sort(kids)
				_, _, err = observer.Get(dir + "/" + kids[0])
			}
			done <- err
		}()
		if err := leader.Delete(lp, -1); err != nil {
			b.Fatal(err)
		}
		for range 2 {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		if err := successor.Delete(sp, -1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, samples)
	b.ReportMetric(4, "requests/change") // the delete, the successor's listing, the observer's listing and its read of the head
	reportFsync(b, zkc)
}

// reportLatencies reports the median and the p99 of samples.
func reportLatencies(b *testing.B, samples []time.Duration) {
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
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
		next := j.awaitOther(b, cur.pid, start.Add(10*time.Second))
		samples = append(samples, next.start.Sub(start))
		b.StopTimer()
		requests += total() - before
		// The old leader stands again, at the back of the queue.
		if _, err := owner.Elections.RegisterCandidate(ctx, "boss", j.props(cur.node)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, samples)
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
	bb.Settle(b) // the keeper's checks are the session's requests too
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
