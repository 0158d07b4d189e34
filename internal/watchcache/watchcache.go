// Package watchcache is zkactor's one watch-swept cache: key → value, filled
// on a miss by a loader that reads ZooKeeper and leaves a watch, and swept
// when that watch fires (a change, the session expiring or closing). The
// next lookup after a sweep loads again, from the swept value: a loader can
// apply the difference instead of reading everything again.
//
// A hit is a sync.Map load: no ZooKeeper request, no lock that a writer or a
// loader holds across a round trip. Concurrent misses of one key share one
// load (single flight). Values are immutable once stored; callers copy what
// they hand out.
//
// No goroutine waits per entry: the owner passes every watch event of its
// session to Event, and the cache maps the event's path back to a key (the
// key's "watched path"). What the cache holds is bounded:
//   - an entry that no lookup used for an idle period is dropped (a janitor
//     goroutine, one per cache, looks twice per period);
//   - at most MaxAbsent entries hold an absent value (a name nobody
//     registered): a new one takes the place of one of them.
//
// A dropped entry leaves its watch on the server until it fires
// (go-zookeeper cannot remove watches); the event then finds no entry.
//
// Entry lifecycle:
//
//	miss ──load──▶ fresh ──watch fires──▶ swept (kept as the next load's base)
//	                 │                        │
//	                 └──idle────▶ dropped ◀───┴──idle
package watchcache

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/metrics"
)

// Loader reads the value of key from ZooKeeper and leaves a watch on the
// path that Options.PathKey maps back to key. The watch must be set before
// (or by) the read the value comes from, so that no change can slip between
// them. prev is the value the last watch swept, or nil: a loader may reuse
// what it knows has not changed.
type Loader[E any] func(ctx context.Context, key string, prev *E) (*E, error)

// Options configure a Cache.
type Options[E any] struct {
	// PathKey maps the path of a watch event to the key whose load set the
	// watch; ok is false for paths of no key. Required.
	PathKey func(path string) (key string, ok bool)
	// Absent reports a value that stands for nothing in ZooKeeper (an
	// empty service). Nil: no value is absent.
	Absent func(*E) bool
	// MaxAbsent bounds the entries holding an absent value; 0 means 1024.
	MaxAbsent int
	// IdleAfter is how long an entry no lookup used is kept; 0 means two
	// minutes.
	IdleAfter time.Duration
	// Metrics counts the cache's hits, misses, sweeps, evictions and
	// entries; nil counts nothing.
	Metrics *metrics.Cache
}

// Defaults of Options.
const (
	DefaultMaxAbsent = 1024
	DefaultIdleAfter = 2 * time.Minute
)

// Cache is a watch-swept cache of *E by string key. The zero value is not
// usable; create one with New.
type Cache[E any] struct {
	load Loader[E]
	opts Options[E]

	entries sync.Map // key → *slot[E]: the fresh values

	mu       sync.Mutex
	inflight map[string]*fill[E]
	swept    map[string]*E       // bases for the next load of swept keys
	absent   map[string]struct{} // fresh entries holding an absent value
	closed   bool
	// Evict, events and Sweep move these on, so that a load that began
	// before them neither installs its value nor serves a caller that came
	// after them: a writer that evicts after its write reads its write.
	epoch uint64            // moved by Sweep
	gens  map[string]uint64 // moved per key

	stats struct{ sweeps, dropped atomic.Int64 }

	stop chan struct{} // closed by Close: ends the janitor
	done chan struct{} // closed when the janitor has returned
}

// slot is a fresh entry.
type slot[E any] struct {
	val    *E
	absent bool
	used   atomic.Bool // looked up since the janitor's last pass
}

// fill is one load in flight, shared by the misses that arrive meanwhile.
type fill[E any] struct {
	gen   generation
	done  chan struct{}
	entry *E
	err   error
}

type generation struct{ epoch, key uint64 }

