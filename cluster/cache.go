package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"
)

// dirCache caches what the children of a znode (a "directory" such as
// <root>/services/worker) decode to. The first lookup of a directory reads
// ZooKeeper and leaves a watch; the watch firing (a child added or removed,
// the session expiring, the session closing) sweeps the entry, so the next
// lookup reads again.
//
// A hit is a sync.Map load: no ZooKeeper request, no actor message and no
// lock that a writer holds across a round trip. Entries are immutable once
// stored; callers copy what they hand out.
type dirCache[E any] struct {
	s     *Session
	build func(dir string, children []child) *E

	entries sync.Map // key (a service name, say) → *E

	mu       sync.Mutex
	inflight map[string]*fill[E] // by key

	wg   sync.WaitGroup // watch goroutines
	stop chan struct{}
}

// child is one child znode and its data, as read during a fill.
type child struct {
	name string
	data []byte
}

type fill[E any] struct {
	done  chan struct{}
	entry *E
	err   error
}

// fillParallelism bounds the concurrent reads of one fill.
const fillParallelism = 16

func newDirCache[E any](s *Session, build func(string, []child) *E) *dirCache[E] {
	return &dirCache[E]{s: s, build: build, inflight: map[string]*fill[E]{}, stop: make(chan struct{})}
}

// close sweeps everything and waits for the watch goroutines.
func (c *dirCache[E]) close() {
	close(c.stop)
	c.wg.Wait()
}

// get returns the cached entry for key, filling it from the children of
// dir on a miss. Concurrent misses of one key share a single fill. Entries
// are keyed by a short key rather than the path so that a hit builds no
// string.
func (c *dirCache[E]) get(ctx context.Context, key, dir string) (*E, error) {
	if e, ok := c.entries.Load(key); ok {
		return e.(*E), nil
	}
	return c.miss(ctx, key, dir)
}

// evict drops key's entry, so that the next lookup reads ZooKeeper. Used
// after this node's own writes, which its watch would report a moment later.
func (c *dirCache[E]) evict(key string) { c.entries.Delete(key) }

// sweep drops every entry.
func (c *dirCache[E]) sweep() {
	c.entries.Range(func(k, _ any) bool { c.entries.Delete(k); return true })
}

func (c *dirCache[E]) miss(ctx context.Context, key, dir string) (*E, error) {
	c.mu.Lock()
	if f, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.entry, f.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	f := &fill[E]{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	f.entry, f.err = c.load(ctx, key, dir)
	c.mu.Lock()
	delete(c.inflight, key)
	c.mu.Unlock()
	close(f.done)
	return f.entry, f.err
}

// load reads dir's children with a watch, then their data, and installs
// the entry with a goroutine that sweeps it when the watch fires.
func (c *dirCache[E]) load(ctx context.Context, key, dir string) (*E, error) {
	for {
		var (
			names []string
			watch <-chan zk.Event
		)
		err := c.s.Do(ctx, Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			names, _, watch, err = conn.ChildrenW(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			// Nothing registered under dir yet. Watch for its creation
			// rather than creating it: lookups leave nothing behind.
			var exists bool
			err = c.s.Do(ctx, Op{Name: "exists", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
				var err error
				exists, _, watch, err = conn.ExistsW(dir)
				return err
			})
			if err != nil {
				return nil, err
			}
			if exists {
				continue
			}
			return c.install(key, c.build(dir, nil), watch), nil
		}
		if err != nil {
			return nil, err
		}
		children, err := c.readAll(ctx, dir, names)
		if err != nil {
			return nil, err
		}
		return c.install(key, c.build(dir, children), watch), nil
	}
}

// readAll reads the data of dir's children, a few at a time (go-zookeeper
// pipelines them on the one connection). A child deleted meanwhile is
// skipped: its deletion fires the watch that sweeps this entry anyway.
func (c *dirCache[E]) readAll(ctx context.Context, dir string, names []string) ([]child, error) {
	sort.Strings(names)
	out := make([]child, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, fillParallelism)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := dir + "/" + name
			err := c.s.Do(ctx, Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
				data, _, err := conn.Get(p)
				out[i] = child{name: name, data: data}
				return err
			})
			if errors.Is(err, zk.ErrNoNode) {
				out[i] = child{}
				err = nil
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, ch := range out {
		if ch.name != "" {
			kept = append(kept, ch)
		}
	}
	return kept, nil
}

func (c *dirCache[E]) install(key string, e *E, watch <-chan zk.Event) *E {
	c.entries.Store(key, e)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-watch: // any event, including session expiry or close, sweeps
		case <-c.stop:
		}
		// Only this fill's entry: a newer one has its own watch.
		c.entries.CompareAndDelete(key, e)
	}()
	return e
}
