package workqueue_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// Benchmarks against the shared ZooKeeper server (standalone, loopback),
// each next to the raw go-zookeeper floor: a bare connection making the
// same znode operations, in the same run. They measure; they assert
// nothing about timing. requests/op counts ZooKeeper round trips.
//
//	go test -run '^$' -bench . -benchtime 2000x ./recipes/workqueue/

var payload = []byte("a job of about sixty-four bytes, as a small work item would be..")

// BenchmarkPut: one Put (one multi: the key and the sequential item).
func BenchmarkPut(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		c, root := rawQueue(b)
		b.ResetTimer()
		i := 0
		for b.Loop() {
			key := fmt.Sprint("k", i)
			i++
			if _, err := c.Multi(
				&zk.CreateRequest{Path: root + "/keys/" + key, Acl: zk.WorldACL(zk.PermAll)},
				&zk.CreateRequest{Path: root + "/items/" + key + "-", Data: payload, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagSequence},
			); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(1, "requests/op")
	})
	b.Run("zkactor", func(b *testing.B) {
		warm(b)
		zkc := zktest.Shared(b)
		s := dial(b, zkc.Addrs(), 10*time.Second)
		q := open(b, s, zktest.Root(b), "bench", "p")
		ctx := ctxT(b)
		before := plumbing.Requests(s)
		b.ResetTimer()
		i := 0
		for b.Loop() {
			if _, err := q.Put(ctx, fmt.Sprint("k", i), payload); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		b.ReportMetric(float64(plumbing.Requests(s)-before)/float64(b.N), "requests/op")
	})
}

// BenchmarkTakeAck: Take and Ack of the one item in the queue (put before
// each iteration, off the clock): list items and claims, read the item,
// claim it (a multi), acknowledge it (a multi).
func BenchmarkTakeAck(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		c, root := rawQueue(b)
		acl := zk.WorldACL(zk.PermAll)
		b.ResetTimer()
		i := 0
		for b.Loop() {
			b.StopTimer()
			key := fmt.Sprint("k", i)
			i++
			res, err := c.Multi(
				&zk.CreateRequest{Path: root + "/keys/" + key, Acl: acl},
				&zk.CreateRequest{Path: root + "/items/" + key + "-", Data: payload, Acl: acl, Flags: zk.FlagSequence},
			)
			if err != nil {
				b.Fatal(err)
			}
			item := res[1].String
			name := item[len(root+"/items/"):]
			b.StartTimer()
			if _, _, _, err := c.ChildrenW(root + "/items"); err != nil {
				b.Fatal(err)
			}
			if _, _, _, err := c.ChildrenW(root + "/claims"); err != nil {
				b.Fatal(err)
			}
			data, stat, err := c.Get(item)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Multi(
				&zk.SetDataRequest{Path: item, Data: data, Version: stat.Version},
				&zk.CreateRequest{Path: root + "/claims/" + name, Data: []byte("claim"), Acl: acl, Flags: zk.FlagEphemeral},
			); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Multi(
				&zk.DeleteRequest{Path: item, Version: stat.Version + 1},
				&zk.DeleteRequest{Path: root + "/claims/" + name, Version: -1},
				&zk.DeleteRequest{Path: root + "/keys/" + key, Version: -1},
			); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(5, "requests/op")
	})
	b.Run("zkactor", func(b *testing.B) {
		warm(b)
		zkc := zktest.Shared(b)
		s := dial(b, zkc.Addrs(), 10*time.Second)
		q := open(b, s, zktest.Root(b), "bench", "p")
		ctx := ctxT(b)
		var requests int64
		b.ResetTimer()
		i := 0
		for b.Loop() {
			b.StopTimer()
			if _, err := q.Put(ctx, fmt.Sprint("k", i), payload); err != nil {
				b.Fatal(err)
			}
			i++
			before := plumbing.Requests(s)
			b.StartTimer()
			it, err := q.Take(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := q.Ack(ctx, it); err != nil {
				b.Fatal(err)
			}
			requests += plumbing.Requests(s) - before
		}
		b.StopTimer()
		b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
	})
}

// warmOnce warms the shared server before the first figure: a fresh
// server is 2-3x slower until its JIT has warmed up, which made whichever
// ran first, raw or zkactor, look slow.
var warmOnce sync.Once