// New returns a cache that fills misses with load. It starts the cache's
// janitor; Close stops it.
func New[E any](load Loader[E], opts Options[E]) *Cache[E] {
	if opts.MaxAbsent <= 0 {
		opts.MaxAbsent = DefaultMaxAbsent
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = DefaultIdleAfter
	}
	if opts.Absent == nil {
		opts.Absent = func(*E) bool { return false }
	}
	c := &Cache[E]{
		load: load, opts: opts,
		inflight: map[string]*fill[E]{}, swept: map[string]*E{}, gens: map[string]uint64{}, absent: map[string]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go c.janitor()
	return c
}

// Get returns the value of key: from memory on a hit, else from one load
// shared with every concurrent miss of key. A caller whose ctx ends stops
// waiting; a waiter is not failed by the deadline of the caller whose load
// it shared, but loads again under its own ctx.
//
// After Close, Get still loads but caches nothing.
func (c *Cache[E]) Get(ctx context.Context, key string) (*E, error) {
	if e, ok := c.Peek(key); ok {
		return e, nil
	}
	for {
		e, err, shared := c.miss(ctx, key)
		if shared && err != nil && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // the loader's caller gave up, we did not
		}
		return e, err
	}
}

// Peek returns the cached value of key without loading it. It counts as a
// use of the entry, and as a hit when there is one.
func (c *Cache[E]) Peek(key string) (*E, bool) {
	v, ok := c.entries.Load(key)
	if !ok {
		return nil, false
	}
	s := v.(*slot[E])
	if !s.used.Load() {
		s.used.Store(true)
	}
	c.opts.Metrics.Hit()
	return s.val, true
}

// Evict drops key's value, so that the next Get loads again (from the
// dropped value as its base). Writers call it after their own changes,
// which the watch would report a moment later.
func (c *Cache[E]) Evict(key string) {
	c.mu.Lock()
	c.sweepLocked(key)
	c.mu.Unlock()
}

// Event takes a watch event of the session the loaders read from: the
// entry of the key its path maps to is swept. The owner passes every
// event; the cache ignores those of paths that are no key's. It does not
// block.
func (c *Cache[E]) Event(ev zk.Event) {
	if ev.Path == "" {
		return
	}
	key, ok := c.opts.PathKey(ev.Path)
	if !ok {
		return
	}
	c.mu.Lock()
	if c.sweepLocked(key) {
		c.stats.sweeps.Add(1)
		c.opts.Metrics.Swept(1)
	}
	c.mu.Unlock()
}

// sweepLocked moves key's generation on and turns its fresh value, if any,
// into the base of the next load. It reports whether there was one.
func (c *Cache[E]) sweepLocked(key string) bool {
	c.gens[key]++
	v, ok := c.entries.LoadAndDelete(key)
	if !ok {
		return false
	}
	s := v.(*slot[E])
	if s.absent {
		delete(c.absent, key)
	} else {
		c.swept[key] = s.val
	}
	c.opts.Metrics.Entries(-1)
	return true
}

// Sweep drops every value and every base: after a session expiry nothing
// known is a safe base.
func (c *Cache[E]) Sweep() {
	c.mu.Lock()
	c.epoch++
	clear(c.gens)
	clear(c.swept)
	clear(c.absent)
	n := 0
	c.entries.Range(func(k, _ any) bool { c.entries.Delete(k); n++; return true })
	c.mu.Unlock()
	c.stats.sweeps.Add(1)
	c.opts.Metrics.Swept(n)
	c.opts.Metrics.Entries(-n)
}

func (c *Cache[E]) genLocked(key string) generation {
	return generation{c.epoch, c.gens[key]}
}

// Stats are a cache's counters and sizes.
type Stats struct {
	Entries int   // fresh entries
	Absent  int   // of which hold an absent value
	Swept   int   // bases kept for the next load
	Sweeps  int64 // entries swept by a watch event, and whole sweeps
	Dropped int64 // entries dropped as idle
}

