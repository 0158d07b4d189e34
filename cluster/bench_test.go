package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// BenchmarkGetCapableHit measures a cached lookup: a map read and a copy.
func BenchmarkGetCapableHit(b *testing.B) {
	zkc := zktest.Shared(b)
	n := newNode(b, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(b)})
	ctx := context.Background()
	for range 3 {
		if err := n.registry.Register(ctx, "svc", n.spawn(b), nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := n.registry.GetCapable(ctx, "svc"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.registry.GetCapable(ctx, "svc"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetCapableMiss measures a lookup that reads ZooKeeper: a name
// not looked up before (get children with a watch, then the data).
func BenchmarkGetCapableMiss(b *testing.B) {
	zkc := zktest.Shared(b)
	n := newNode(b, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(b)})
	ctx := context.Background()
	pid := n.spawn(b)
	names := make([]string, 0, 1024)
	for i := range 1024 {
		name := fmt.Sprint("svc", i)
		if err := n.registry.Register(ctx, name, pid, nil); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(names) {
			b.Fatal("out of fresh names: run with -benchtime of at most 1024x")
		}
		if _, err := n.registry.GetCapable(ctx, names[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRegister measures Register of a new (name, PID).
func BenchmarkRegister(b *testing.B) {
	zkc := zktest.Shared(b)
	n := newNode(b, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(b)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		pid := n.spawn(b)
		b.StartTimer()
		if err := n.registry.Register(ctx, "svc", pid, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnregisterVisible measures the delay from Unregister on node A
// until node B's GetCapable no longer returns the PID; p50 and p99.
func BenchmarkUnregisterVisible(b *testing.B) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	a := newNode(b, nodeOpts{servers: zkc.Addrs(), root: root})
	o := newNode(b, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := context.Background()
	var samples []time.Duration
	for b.Loop() {
		b.StopTimer()
		pid := a.spawn(b)
		if err := a.registry.Register(ctx, "svc", pid, nil); err != nil {
			b.Fatal(err)
		}
		for {
			got, _ := o.registry.GetCapable(ctx, "svc")
			if len(got) == 1 {
				break
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := a.registry.Unregister(ctx, "svc", pid); err != nil {
			b.Fatal(err)
		}
		for {
			got, err := o.registry.GetCapable(ctx, "svc")
			if err == nil && len(got) == 0 {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("B still sees the PID after 10s")
			}
		}
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds())/1000, "ms-p99")
}
