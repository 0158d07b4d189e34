package lock_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/test/zktest"
)

// Benchmarks against the shared ZooKeeper server (standalone, loopback,
// fsync on). They measure; they assert nothing about timing. Each runs
// the raw go-zookeeper floor (the same znode operations on a bare
// connection) beside the recipe, in the same run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./recipes/lock/

// BenchmarkLockUnlock: an uncontended Lock and Unlock. The floor is the
// recipe's minimum on a bare connection: create ephemeral-sequential,
// get children, delete. The recipe adds one request (an exists that reads
// the token and watches its own znode).
func BenchmarkLockUnlock(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		c := zkc.Connect(b)
		dir := lock.Path(root, "bench")
		makeDir(b, c, dir)
		acl := zk.WorldACL(zk.PermAll)
		op := func() {
			p, err := c.Create(dir+"/_c_0123456789abcdef0123456789abcdef-l-", []byte("waiter"), zk.FlagEphemeral|zk.FlagSequence, acl)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.Children(dir); err != nil {
				b.Fatal(err)
			}
			if err := c.Delete(p, -1); err != nil {
				b.Fatal(err)
			}
		}
		warm(op)
		b.ResetTimer()
		for b.Loop() {
			op()
		}
		b.ReportMetric(3, "requests/op")
	})
	b.Run("zkactor", func(b *testing.B) {
		zkc := zktest.Shared(b)
		s := dial(b, zkc.Addrs(), 4*time.Second)
		m := newMutex(b, s, zktest.Root(b), "bench")
		ctx := ctxT(b)
		op := func() {
			h, err := m.Lock(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
		warm(op)
		before := plumbing.Requests(s)
		b.ResetTimer()
		for b.Loop() {
			op()
		}
		b.StopTimer()
		b.ReportMetric(float64(plumbing.Requests(s)-before)/float64(b.N), "requests/op")
	})
}

// BenchmarkHandoff: two sessions pass the lock back and forth; each
// iteration times one handoff, from the holder's Unlock until the waiter
// holds. The floor on bare connections: the holder deletes its znode, the
// waiter's watch on it fires, the waiter lists the children and finds
// itself first. requests/handoff counts both sessions' requests per cycle
// (the unlock, the taking over, and the next Lock that queues behind).
func BenchmarkHandoff(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		conns := []*zk.Conn{zkc.Connect(b), zkc.Connect(b)}
		dir := lock.Path(root, "bench")
		makeDir(b, conns[0], dir)
		acl := zk.WorldACL(zk.PermAll)
		create := func(c *zk.Conn) string {
			p, err := c.Create(dir+"/_c_0123456789abcdef0123456789abcdef-l-", []byte("waiter"), zk.FlagEphemeral|zk.FlagSequence, acl)
			if err != nil {
				b.Fatal(err)
			}
			return p
		}
		held := create(conns[0])
		var samples []time.Duration
		cycle := func(i int) {
			waiter := conns[(i+1)%2]
			mine := create(waiter)
			if _, _, err := waiter.Children(dir); err != nil {
				b.Fatal(err)
			}
			_, _, watch, err := waiter.GetW(held)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := conns[i%2].Delete(held, -1); err != nil {
				b.Fatal(err)
			}
			<-watch
			if _, _, err := waiter.Children(dir); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
			held = mine
		}
		for i := range 20 {
			cycle(i)
		}
		samples = samples[:0]
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			cycle(i)
		}
		b.StopTimer()
		reportSamples(b, samples)
		b.ReportMetric(5, "requests/handoff") // create, children, get, delete, children
	})
	b.Run("zkactor", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		raw := zkc.Connect(b)
		ctx := ctxT(b)
		ss := []*cluster.Session{dial(b, zkc.Addrs(), 4*time.Second), dial(b, zkc.Addrs(), 4*time.Second)}
		ms := []*lock.Mutex{newMutex(b, ss[0], root, "bench"), newMutex(b, ss[1], root, "bench")}
		dir := lock.Path(root, "bench")
		held, err := ms[0].Lock(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var samples []time.Duration
		cycle := func(i int) {
			w := (i + 1) % 2
			before := plumbing.Requests(ss[w])
			next := lockAsync(ctx, ms[w])
			// Queued and watching: its create, exists, children and get
			// have been issued and its znode is there.
			for len(waiters(b, raw, dir)) != 2 || plumbing.Requests(ss[w])-before < 4 {
				runtime.Gosched()
			}
			start := time.Now()
			if err := held.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
			r := <-next
			if r.err != nil {
				b.Fatal(r.err)
			}
			samples = append(samples, r.at.Sub(start))
			held = r.held
		}
		for i := range 20 {
			cycle(i)
		}
		samples = samples[:0]
		requests := func() int64 { return plumbing.Requests(ss[0]) + plumbing.Requests(ss[1]) }
		before := requests()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			cycle(i)
		}
		b.StopTimer()
		reportSamples(b, samples)
		b.ReportMetric(float64(requests()-before)/float64(b.N), "requests/handoff")
		_ = held.Unlock(context.Background())
	})
}

// warm runs op a few times so that the server's JIT is warm before timing.
func warm(op func()) {
	for range 50 {
		op()
	}
}

func reportSamples(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
}
