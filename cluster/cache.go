package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/watchcache"
)

// The lookup caches (services and nodes) are internal/watchcache caches
// whose loader is readDir: it reads the children of a znode (a "directory"
// such as <root>/services/worker) with a watch, then their data, and
// builds the entry. The watch firing (a child added or removed, the
// session expiring or closing) sweeps the entry; the next lookup reads the
// children again and only the data of those that joined (see readDir).

// child is one child znode and its data, as read during a load.
type child struct {
	name string
	data []byte
	rec  any // decoded from data by the entry's builder, kept for the next load
}

// dirState is what a directory load read: the directory's creation zxid
// and children version (0 when it does not exist), and its children by
// name. The next load of the directory starts from it.
type dirState struct {
	czxid    int64
	cversion int32
	children []child // sorted by name
}

// loadParallelism bounds the concurrent reads of one load.
const loadParallelism = 16

// dirLoader returns a watchcache loader that reads the directory dirOf(key)
// and builds its entry with build; state returns the dirState an entry was
// built from, the base of the next load.
func dirLoader[E any](s *Session, dirOf func(key string) string, build func(dir string, st *dirState) *E, state func(*E) *dirState) watchcache.Loader[E] {
	return func(ctx context.Context, key string, prev *E) (*E, error) {
		dir := dirOf(key)
		var base *dirState
		if prev != nil {
			base = state(prev)
		}
		st, err := readDir(ctx, s, dir, base)
		if err != nil {
			return nil, err
		}
		return build(dir, st), nil
	}
}

// readDir reads dir's children with a watch, then their data. A missing
// dir reads as empty, with a watch on its creation: lookups create nothing.
//
// From a base (the last load of dir), only the children that joined are
// read: one join costs two reads, one leave one, whatever the size. The
// base is trusted only when it is provably the same directory with no
// other change: the same creation zxid, and a children version that moved
// by exactly the joins and leaves seen (a child deleted and re-created
// under its name, with new data, moves it by two and shows neither).
func readDir(ctx context.Context, s *Session, dir string, base *dirState) (*dirState, error) {
	for {
		var (
			names []string
			stat  *zk.Stat
		)
		err := s.Do(ctx, Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			names, stat, _, err = conn.ChildrenW(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			var exists bool
			err = s.Do(ctx, Op{Name: "exists", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
				var err error
				exists, _, _, err = conn.ExistsW(dir)
				return err
			})
			if err != nil {
				return nil, err
			}
			if exists {
				continue // created meanwhile: read its children
			}
			return &dirState{}, nil
		}
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		st := &dirState{czxid: stat.Czxid, cversion: stat.Cversion}
		kept, joined := diff(base, stat, names)
		read, err := readAll(ctx, s, dir, joined)
		if err != nil {
			return nil, err
		}
		st.children = merge(kept, read)
		return st, nil
	}
}

// diff splits names (sorted) into the children base already has, with
// their data, and those to read. Without a trusted base, all are to read.
func diff(base *dirState, stat *zk.Stat, names []string) (kept []child, joined []string) {
	if base == nil || base.czxid == 0 || base.czxid != stat.Czxid {
		return nil, names
	}
	i, left := 0, 0
	for _, n := range names {
		for i < len(base.children) && base.children[i].name < n {
			i++
			left++
		}
		if i < len(base.children) && base.children[i].name == n {
			kept = append(kept, base.children[i])
			i++
			continue
		}
		joined = append(joined, n)
	}
	left += len(base.children) - i
	if int64(stat.Cversion)-int64(base.cversion) != int64(len(joined)+left) {
		return nil, names // more happened than the names show
	}
	return kept, joined
}

// merge merges two lists of children sorted by name.
func merge(a, b []child) []child {
	out := make([]child, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].name < b[0].name {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// readAll reads the data of dir's children, a few at a time (go-zookeeper
// pipelines them on the one connection). A child deleted meanwhile is
// skipped: its deletion fires the watch that sweeps this entry anyway.
func readAll(ctx context.Context, s *Session, dir string, names []string) ([]child, error) {
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