// Stats returns the cache's counters and sizes.
func (c *Cache[E]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	c.entries.Range(func(_, _ any) bool { n++; return true })
	return Stats{
		Entries: n, Absent: len(c.absent), Swept: len(c.swept),
		Sweeps: c.stats.sweeps.Load(), Dropped: c.stats.dropped.Load(),
	}
}

// Close drops every value and stops the janitor. It is idempotent, and
// safe while Gets run: a load that finishes after Close returns its value
// uncached.
func (c *Cache[E]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
	c.mu.Unlock()
	<-c.done
	c.Sweep()
}

// janitor drops idle entries and bases: every half IdleAfter, what no
// lookup used since the last pass goes (so an entry lives between one half
// and one whole IdleAfter past its last use).
func (c *Cache[E]) janitor() {
	defer close(c.done)
	t := time.NewTicker(c.opts.IdleAfter / 2)
	defer t.Stop()
	oldBases := map[string]*E{}
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		c.entries.Range(func(k, v any) bool {
			s := v.(*slot[E])
			if s.used.Swap(false) {
				return true
			}
			c.gens[k.(string)]++
			c.entries.Delete(k)
			delete(c.absent, k.(string))
			c.stats.dropped.Add(1)
			c.opts.Metrics.Evicted(1)
			c.opts.Metrics.Entries(-1)
			return true
		})
		// A base still there since the last pass has not been loaded from.
		for k, e := range c.swept {
			if oldBases[k] == e {
				delete(c.swept, k)
				c.stats.dropped.Add(1)
			}
		}
		oldBases = maps.Clone(c.swept)
		// Forget the per-key generations (they would grow with every key
		// ever swept); a new epoch keeps loads in flight from installing.
		c.epoch++
		clear(c.gens)
		c.mu.Unlock()
	}
}

// miss loads key, or waits for the load already in flight. shared reports
// that the result came from another caller's load.
func (c *Cache[E]) miss(ctx context.Context, key string) (e *E, err error, shared bool) {
	c.opts.Metrics.Miss()
	c.mu.Lock()
	if v, ok := c.entries.Load(key); ok {
		// Installed between the caller's lookup and this lock.
		c.mu.Unlock()
		return v.(*slot[E]).val, nil, false
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
	// A load begun before an Evict, event or Sweep is left to its own
	// callers.
	f := &fill[E]{gen: gen, done: make(chan struct{})}
	c.inflight[key] = f
	prev := c.swept[key]
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		if c.inflight[key] == f {
			delete(c.inflight, key)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.entry, f.err = c.load(ctx, key, prev)
	if f.err != nil {
		f.entry = nil
		return nil, f.err, false
	}
	c.install(key, f.gen, f.entry)
	return f.entry, nil, false
}

// install stores e under key. It stores nothing once the cache is closed,
// or when key was swept since the load began. An absent value beyond the
// bound takes the place of another (so that repeated lookups of one absent
// name are served from memory, and each name's load leaves one watch).
func (c *Cache[E]) install(key string, gen generation, e *E) {
	absent := c.opts.Absent(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.genLocked(key) != gen {
		if gen.epoch != c.epoch {
			return // swept or reset since: nothing it read is a base
		}
		// Stale as an answer, but what it read is still a sound base for
		// the next load (the loader checks a base before trusting it):
		// without this, loads raced by Evicts would start from an ever
		// older base.
		if _, fresh := c.entries.Load(key); !fresh && !absent {
			c.swept[key] = e
		}
		return
	}
	delete(c.swept, key)
	if absent {
		if len(c.absent) >= c.opts.MaxAbsent {
			for other := range c.absent { // any one
				c.gens[other]++
				c.entries.Delete(other)
				delete(c.absent, other)
				c.opts.Metrics.Evicted(1)
				c.opts.Metrics.Entries(-1)
				c.stats.dropped.Add(1)
				break
			}
		}
		c.absent[key] = struct{}{}
	}
	s := &slot[E]{val: e, absent: absent}
	s.used.Store(true)
	c.entries.Store(key, s)
	c.opts.Metrics.Entries(1)
}
