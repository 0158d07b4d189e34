package watchcache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/watchcache"
	"github.com/zkactor/zkactor/test/zktest"
)

// These tests need no ZooKeeper: the loader is a fake that hands out watch
// channels the test fires by closing them.

func TestMain(m *testing.M) { zktest.Main(m) }

// fakeStore is a loader: each load returns the key's current value and a
// fresh watch channel, and counts the loads.
type fakeStore struct {
	mu      sync.Mutex
	values  map[string]string
	watches map[string][]chan zk.Event
	loads   atomic.Int64
	gate    chan struct{} // when set, every load waits for it
	started chan string   // when set, every load reports its key first
	fail    error
}

func newFakeStore() *fakeStore {
	return &fakeStore{values: map[string]string{}, watches: map[string][]chan zk.Event{}}
}

func (f *fakeStore) load(ctx context.Context, key string) (*string, <-chan zk.Event, error) {
	f.loads.Add(1)
	f.mu.Lock()
	v, gate, started, fail := f.values[key], f.gate, f.started, f.fail
	w := make(chan zk.Event, 1)
	f.watches[key] = append(f.watches[key], w)
	f.mu.Unlock()
	if started != nil {
		started <- key
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("load %s: %w", key, context.Cause(ctx))
		}
	}
	if fail != nil {
		return nil, nil, fail
	}
	return &v, w, nil
}

// set changes key's value and fires the watches of earlier loads, as a
// ZooKeeper write would.
func (f *fakeStore) set(key, v string) {
	f.mu.Lock()
	f.values[key] = v
	ws := f.watches[key]
	f.watches[key] = nil
	f.mu.Unlock()
	for _, w := range ws {
		w <- zk.Event{Type: zk.EventNodeChildrenChanged}
		close(w)
	}
}

func get(t *testing.T, c *watchcache.Cache[string], key string) string {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return *v
}

func TestHitCostsNoLoad(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "1"
	c := watchcache.New(f.load)
	defer c.Close()
	for range 1000 {
		if v := get(t, c, "a"); v != "1" {
			t.Fatalf("Get = %q, want 1", v)
		}
	}
	if n := f.loads.Load(); n != 1 {
		t.Fatalf("1000 lookups made %d loads, want 1", n)
	}
	if v, ok := c.Peek("a"); !ok || *v != "1" {
		t.Fatalf("Peek = %v, %v", v, ok)
	}
	if _, ok := c.Peek("b"); ok {
		t.Fatal("Peek of a key never loaded found a value")
	}
}

func TestWatchSweeps(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "1"
	c := watchcache.New(f.load)
	defer c.Close()
	get(t, c, "a")
	f.set("a", "2")
	zktest.Eventually(t, 5*time.Second, func() error {
		if _, ok := c.Peek("a"); ok {
			return errors.New("entry not swept after its watch fired")
		}
		return nil
	})
	if v := get(t, c, "a"); v != "2" {
		t.Fatalf("Get after a change = %q, want 2", v)
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "1"
	f.gate = make(chan struct{})
	f.started = make(chan string, 100)
	c := watchcache.New(f.load)
	defer c.Close()

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(context.Background(), "a")
			if err == nil && *v != "1" {
				err = fmt.Errorf("got %q", *v)
			}
			errs <- err
		}()
	}
	<-f.started // one load is in flight; the others must join it
	// Give the other callers a chance to arrive; they join or hit. Either
	// way no second load may start before the gate opens.
	zktest.Eventually(t, 5*time.Second, func() error {
		if len(errs) > 0 {
			return errors.New("a caller returned before the load finished")
		}
		return nil
	})
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.loads.Load(); got != 1 {
		t.Fatalf("%d concurrent misses made %d loads, want 1", n, got)
	}
}

func TestWaiterOutlivesTheLoadersDeadline(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "1"
	f.gate = make(chan struct{})
	f.started = make(chan string, 10)
	c := watchcache.New(f.load)
	defer c.Close()

	short, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Get(short, "a"); first <- err }()
	<-f.started
	second := make(chan error, 1)
	go func() { _, err := c.Get(context.Background(), "a"); second <- err }()
	cancel() // the loader's caller gives up
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get = %v, want context.Canceled", err)
	}
	<-f.started // the waiter loads again under its own ctx
	close(f.gate)
	if err := <-second; err != nil {
		t.Fatalf("waiter failed with its loader's cancellation: %v", err)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	f := newFakeStore()
	f.fail = errors.New("boom")
	c := watchcache.New(f.load)
	defer c.Close()
	if _, err := c.Get(context.Background(), "a"); err == nil || err.Error() != "boom" {
		t.Fatalf("Get = %v, want boom", err)
	}
	f.mu.Lock()
	f.fail = nil
	f.values["a"] = "ok"
	f.mu.Unlock()
	if v := get(t, c, "a"); v != "ok" {
		t.Fatalf("Get after a failed load = %q", v)
	}
}

// A load that began before an Evict must not install its (older) value:
// a writer that evicts after its write then reads its write.
func TestEvictDuringLoadWins(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "old"
	f.gate = make(chan struct{})
	f.started = make(chan string, 10)
	c := watchcache.New(f.load)
	defer c.Close()

	stale := make(chan string, 1)
	go func() {
		v, _ := c.Get(context.Background(), "a")
		stale <- *v
	}()
	<-f.started
	f.mu.Lock()
	f.values["a"] = "new" // the write, whose watch event is still on its way
	f.mu.Unlock()
	c.Evict("a")
	close(f.gate) // the old load finishes
	if v := <-stale; v != "old" {
		t.Fatalf("the old load returned %q", v)
	}
	if v := get(t, c, "a"); v != "new" {
		t.Fatalf("Get after Evict = %q, want new (a load begun before the Evict was cached)", v)
	}
	c.Sweep()
	if _, ok := c.Peek("a"); ok {
		t.Fatal("Sweep left an entry")
	}
}

func TestNewerEntrySurvivesOlderWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStore()
		f.values["a"] = "1"
		c := watchcache.New(f.load)
		defer c.Close()
		get(t, c, "a")
		f.mu.Lock()
		oldWatch := f.watches["a"][0]
		f.watches["a"] = nil
		f.mu.Unlock()
		c.Evict("a")
		get(t, c, "a") // a newer entry, with its own watch
		close(oldWatch)
		synctest.Wait() // the old entry's goroutine has run its CompareAndDelete
		if _, ok := c.Peek("a"); !ok {
			t.Fatal("an older entry's watch swept the newer entry")
		}
	})
}

// Close while Gets run must neither panic (wg.Add after Wait) nor leak.
func TestCloseRacesGet(t *testing.T) {
	for range 200 {
		f := newFakeStore()
		c := watchcache.New(f.load)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 20 {
					key := fmt.Sprint(i, "-", j)
					v, err := c.Get(context.Background(), key)
					if err != nil || v == nil {
						t.Errorf("Get(%s) = %v, %v", key, v, err)
						return
					}
				}
			}()
		}
		c.Close()
		wg.Wait()
		c.Close() // idempotent
		if _, ok := c.Peek("0-19"); ok {
			t.Fatal("a Get after Close cached its value")
		}
	}
}
