// Package watchcache is zkactor's one watch-swept cache: key → value, filled
// on a miss by a loader that reads ZooKeeper and leaves a watch, and swept
// when that watch fires (a change, the session expiring or closing). The
// next lookup after a sweep loads again.
//
// A hit is a sync.Map load: no ZooKeeper request, no lock that a writer or a
// loader holds across a round trip. Concurrent misses of one key share one
// load (single flight). Values are immutable once stored; callers copy what
// they hand out.
package watchcache

import (
	"context"
	"errors"
	"sync"

	"github.com/go-zookeeper/zk"
)

// Loader reads the value of key from ZooKeeper and returns it with the
// watch whose firing makes it stale. The watch must be set before (or by)
// the read the value comes from, so that no change can slip between them.
// A nil watch means the value is not cached.
type Loader[E any] func(ctx context.Context, key string) (*E, <-chan zk.Event, error)

// Cache is a watch-swept cache of *E by string key. The zero value is not
// usable; create one with New.
type Cache[E any] struct {
	load    Loader[E]
	entries sync.Map // key → *E

	mu       sync.Mutex
	inflight map[string]*fill[E]
	closed   bool
	// Evict and Sweep move these on, so that a load that began before them
	// neither installs its value nor serves a caller that came after them:
	// a writer that evicts after its write reads its write.
	epoch uint64            // moved by Sweep
	gens  map[string]uint64 // moved by Evict, per key

	stop chan struct{}  // closed by Close: ends the watch goroutines
	wg   sync.WaitGroup // watch goroutines; Add only under mu while !closed
}

// fill is one load in flight, shared by the misses that arrive meanwhile.
type fill[E any] struct {
	gen   generation
	done  chan struct{}
	entry *E
	err   error
}

type generation struct{ epoch, key uint64 }

// New returns a cache that fills misses with load.
func New[E any](load func(ctx context.Context, key string) (*E, <-chan zk.Event, error)) *Cache[E] {
	return &Cache[E]{load: load, inflight: map[string]*fill[E]{}, gens: map[string]uint64{}, stop: make(chan struct{})}
}

// Get returns the value of key: from memory on a hit, else from one load
// shared with every concurrent miss of key. A caller whose ctx ends stops
// waiting; a waiter is not failed by the deadline of the caller whose load
// it shared, but loads again under its own ctx.
//
// After Close, Get still loads but caches nothing.
func (c *Cache[E]) Get(ctx context.Context, key string) (*E, error) {
	for {
		if e, ok := c.entries.Load(key); ok {
			return e.(*E), nil
		}
		e, err, shared := c.miss(ctx, key)
		if shared && err != nil && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // the loader's caller gave up, we did not
		}
		return e, err
	}
}

// Peek returns the cached value of key without loading it.
func (c *Cache[E]) Peek(key string) (*E, bool) {
	e, ok := c.entries.Load(key)
	if !ok {
		return nil, false
	}
	return e.(*E), true
}

// Evict drops key's value, so that the next Get loads again. Writers call
// it after their own changes, which the watch would report a moment later.
func (c *Cache[E]) Evict(key string) {
	c.mu.Lock()
	c.gens[key]++
	c.entries.Delete(key)
	c.mu.Unlock()
}

// Sweep drops every value.
func (c *Cache[E]) Sweep() {
	c.mu.Lock()
	c.epoch++
	clear(c.gens)
	c.entries.Range(func(k, _ any) bool { c.entries.Delete(k); return true })
	c.mu.Unlock()
}

func (c *Cache[E]) genLocked(key string) generation {
	return generation{c.epoch, c.gens[key]}
}

// Close drops every value and waits for the cache's goroutines. It is
// idempotent, and safe while Gets run: a load that finishes after Close
// returns its value uncached.
func (c *Cache[E]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.Sweep()
}

// miss loads key, or waits for the load already in flight. shared reports
// that the result came from another caller's load.
func (c *Cache[E]) miss(ctx context.Context, key string) (e *E, err error, shared bool) {
	c.mu.Lock()
	if e, ok := c.entries.Load(key); ok {
		// Installed between the caller's lookup and this lock.
		c.mu.Unlock()
		return e.(*E), nil, false
	}
	gen := c.genLocked(key)
	if f, ok := c.inflight[key]; ok && f.gen == gen {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.entry, f.err, true
		case <-ctx.Done():
			return nil, context.Cause(ctx), false
		}
	}
	// A load begun before an Evict or Sweep is left to its own callers.
	f := &fill[E]{gen: gen, done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		if c.inflight[key] == f {
			delete(c.inflight, key)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	var watch <-chan zk.Event
	f.entry, watch, f.err = c.load(ctx, key)
	if f.err != nil {
		f.entry = nil
		return nil, f.err, false
	}
	c.install(key, f.gen, f.entry, watch)
	return f.entry, nil, false
}

// install stores e under key with a goroutine that sweeps it when watch
// fires. It stores nothing once the cache is closed, without a watch, or
// when key was evicted (or everything swept) since the load began.
func (c *Cache[E]) install(key string, gen generation, e *E, watch <-chan zk.Event) {
	if watch == nil {
		return
	}
	c.mu.Lock()
	if c.closed || c.genLocked(key) != gen {
		c.mu.Unlock()
		return
	}
	// Under mu and before Close has set closed: Close's Wait cannot have
	// started, so this Add is never concurrent with it.
	c.wg.Add(1)
	c.entries.Store(key, e)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		select {
		case <-watch: // any event, including session expiry or close, sweeps
		case <-c.stop:
		}
		// Only this load's value: a newer one has its own watch.
		c.entries.CompareAndDelete(key, e)
	}()
}