func warm(b *testing.B) {
	warmOnce.Do(func() {
		c := zktest.Shared(b).Connect(b)
		root := zktest.Root(b)
		if _, err := zkutil.CreateWithParents(c, "/", root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		for i := range 4000 {
			p := fmt.Sprint(root, "/warm", i)
			if _, err := c.Multi(&zk.CreateRequest{Path: p, Data: payload, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagSequence}); err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.Children(root); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// rawQueue makes a queue's directories with a bare connection.
func rawQueue(b *testing.B) (*zk.Conn, string) {
	warm(b)
	zkc := zktest.Shared(b)
	root := zktest.Root(b) + "/queues/bench"
	c := zkc.Connect(b)
	for _, dir := range []string{"items", "claims", "keys"} {
		if _, err := zkutil.CreateWithParents(c, "/", root+"/"+dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
	}
	return c, root
}

// BenchmarkPutToWaiters: one Put to an empty queue on which n handles, on n
// sessions, wait in a Take; the handle that gets the item acknowledges it
// and takes again. With burst=8, 8 Puts at once, until all 8 are done
// (ns/op is then per burst; notifications/op and requests/op per Put). notifications/op counts the watch events the n sessions
// receive on the queue's znodes, requests/op their requests (the Put's, on
// the producer's session, is not counted; the taker's Ack is). The raw
// floor: one bare connection waits with a watch on items/; when it fires,
// it lists them (setting the watch again), reads the item, claims it and
// acknowledges it (the Put is on a second connection): one notification
// and four requests.
//
//	go test -run '^$' -bench PutToWaiters -benchtime 300x ./recipes/workqueue/
func BenchmarkPutToWaiters(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		taker, root := rawQueue(b)
		producer := zktest.Shared(b).Connect(b)
		acl := zk.WorldACL(zk.PermAll)
		_, _, watch, err := taker.ChildrenW(root + "/items")
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		i := 0
		for b.Loop() {
			key := fmt.Sprint("k", i)
			i++
			if _, err := producer.Multi(
				&zk.CreateRequest{Path: root + "/keys/" + key, Acl: acl},
				&zk.CreateRequest{Path: root + "/items/" + key + "-", Data: payload, Acl: acl, Flags: zk.FlagSequence},
			); err != nil {
				b.Fatal(err)
			}
			<-watch
			var names []string
			names, _, watch, err = taker.ChildrenW(root + "/items") // and wait again
			if err != nil || len(names) != 1 {
				b.Fatal(names, err)
			}
			item := root + "/items/" + names[0]
			data, stat, err := taker.Get(item)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := taker.Multi(
				&zk.SetDataRequest{Path: item, Data: data, Version: stat.Version},
				&zk.CreateRequest{Path: root + "/claims/" + names[0], Data: []byte("claim"), Acl: acl, Flags: zk.FlagEphemeral},
			); err != nil {
				b.Fatal(err)
			}
			if _, err := taker.Multi(
				&zk.DeleteRequest{Path: item, Version: stat.Version + 1},
				&zk.DeleteRequest{Path: root + "/claims/" + names[0], Version: -1},
				&zk.DeleteRequest{Path: root + "/keys/" + key, Version: -1},
			); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(1, "notifications/op")
		b.ReportMetric(4, "requests/op")
	})
	for _, c := range []struct{ n, burst int }{{1, 1}, {8, 1}, {32, 1}, {8, 8}} {
		n, burst := c.n, c.burst
		name := fmt.Sprint("zkactor/waiting=", n)
		if burst > 1 {
			name += fmt.Sprint("/burst=", burst)
		}
		b.Run(name, func(b *testing.B) {
			warm(b)
			zkc := zktest.Shared(b)
			root := zktest.Root(b)
			dir := root + "/queues/bench/"
			producer := open(b, dial(b, zkc.Addrs(), 10*time.Second), root, "bench", "p")
			var (
				sessions []*cluster.Session
				events   atomic.Int64
				wg       sync.WaitGroup
			)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{}, n)
			for i := range n {
				s := dial(b, zkc.Addrs(), 10*time.Second)
				sessions = append(sessions, s)
				stop := s.OnWatchEvent(func(ev zk.Event) {
					if strings.HasPrefix(ev.Path, dir) {
						events.Add(1)
					}
				})
				b.Cleanup(stop)
				q := open(b, s, root, "bench", fmt.Sprint("t", i))
				wg.Add(1)
				go func() { // ends with ctx
					defer wg.Done()
					for {
						it, err := q.Take(ctx)
						if err != nil {
							return
						}
						if err := q.Ack(ctx, it); err != nil {
							return
						}
						done <- struct{}{}
					}
				}()
			}
			b.Cleanup(func() { cancel(); wg.Wait() })
			requests := func() int64 {
				var sum int64
				for _, s := range sessions {
					sum += plumbing.Requests(s)
				}
				return sum
			}
			// Let every handle reach its wait: a first round trip of puts.
			for i := range n {
				if _, err := producer.Put(ctx, fmt.Sprint("warm", i), payload); err != nil {
					b.Fatal(err)
				}
				<-done
			}
			beforeRequests, beforeEvents := requests(), events.Load()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				for range burst {
					if _, err := producer.Put(ctx, fmt.Sprint("k", i), payload); err != nil {
						b.Fatal(err)
					}
					i++
				}
				for range burst {
					<-done
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(events.Load()-beforeEvents)/float64(b.N*burst), "notifications/op")
			b.ReportMetric(float64(requests()-beforeRequests)/float64(b.N*burst), "requests/op")
		})
	}
}
