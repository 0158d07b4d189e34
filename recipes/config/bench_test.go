package config_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

// benchValues is a config of the usual shape: a dozen settings, some
// nested (about 300 bytes encoded).
func benchValues(b testing.TB, i int) *structpb.Struct {
	return values(b, fmt.Sprintf(`{"db":{"host":"db-1.example.internal","port":5432,"pool":{"min":2,"max":32}},
		"cache":{"ttl_s":30,"size":10000},"features":["a","b","c"],"log_level":"info","debug":false,
		"region":"eu-west-1","timeout_ms":2500,"generation":%d}`, i))
}

// warmUp makes the server's JIT hot before anything is timed (a fresh
// ZooKeeper is 2–3× slower for its first thousands of requests).
func warmUp(b *testing.B, c *zk.Conn, path string) {
	b.Helper()
	for range 300 {
		if _, err := c.Set(path, []byte("warm"), -1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSet: a compare-and-set write of the service's record, next to
// the raw go-zookeeper floor in the same run: setData at the expected
// version of the same bytes. The median is the figure to compare: the mean
// and p99 carry the server's fsync stalls.
//
//	go test -run '^$' -bench 'Set$' -benchtime 2000x ./recipes/config/
func BenchmarkSet(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		c := zkc.Connect(b)
		p := root + "/config/svc"
		if _, err := zkutil.CreateWithParents(c, root, p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		warmUp(b, c, p)
		ok, stat, err := c.Exists(p)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		data, err := proto.Marshal(&configv1.Record{Values: benchValues(b, 0), WriteId: "0123456789abcdef0123456789abcdef"})
		if err != nil {
			b.Fatal(err)
		}
		v := stat.Version
		var samples []time.Duration
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			stat, err := c.Set(p, data, v)
			if err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
			v = stat.Version
		}
		b.StopTimer()
		reportLatency(b, samples)
		b.ReportMetric(1, "requests/op")
	})
	b.Run("zkactor", func(b *testing.B) {
		zkc := zktest.Shared(b)
		n := newNode(b, zkc.Addrs(), zktest.Root(b), 0)
		ctx := ctxT(b)
		v, err := n.store.Set(ctx, "svc", benchValues(b, 0), config.Absent)
		if err != nil {
			b.Fatal(err)
		}
		warmUp(b, n.session.Conn(), n.store.ServicePath("svc")+"/overrides")
		vals := benchValues(b, 1)
		requests := plumbing.Requests(n.session)
		var samples []time.Duration
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			if v, err = n.store.Set(ctx, "svc", vals, v); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
		}
		b.StopTimer()
		reportLatency(b, samples)
		b.ReportMetric(float64(plumbing.Requests(n.session)-requests)/float64(b.N), "requests/op")
	})
}

// BenchmarkSetToSubscriber: from a write on one session until the
// subscriber on another has the new config, next to the raw floor in the
// same run: setData on one connection until the other's data watch has
// fired and its watching getData (re-arming the watch) has returned the
// new data. The subscriber follows a process with an override, so both
// parts are watched; only the written one is read again.
//
//	go test -run '^$' -bench SetToSubscriber -benchtime 1000x ./recipes/config/
func BenchmarkSetToSubscriber(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		writer, watcher := zkc.Connect(b), zkc.Connect(b)
		p := root + "/config/svc"
		if _, err := zkutil.CreateWithParents(writer, root, p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		warmUp(b, writer, p)
		_, _, watch, err := watcher.GetW(p)
		if err != nil {
			b.Fatal(err)
		}
		var pool [][]byte
		for i := range 16 {
			data, err := proto.Marshal(&configv1.Record{Values: benchValues(b, i), WriteId: "0123456789abcdef0123456789abcdef"})
			if err != nil {
				b.Fatal(err)
			}
			pool = append(pool, data)
		}
		var samples []time.Duration
		i := 0
		b.ResetTimer()
		for b.Loop() {
			i++
			data := pool[i%len(pool)]
			start := time.Now()
			if _, err := writer.Set(p, data, -1); err != nil {
				b.Fatal(err)
			}
			<-watch
			var got []byte
			if got, _, watch, err = watcher.GetW(p); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
			if len(got) != len(data) {
				b.Fatalf("read %d bytes, wrote %d", len(got), len(data))
			}
		}
		b.StopTimer()
		reportLatency(b, samples)
		b.ReportMetric(1, "writer-req/op")
		b.ReportMetric(1, "subscriber-req/op")
	})
	b.Run("zkactor", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		w, s := newNode(b, zkc.Addrs(), root, 0), newNode(b, zkc.Addrs(), root, 0)
		ctx := ctxT(b)
		v, err := w.store.Set(ctx, "svc", benchValues(b, 0), config.Absent)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.store.SetOverride(ctx, "svc", "p", values(b, `{"log_level":"debug"}`), config.Absent); err != nil {
			b.Fatal(err)
		}
		warmUp(b, w.session.Conn(), w.store.ServicePath("svc")+"/overrides")
		configs := make(chan *configv1.Config, 16)
		pid := s.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*configv1.Config); ok {
				configs <- m
			}
		}))
		cancel, err := s.store.Subscribe(ctx, "svc", "p", pid)
		if err != nil {
			b.Fatal(err)
		}
		defer cancel()
		<-configs
		vals := make([]*structpb.Struct, 16)
		for i := range vals {
			vals[i] = benchValues(b, i+1)
		}
		var samples []time.Duration
		wReq, sReq := plumbing.Requests(w.session), plumbing.Requests(s.session)
		i := 0
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			if v, err = w.store.Set(ctx, "svc", vals[i%len(vals)], v); err != nil {
				b.Fatal(err)
			}
			i++
			select {
			case got := <-configs:
				samples = append(samples, time.Since(start))
				if got.ServiceRecord.Version != v {
					b.Fatalf("config at version %d, wrote %d", got.ServiceRecord.Version, v)
				}
			case <-time.After(10 * time.Second):
				b.Fatal("no config 10s after the write")
			}
		}
		b.StopTimer()
		reportLatency(b, samples)
		b.ReportMetric(float64(plumbing.Requests(w.session)-wReq)/float64(b.N), "writer-req/op")
		b.ReportMetric(float64(plumbing.Requests(s.session)-sReq)/float64(b.N), "subscriber-req/op")
	})
}

func reportLatency(b *testing.B, samples []time.Duration) {
	slices.Sort(samples)
	pct := func(p float64) float64 { return float64(samples[int(p*float64(len(samples)-1))]) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}
