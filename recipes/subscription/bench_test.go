package subscription_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/internal/zkwatch"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

// Benchmarks against the shared ZooKeeper server (standalone, loopback,
// fsync on). They measure; they assert nothing about timing.
//
// BenchmarkSubscriptionChurn follows a service of 10, 100 and 1,000
// members while one member joins or leaves per iteration (alternately, so
// the size stays put), and reports per change: the ZooKeeper requests the
// subscriber's session made, the watch events it received, the messages
// the subscriber actor got, and for joins the time from the Register call
// on another session to the Joined message's arrival (p50, p99). Next to
// it, in the same run, two raw floors, each with a bare go-zookeeper
// connection creating or deleting the child: "raw" watches with
// go-zookeeper alone (a children watch: it lists the children again when
// it fires and reads the data of the new child), "raw-persistent" does
// what the subscription does, bare (a persistent recursive watch on a
// zkwatch connection, and a read of each created child's data).
//
//	go test -run '^$' -bench SubscriptionChurn -benchtime 400x ./recipes/subscription/
func BenchmarkSubscriptionChurn(b *testing.B) {
	zktest.Shared(b).WarmUp(b) // else the first figure, raw's, is a cold JVM's
	for _, members := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("raw/members=%d", members), func(b *testing.B) { rawChurn(b, members) })
		b.Run(fmt.Sprintf("raw-persistent/members=%d", members), func(b *testing.B) { rawPersistentChurn(b, members) })
		b.Run(fmt.Sprintf("zkactor/members=%d", members), func(b *testing.B) { subscriptionChurn(b, members) })
	}
}

func subscriptionChurn(b *testing.B, members int) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := newNode(b, zkc.Addrs(), root, 0)
	sub := newNode(b, zkc.Addrs(), root, 0)
	var pids []*actor.PID
	register := func() {
		pid := a.Spawn(b)
		if err := a.Registry.Register(ctx, "churn", pid, map[string]string{"zone": "a"}); err != nil {
			b.Fatal(err)
		}
		pids = append(pids, pid)
	}
	for range members {
		register()
	}
	var events atomic.Int64
	defer sub.Session.OnWatchEvent(func(zk.Event) { events.Add(1) })()
	subs := subscriptions(b, sub, subscription.Options{})
	// Requests and events of the node's session and of the subscriptions'
	// own connection (where the persistent watch lives).
	counts := func() (reqs, evs int64) {
		wr, we := subscription.WatchCounts(subs)
		return plumbing.Requests(sub.Session) + wr, events.Load() + we
	}
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctx, "churn", pid); err != nil {
		b.Fatal(err)
	}
	rec.await(b, 1)
	var joins []time.Duration
	var reqs, evs int64
	b.ResetTimer()
	for i := range b.N {
		reqs0, evs0 := counts()
		start := time.Now()
		if i%2 == 0 {
			register()
		} else {
			if err := a.Registry.Unregister(ctx, "churn", pids[0]); err != nil {
				b.Fatal(err)
			}
			pids = pids[1:]
		}
		at := rec.await(b, i+2)
		if i%2 == 0 {
			joins = append(joins, at.Sub(start))
		}
		reqs1, evs1 := counts()
		reqs += reqs1 - reqs0
		evs += evs1 - evs0
	}
	b.StopTimer()
	rec.check(b)
	report(b, joins, reqs, evs, int64(rec.count()-1))
}

func report(b *testing.B, joins []time.Duration, reqs, events, msgs int64) {
	slices.Sort(joins)
	if len(joins) > 0 {
		b.ReportMetric(float64(joins[len(joins)/2]), "join-p50-ns")
		b.ReportMetric(float64(joins[len(joins)*99/100]), "join-p99-ns")
	}
	b.ReportMetric(float64(reqs)/float64(b.N), "reqs/change")
	b.ReportMetric(float64(events)/float64(b.N), "watch-events/change")
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/change")
}

var rawSeq atomic.Int64 // names the raw floor's children: a benchmark runs more than once on one root

func rawChurn(b *testing.B, members int) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	writer, watcher := zkc.Connect(b), zkc.Connect(b)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/services/churn"
	data := make([]byte, 120) // about a Registration's size
	var children []string
	create := func() string {
		p, err := zkutil.CreateWithParents(writer, root, fmt.Sprintf("%s/m%07d", dir, rawSeq.Add(1)), data, zk.FlagEphemeral, acl)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	for range members {
		children = append(children, create())
	}
	names, _, watch, err := watcher.ChildrenW(dir)
	if err != nil {
		b.Fatal(err)
	}
	var joins []time.Duration
	var reqs, events int64
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if i%2 == 0 {
			children = append(children, create())
		} else {
			if err := writer.Delete(children[0], -1); err != nil {
				b.Fatal(err)
			}
			children = children[1:]
		}
		<-watch
		events++
		before := map[string]bool{}
		for _, n := range names {
			before[n] = true
		}
		names, _, watch, err = watcher.ChildrenW(dir)
		reqs++
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range names {
			if !before[n] {
				if _, _, err := watcher.Get(dir + "/" + n); err != nil {
					b.Fatal(err)
				}
				reqs++
			}
		}
		if i%2 == 0 {
			joins = append(joins, time.Since(start))
		}
	}
	b.StopTimer()
	report(b, joins, reqs, events, int64(b.N))
}

func rawPersistentChurn(b *testing.B, members int) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b)
	writer := zkc.Connect(b)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/services/churn"
	data := make([]byte, 120)
	var children []string
	create := func() string {
		p, err := zkutil.CreateWithParents(writer, root, fmt.Sprintf("%s/m%07d", dir, rawSeq.Add(1)), data, zk.FlagEphemeral, acl)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	for range members {
		children = append(children, create())
	}
	watcher, err := zkwatch.Dial(zkwatch.Config{Servers: zkc.Addrs(), SessionTimeout: 10 * time.Second, Logger: testnode.Logger()})
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.Close()
	var pending []zkwatch.Item
	next := func() zkwatch.Item {
		for len(pending) == 0 {
			select {
			case <-watcher.Wake():
				pending = watcher.Take()
			case <-time.After(20 * time.Second):
				b.Fatal("nothing from the zkwatch connection within 20s")
			}
		}
		it := pending[0]
		pending = pending[1:]
		return it
	}
	var gen uint64
	for gen == 0 {
		if it := next(); it.Kind == zkwatch.Connected {
			gen = it.Gen
		}
	}
	if _, err := watcher.AddWatch(gen, dir); err != nil {
		b.Fatal(err)
	}
	if it := next(); it.Kind != zkwatch.Reply || it.Err != nil {
		b.Fatalf("addWatch: %+v", it)
	}
	var joins []time.Duration
	reqs0, events0 := watcher.Requests(), watcher.Events()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if i%2 == 0 {
			children = append(children, create())
		} else {
			if err := writer.Delete(children[0], -1); err != nil {
				b.Fatal(err)
			}
			children = children[1:]
		}
		ev := next()
		if ev.Kind != zkwatch.Event {
			b.Fatalf("got %+v, want an event", ev)
		}
		if ev.Type == zk.EventNodeCreated {
			if _, err := watcher.GetData(gen, ev.Path); err != nil {
				b.Fatal(err)
			}
			if it := next(); it.Kind != zkwatch.Reply || it.Err != nil {
				b.Fatalf("get: %+v", it)
			}
			joins = append(joins, time.Since(start))
		}
	}
	b.StopTimer()
	report(b, joins, watcher.Requests()-reqs0, watcher.Events()-events0, int64(b.N))
}
