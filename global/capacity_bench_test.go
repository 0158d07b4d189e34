package global_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// BenchmarkObserveQueue follows the size of a queue of 10, 100 and 1,000
// candidates while one joins or leaves per iteration (alternately), and
// reports per change the requests the observer's session made and the time
// from the create or delete to the new size on the channel (p50, p99).
// Next to it, in the same run, the raw floor: a bare go-zookeeper
// connection holding a children watch, which lists again when it fires and
// checks the owner of the new child (one exists), as the election's rule
// needs. The candidates are znodes of the candidate shape made by a bare
// client, so that only the observer's work is measured.
//
//	go test -run '^$' -bench ObserveQueue -benchtime 200x ./global/
func BenchmarkObserveQueue(b *testing.B) {
	for _, size := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("raw/candidates=%d", size), func(b *testing.B) { queueChurn(b, size, true) })
		b.Run(fmt.Sprintf("zkactor/candidates=%d", size), func(b *testing.B) { queueChurn(b, size, false) })
	}
}

func queueChurn(b *testing.B, size int, raw bool) {
	zkc := zktest.Shared(b)
	root := zktest.Root(b) + fmt.Sprint("-", raw)
	writer := zkc.Connect(b)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/globals/boss"
	var queued []string
	join := func() {
		p, err := zkutil.CreateWithParents(writer, root, dir+"/_c_0123456789abcdef0123456789abcdef-c-", []byte("candidate"), zk.FlagEphemeral|zk.FlagSequence, acl)
		if err != nil {
			b.Fatal(err)
		}
		queued = append(queued, p)
	}
	for range size {
		join()
	}
	change := func(i int) {
		if i%2 == 0 {
			join()
			return
		}
		if err := writer.Delete(queued[0], -1); err != nil {
			b.Fatal(err)
		}
		queued = queued[1:]
	}
	var samples []time.Duration
	var reqs int64
	if raw {
		watcher := zkc.Connect(b)
		names, _, watch, err := watcher.ChildrenW(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			change(i)
			<-watch
			before := map[string]bool{}
			for _, n := range names {
				before[n] = true
			}
			if names, _, watch, err = watcher.ChildrenW(dir); err != nil {
				b.Fatal(err)
			}
			reqs++
			for _, n := range names {
				if !before[n] {
					if _, _, err := watcher.Exists(dir + "/" + n); err != nil {
						b.Fatal(err)
					}
					reqs++
				}
			}
			samples = append(samples, time.Since(start))
		}
	} else {
		n := newNode(b, zkc.Addrs(), root, 4*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sizes := n.Elections.ObserveQueue(ctx, "boss")
		awaitSize := func(want int) {
			for got := range sizes {
				if got == want {
					return
				}
			}
			b.Fatal("size stream closed")
		}
		awaitSize(size)
		b.ResetTimer()
		for i := range b.N {
			before := plumbing.Requests(n.Session)
			start := time.Now()
			change(i)
			awaitSize(len(queued))
			samples = append(samples, time.Since(start))
			reqs += plumbing.Requests(n.Session) - before
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2]), "p50-ns")
	b.ReportMetric(float64(samples[len(samples)*99/100]), "p99-ns")
	b.ReportMetric(float64(reqs)/float64(b.N), "reqs/change")
}
