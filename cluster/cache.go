package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"
)

// The lookup caches (services and nodes) are internal/watchcache caches
// whose loader is readDir: it reads the children of a znode (a "directory"
// such as <root>/services/worker) with a watch, then their data, and
// builds the entry. The watch firing (a child added or removed, the
// session expiring or closing) sweeps the entry.

// child is one child znode and its data, as read during a load.
type child struct {
	name string
	data []byte
}

// loadParallelism bounds the concurrent reads of one load.
const loadParallelism = 16

// dirLoader returns a watchcache loader that reads the directory dirOf(key)
// and builds its entry with build.
func dirLoader[E any](s *Session, dirOf func(key string) string, build func(dir string, children []child) *E) func(context.Context, string) (*E, <-chan zk.Event, error) {
	return func(ctx context.Context, key string) (*E, <-chan zk.Event, error) {
		dir := dirOf(key)
		children, watch, err := readDir(ctx, s, dir)
		if err != nil {
			return nil, nil, err
		}
		return build(dir, children), watch, nil
	}
}

// readDir reads dir's children with a watch, then their data. A missing
// dir reads as empty, with a watch on its creation: lookups create nothing.
func readDir(ctx context.Context, s *Session, dir string) ([]child, <-chan zk.Event, error) {
	for {
		var (
			names []string
			watch <-chan zk.Event
		)
		err := s.Do(ctx, Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			names, _, watch, err = conn.ChildrenW(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			var exists bool
			err = s.Do(ctx, Op{Name: "exists", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
				var err error
				exists, _, watch, err = conn.ExistsW(dir)
				return err
			})
			if err != nil {
				return nil, nil, err
			}
			if exists {
				continue // created meanwhile: read its children
			}
			return nil, watch, nil
		}
		if err != nil {
			return nil, nil, err
		}
		children, err := readAll(ctx, s, dir, names)
		if err != nil {
			return nil, nil, err
		}
		return children, watch, nil
	}
}

// readAll reads the data of dir's children, a few at a time (go-zookeeper
// pipelines them on the one connection). A child deleted meanwhile is
// skipped: its deletion fires the watch that sweeps this entry anyway.
func readAll(ctx context.Context, s *Session, dir string, names []string) ([]child, error) {
	sort.Strings(names)
	out := make([]child, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, loadParallelism)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := dir + "/" + name
			err := s.Do(ctx, Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
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
