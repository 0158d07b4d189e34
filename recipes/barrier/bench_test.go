package barrier_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/zktest"
)

// BenchmarkEnterLeave: n participants (one session each) enter the barrier
// together and leave it together, once per iteration: ns/op is one round.
// requests/participant is the ZooKeeper requests one participant makes
// per round (Enter and Leave); the raw floor beside it is the double
// barrier recipe's minimum on bare connections, per participant and round,
// with nobody waiting on anybody: create, exists(ready), get children, and
// on leaving get children, delete (the one that opens also creates ready,
// the last one also deletes it). Against the shared server (fsync on):
//
//	go test -run '^$' -bench EnterLeave -benchtime 200x ./recipes/barrier/
func BenchmarkEnterLeave(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("raw/n=%d", n), func(b *testing.B) {
			zkc := zktest.Shared(b)
			root := zktest.Root(b)
			dir := barrier.Path(root, "bench")
			var conns []*zk.Conn
			for range n {
				conns = append(conns, zkc.Connect(b))
			}
			makeDir(b, conns[0], dir)
			acl := zk.WorldACL(zk.PermAll)
			var requests int
			round := func() {
				paths := make([]string, n)
				for i, c := range conns {
					p, err := c.Create(dir+"/_c_0123456789abcdef0123456789abcdef-p-", []byte("p"), zk.FlagEphemeral|zk.FlagSequence, acl)
					if err != nil {
						b.Fatal(err)
					}
					paths[i] = p
					if _, _, _, err := c.ExistsW(dir + "/ready"); err != nil {
						b.Fatal(err)
					}
					if _, _, err := c.Children(dir); err != nil {
						b.Fatal(err)
					}
					requests += 3
				}
				if _, err := conns[n-1].Create(dir+"/ready", nil, 0, acl); err != nil {
					b.Fatal(err)
				}
				for i, c := range conns {
					if _, _, err := c.Children(dir); err != nil {
						b.Fatal(err)
					}
					if err := c.Delete(paths[i], -1); err != nil {
						b.Fatal(err)
					}
					requests += 2
				}
				if err := conns[0].Delete(dir+"/ready", -1); err != nil {
					b.Fatal(err)
				}
				requests += 2
			}
			for range 10 {
				round()
			}
			requests = 0
			b.ResetTimer()
			for b.Loop() {
				round()
			}
			b.StopTimer()
			b.ReportMetric(float64(requests)/float64(b.N*n), "requests/participant")
		})
		b.Run(fmt.Sprintf("zkactor/n=%d", n), func(b *testing.B) {
			zkc := zktest.Shared(b)
			root := zktest.Root(b)
			ctx := ctxT(b)
			var (
				sessions []*cluster.Session
				bs       []*barrier.Barrier
			)
			for range n {
				s := dial(b, zkc.Addrs(), 4*time.Second)
				sessions = append(sessions, s)
				bs = append(bs, newBarrier(b, s, root, "bench", n))
			}
			var samples []time.Duration
			round := func() {
				start := time.Now()
				var chs []<-chan returned
				for _, x := range bs {
					chs = append(chs, async(func() error {
						if err := x.Enter(ctx); err != nil {
							return err
						}
						return x.Leave(ctx)
					}))
				}
				for _, ch := range chs {
					if r := <-ch; r.err != nil {
						b.Fatal(r.err)
					}
				}
				samples = append(samples, time.Since(start))
			}
			for range 10 {
				round()
			}
			samples = samples[:0]
			requests := func() (sum int64) {
				for _, s := range sessions {
					sum += plumbing.Requests(s)
				}
				return sum
			}
			before := requests()
			b.ResetTimer()
			for b.Loop() {
				round()
			}
			b.StopTimer()
			b.ReportMetric(float64(requests()-before)/float64(b.N*n), "requests/participant")
			slices.Sort(samples)
			b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50/round")
			b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99/round")
		})
	}
}
