package rolematch_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// Benchmarks against the shared ZooKeeper server (standalone, loopback,
// the harness's zoo.cfg). They measure; they assert nothing about timing.

// BenchmarkTakeover: the time from a holder's death (its session closed,
// as a process that exits) to the next holder's Assigned message, and the
// ZooKeeper requests the standby applicants issue for it, next to the raw
// go-zookeeper floor of the same znode operations: one client deletes the
// ephemeral znode, another hears of it through an exists watch and creates
// it. Run with -benchtime=Nx (each iteration starts a member outside the
// timer).
func BenchmarkTakeover(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		holder, standby := zkc.Connect(b), zkc.Connect(b)
		acl := zk.WorldACL(zk.PermAll)
		p := root + "/roles/set/assignments/r"
		if _, err := zkutil.CreateWithParents(holder, root, p, []byte("assignment"), zk.FlagEphemeral, acl); err != nil {
			b.Fatal(err)
		}
		var times []time.Duration
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			_, _, watch, err := standby.ExistsW(p)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := holder.Delete(p, -1); err != nil {
				b.Fatal(err)
			}
			<-watch
			if _, err := standby.Create(p, []byte("assignment"), zk.FlagEphemeral, acl); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			holder, standby = standby, holder
		}
		b.StopTimer()
		report(b, times)
		b.ReportMetric(3, "requests/takeover") // delete, exists (watch), create
	})
	for _, standbys := range []int{1, 4} {
		b.Run(fmt.Sprintf("zkactor/standbys=%d", standbys), func(b *testing.B) {
			zkc := zktest.Shared(b)
			root := zktest.Root(b)
			type start struct {
				node string
				at   time.Time
			}
			assigned := make(chan start, 64)
			props := actor.PropsFromFunc(func(c actor.Context) {
				if _, ok := c.Message().(*rolematchv1.Assigned); ok {
					assigned <- start{c.Self().Address, time.Now()}
				}
			})
			serial := 0
			join := func() *member {
				serial++
				m := newMember(b, fmt.Sprint("m", serial), zkc.Addrs(), root, 4*time.Second)
				if _, err := m.roles.Apply(ctxT(b), "set", 1, props); err != nil {
					b.Fatal(err)
				}
				return m
			}
			controller := newMember(b, "controller", zkc.Addrs(), root, 4*time.Second)
			post(b, controller, "set", "r")
			members := []*member{join()}
			<-assigned
			for range standbys {
				members = append(members, join())
			}
			holderOf := func() *member {
				hs, err := controller.roles.Holders(ctxT(b), "set")
				if err != nil || len(hs) != 1 || hs[0].PID == nil {
					b.Fatalf("Holders = %v, %v", hs, err)
				}
				for _, m := range members {
					if m.System.Address() == hs[0].PID.Address {
						return m
					}
				}
				b.Fatalf("the holder %v is no member's", hs[0].PID)
				return nil
			}
			var (
				times    []time.Duration
				requests int64
			)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				dead := holderOf()
				var before int64
				for _, m := range members {
					if m != dead {
						before += plumbing.Requests(m.Session)
					}
				}
				b.StartTimer()
				t0 := time.Now()
				dead.Session.Close()
				next := <-assigned
				for next.node == dead.System.Address() || next.at.Before(t0) {
					next = <-assigned // (a holding that resumed after its lease lapsed: not a takeover)
				}
				b.StopTimer()
				times = append(times, next.at.Sub(t0))
				var after int64
				for _, m := range members {
					if m != dead {
						after += plumbing.Requests(m.Session)
					}
				}
				requests += after - before
				members = slices.DeleteFunc(members, func(m *member) bool { return m == dead })
				members = append(members, join())
				b.StartTimer()
			}
			b.StopTimer()
			report(b, times)
			b.ReportMetric(float64(requests)/float64(len(times)), "requests/takeover")
		})
	}
}

// report replaces ns/op by the takeover's p50 and p99.
func report(b *testing.B, times []time.Duration) {
	b.Helper()
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	p := func(q float64) float64 {
		return float64(times[int(q*float64(len(times)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// BenchmarkSpecChange: the time from a re-post of a held role's spec to
// its holder's SpecChanged, and the ZooKeeper requests the applicants
// issue for it, with 4 applicants holding 2 roles each (one of them
// changes), next to the raw go-zookeeper floor: one client sets the spec,
// another, holding a data watch on it, hears of it and reads it with a new
// watch. requests/change counts the applicants' requests; the Post's own
// (a create that meets the spec, then a set) are the controller's.
//
//	go test -run '^$' -bench SpecChange -benchtime 300x ./recipes/rolematch/
func BenchmarkSpecChange(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		controller, holder := zkc.Connect(b), zkc.Connect(b)
		p := root + "/roles/set/specs/r"
		if _, err := zkutil.CreateWithParents(controller, root, p, []byte("spec"), 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		_, _, watch, err := holder.GetW(p)
		if err != nil {
			b.Fatal(err)
		}
		var times []time.Duration
		b.ResetTimer()
		i := 0
		for b.Loop() {
			i++
			start := time.Now()
			if _, err := controller.Set(p, []byte(fmt.Sprint("spec ", i)), -1); err != nil {
				b.Fatal(err)
			}
			<-watch
			if _, _, watch, err = holder.GetW(p); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		b.StopTimer()
		report(b, times)
		b.ReportMetric(1, "requests/change") // the holder's get; the controller's set beside
	})
	b.Run("zkactor/applicants=4", func(b *testing.B) {
		zkc := zktest.Shared(b)
		root := zktest.Root(b)
		changed := make(chan string, 64)
		props := actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*rolematchv1.SpecChanged); ok {
				changed <- string(m.GetData())
			}
		})
		controller := newMember(b, "controller", zkc.Addrs(), root, 4*time.Second)
		roles := roleNames("r", 8)
		post(b, controller, "set", roles...)
		var members []*member
		for i := range 4 {
			m := newMember(b, fmt.Sprint("m", i), zkc.Addrs(), root, 4*time.Second)
			if _, err := m.roles.Apply(ctxT(b), "set", 2, props); err != nil {
				b.Fatal(err)
			}
			members = append(members, m)
		}
		zktest.Eventually(b, 30*time.Second, func() error {
			hs, err := controller.roles.Holders(ctxT(b), "set")
			if err == nil && len(hs) != len(roles) {
				err = fmt.Errorf("%d roles held, want %d", len(hs), len(roles))
			}
			return err
		})
		requests := func() int64 {
			var sum int64
			for _, m := range members {
				sum += plumbing.Requests(m.Session)
			}
			return sum
		}
		var (
			times []time.Duration
			total int64
		)
		ctx := ctxT(b)
		b.ResetTimer()
		i := 0
		for b.Loop() {
			i++
			spec := fmt.Sprint("spec ", i)
			before := requests()
			start := time.Now()
			if err := controller.roles.Post(ctx, "set", rolematch.Role{Name: "r0", Data: []byte(spec)}); err != nil {
				b.Fatal(err)
			}
			for got := <-changed; got != spec; got = <-changed {
			}
			times = append(times, time.Since(start))
			total += requests() - before
		}
		b.StopTimer()
		report(b, times)
		b.ReportMetric(float64(total)/float64(len(times)), "requests/change")
	})
}
