package watchcache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/watchcache"
)

type gatedLoader struct {
	gate  chan struct{}
	in    chan struct{}
	mu    sync.Mutex
	prevs []*int
	val   atomic.Int64
}

func (g *gatedLoader) load(ctx context.Context, key string, prev *int) (*int, error) {
	g.mu.Lock()
	g.prevs = append(g.prevs, prev)
	gate := g.gate
	g.mu.Unlock()
	v := int(g.val.Load())
	if gate != nil {
		g.in <- struct{}{}
		<-gate
	}
	return &v, nil
}

func pathKey(p string) (string, bool) {
	if len(p) > 1 {
		return p[1:], true
	}
	return "", false
}

// Sweep (a session expiry) "drops every value and every base: nothing known
// is a safe base". A load in flight across the Sweep still stores its read
// as the base of the next load.
func TestAttackBaseSurvivesSweep(t *testing.T) {
	g := &gatedLoader{gate: make(chan struct{}), in: make(chan struct{})}
	c := watchcache.New(g.load, watchcache.Options[int]{PathKey: pathKey})
	defer c.Close()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = c.Get(context.Background(), "k") }()
	<-g.in
	c.Sweep() // the session expired while the load was on the wire
	close(g.gate)
	<-done
	g.mu.Lock()
	g.gate = nil
	g.mu.Unlock()
	if st := c.Stats(); st.Swept != 0 {
		t.Errorf("after Sweep and a load raced by it: %d bases kept, want 0", st.Swept)
	}
	if _, err := c.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if last := g.prevs[len(g.prevs)-1]; last != nil {
		t.Errorf("the first load after Sweep got a base read before the Sweep (%d)", *last)
	}
}

// Property: nothing is served after Close, even from a load that was in
// flight during Close.
func TestAttackPeekAfterClose(t *testing.T) {
	g := &gatedLoader{gate: make(chan struct{}), in: make(chan struct{})}
	c := watchcache.New(g.load, watchcache.Options[int]{PathKey: pathKey})
	done := make(chan struct{})
	go func() { defer close(done); _, _ = c.Get(context.Background(), "k") }()
	<-g.in
	c.Close()
	close(g.gate)
	<-done
	if v, ok := c.Peek("k"); ok {
		t.Fatalf("Peek after Close = %d", *v)
	}
}

// Property: a Get that starts after an event for a change returns the
// change or later, under concurrent Gets, Evicts, events, Sweeps and a
// busy janitor.
func TestAttackNoStaleAfterEvent(t *testing.T) {
	g := &gatedLoader{}
	c := watchcache.New(g.load, watchcache.Options[int]{PathKey: pathKey, IdleAfter: 2 * time.Millisecond, MaxAbsent: 1,
		Absent: func(v *int) bool { return *v%3 == 0 }})
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Int64
	var msg atomic.Value
	evented := &atomic.Int64{}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch (i + w) % 50 {
				case 0:
					c.Sweep()
				case 1:
					c.Evict("k")
				}
				floor := evented.Load() // every change up to floor has had its event
				v, err := c.Get(ctx, "k")
				if err == nil && int64(*v) < floor {
					bad.Add(1)
					msg.Store(fmt.Sprintf("Get = %d after the event of %d", *v, floor))
				}
			}
		}()
	}
	var evMu sync.Mutex
	for range 20000 {
		evMu.Lock()
		// The change and its event: the watch set by any load that read
		// the old value fires after the change.
		g.val.Add(1)
		c.Event(zk.Event{Type: zk.EventNodeChildrenChanged, Path: "/k"})
		evented.Store(g.val.Load())
		evMu.Unlock()
	}
	close(stop)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d stale reads, e.g. %v", bad.Load(), msg.Load())
	}
}
