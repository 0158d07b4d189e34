package watchcache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/watchcache"
	"github.com/zkactor/zkactor/test/zktest"
)

// These tests need no ZooKeeper: the loader is a fake, and a watch firing
// is an event passed to Cache.Event, as the owner passes its session's.

func TestMain(m *testing.M) { zktest.Main(m) }

// fakeStore is a loader: each load returns the key's current value and
// counts the loads; it records the base it was given.
type fakeStore struct {
	mu      sync.Mutex
	values  map[string]string
	prevs   []string // the base of each load, "" for none
	loads   atomic.Int64
	gate    chan struct{} // when set, every load waits for it
	started chan string   // when set, every load reports its key first
	fail    error
	cache   *watchcache.Cache[string]
}

func newFakeStore() *fakeStore {
	return &fakeStore{values: map[string]string{}}
}

// newCache returns a cache of f's values; the path of key k is "/k".
func (f *fakeStore) newCache(opts watchcache.Options[string]) *watchcache.Cache[string] {
	opts.PathKey = func(path string) (string, bool) { return strings.CutPrefix(path, "/") }
	f.cache = watchcache.New(f.load, opts)
	return f.cache
}

func (f *fakeStore) load(ctx context.Context, key string, prev *string) (*string, error) {
	f.loads.Add(1)
	f.mu.Lock()
	v, gate, started, fail := f.values[key], f.gate, f.started, f.fail
	base := ""
	if prev != nil {
		base = *prev
	}
	f.prevs = append(f.prevs, base)
	f.mu.Unlock()
	if started != nil {
		started <- key
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("load %s: %w", key, context.Cause(ctx))
		}
	}
	if fail != nil {
		return nil, fail
	}
	return &v, nil
}

// set changes key's value and fires its watch, as a ZooKeeper write would.
func (f *fakeStore) set(key, v string) {
	f.mu.Lock()
	f.values[key] = v
	f.mu.Unlock()
	f.cache.Event(zk.Event{Type: zk.EventNodeChildrenChanged, Path: "/" + key})
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
	c := f.newCache(watchcache.Options[string]{})
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
	c := f.newCache(watchcache.Options[string]{})
	defer c.Close()
	get(t, c, "a")
	f.set("a", "2")
	if _, ok := c.Peek("a"); ok {
		t.Fatal("entry not swept when its watch fired")
	}
	if v := get(t, c, "a"); v != "2" {
		t.Fatalf("Get after a change = %q, want 2", v)
	}
	// The load after the sweep had the swept value as its base.
	f.mu.Lock()
	prevs := f.prevs
	f.mu.Unlock()
	if !slices.Equal(prevs, []string{"", "1"}) {
		t.Fatalf("bases of the loads = %q, want [\"\" \"1\"]", prevs)
	}
	// Events of paths that are no key's change nothing.
	c.Event(zk.Event{Type: zk.EventNodeDeleted})
	c.Event(zk.Event{Type: zk.EventNodeDeleted, Path: "elsewhere"})
	if _, ok := c.Peek("a"); !ok {
		t.Fatal("an event without a path swept the entry")
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "1"
	f.gate = make(chan struct{})
	f.started = make(chan string, 100)
	c := f.newCache(watchcache.Options[string]{})
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
	c := f.newCache(watchcache.Options[string]{})
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
	c := f.newCache(watchcache.Options[string]{})
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
	c := f.newCache(watchcache.Options[string]{})
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

// An event that arrives while a load is in flight (the watch that load set
// has fired already) keeps that load from installing its value.
func TestEventDuringLoadWins(t *testing.T) {
	f := newFakeStore()
	f.values["a"] = "old"
	f.gate = make(chan struct{})
	f.started = make(chan string, 10)
	c := f.newCache(watchcache.Options[string]{})
	defer c.Close()
	done := make(chan struct{})
	go func() { c.Get(context.Background(), "a"); close(done) }()
	<-f.started
	f.set("a", "new")
	close(f.gate)
	<-done
	if _, ok := c.Peek("a"); ok {
		t.Fatal("a load whose watch fired before it finished was cached")
	}
	if v := get(t, c, "a"); v != "new" {
		t.Fatalf("Get = %q, want new", v)
	}
}

// At most MaxAbsent entries hold an absent value; the rest are served, not
// kept. Present values are not bounded that way.
func TestAbsentEntriesAreBounded(t *testing.T) {
	f := newFakeStore()
	c := f.newCache(watchcache.Options[string]{MaxAbsent: 10, Absent: func(v *string) bool { return *v == "" }})
	defer c.Close()
	for i := range 100 {
		get(t, c, fmt.Sprint("absent-", i))
	}
	f.mu.Lock()
	for i := range 100 {
		f.values[fmt.Sprint("present-", i)] = "x"
	}
	f.mu.Unlock()
	for i := range 100 {
		get(t, c, fmt.Sprint("present-", i))
	}
	st := c.Stats()
	if st.Absent != 10 || st.Entries != 110 {
		t.Fatalf("stats %+v, want 10 absent of 110 entries", st)
	}
	// A swept absent entry frees its place.
	f.set("absent-0", "")
	get(t, c, "absent-99")
	if st := c.Stats(); st.Absent != 10 {
		t.Fatalf("absent = %d after a sweep and a new miss, want 10", st.Absent)
	}
}

// Entries and bases no lookup uses are dropped after IdleAfter; used ones
// stay.
func TestIdleEntriesAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStore()
		f.values["hot"], f.values["cold"], f.values["swept"] = "1", "2", "3"
		c := f.newCache(watchcache.Options[string]{IdleAfter: time.Minute})
		defer c.Close()
		get(t, c, "hot")
		get(t, c, "cold")
		get(t, c, "swept")
		f.set("swept", "4") // now a base only
		for range 4 {
			time.Sleep(30 * time.Second) // fake time: the janitor's passes
			synctest.Wait()
			get(t, c, "hot")
		}
		if _, ok := c.Peek("cold"); ok {
			t.Fatal("an idle entry was kept")
		}
		st := c.Stats()
		if st.Entries != 1 || st.Swept != 0 || st.Dropped != 2 {
			t.Fatalf("stats %+v, want only hot, and 2 dropped", st)
		}
	})
}

// Close while Gets run must neither panic (wg.Add after Wait) nor leak.
func TestCloseRacesGet(t *testing.T) {
	for range 200 {
		f := newFakeStore()
		c := f.newCache(watchcache.Options[string]{})
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
