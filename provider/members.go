package provider

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// memberWatcher keeps the member list of <root>/nodes in memory, swept by a
// children watch. A change costs one get-children per watcher, plus one get
// per znode that appeared: the data of a node znode never changes (a
// changed record is a delete and a create), so a known child is never read
// again. Summed over a cluster of N members, a join costs 2N reads and a
// leave N, against N² for a watcher that reads every child again.
type memberWatcher struct {
	s      *cluster.Session
	dir    string
	log    *slog.Logger
	update func([]*pcluster.Member, map[string]bool) // on the watcher's goroutine, in order

	reads atomic.Int64 // ZooKeeper reads made, for tests and the bench

	known map[string]*pcluster.Member // child name → member; nil for a child that is not one
	quit  chan struct{}
	done  chan struct{}
}

// watchBackoff is the pause after a failed read before the watcher tries
// again (ZooKeeper unreachable: Session.Do already waited for it).
const watchBackoff = 50 * time.Millisecond

func newMemberWatcher(s *cluster.Session, dir string, log *slog.Logger, update func([]*pcluster.Member, map[string]bool)) *memberWatcher {
	return &memberWatcher{
		s: s, dir: dir, log: log, update: update,
		known: map[string]*pcluster.Member{},
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

func (w *memberWatcher) start() { go w.run() }

// stop ends the watcher and waits for it. The update callback is not called
// after stop returns.
func (w *memberWatcher) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}

func (w *memberWatcher) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.quit
		cancel()
	}()
	for {
		watch, err := w.sweep(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, cluster.ErrClosed) {
				<-w.quit // the session is gone (the member died): nothing more to read
				return
			}
			w.log.Debug("reading the members", "dir", w.dir, "err", err)
			select {
			case <-w.quit:
				return
			case <-time.After(watchBackoff):
				continue
			}
		}
		select {
		case <-w.quit:
			return
		case <-watch:
			// Any event (children changed, dir created or deleted, the
			// session expired or closed) means: read again.
		}
	}
}

// sweep reads the children with a watch, reads the new ones, and reports
// the member list. It returns the watch.
func (w *memberWatcher) sweep(ctx context.Context) (<-chan zk.Event, error) {
	var (
		names []string
		watch <-chan zk.Event
	)
	err := w.s.Do(ctx, cluster.Op{Name: "get children", Path: w.dir, Idempotent: true}, func(c *zk.Conn) error {
		w.reads.Add(1)
		var err error
		names, _, watch, err = c.ChildrenW(w.dir)
		if errors.Is(err, zk.ErrNoNode) {
			// No member ever joined: wait for the directory.
			var exists bool
			w.reads.Add(1)
			exists, _, watch, err = c.ExistsW(w.dir)
			if err == nil && exists {
				return errRetry
			}
			names = nil
		}
		return err
	})
	if errors.Is(err, errRetry) {
		return closedEvents, nil
	}
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(names))
	var fresh []string
	for _, n := range names {
		present[n] = true
		if _, ok := w.known[n]; !ok {
			fresh = append(fresh, n)
		}
	}
	for n := range w.known {
		if !present[n] {
			delete(w.known, n)
		}
	}
	members, err := w.readNew(ctx, fresh)
	if err != nil {
		return nil, err
	}
	for n, m := range members {
		w.known[n] = m
	}
	var list []*pcluster.Member
	for _, m := range w.known {
		if m != nil {
			list = append(list, m)
		}
	}
	slices.SortFunc(list, func(a, b *pcluster.Member) int { return cmpString(a.Id, b.Id) })
	w.update(list, present)
	return watch, nil
}

// readNew reads the node znodes that appeared, concurrently (go-zookeeper
// pipelines them on its one connection). A znode deleted meanwhile is left
// out: its deletion fires the watch, which sweeps again.
func (w *memberWatcher) readNew(ctx context.Context, names []string) (map[string]*pcluster.Member, error) {
	out := make(map[string]*pcluster.Member, len(names))
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 16)
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := w.dir + "/" + name
			var data []byte
			err := w.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
				w.reads.Add(1)
				var err error
				data, _, err = c.Get(p)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, zk.ErrNoNode):
			case err != nil:
				errs = append(errs, err)
			default:
				out[name] = w.member(p, data)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// member turns a node record into a protoactor member, or nil for a node
// that is not a member: a plain zkactor node (no kinds, as in every record
// written before kinds existed), or data zkactor cannot read.
func (w *memberWatcher) member(path string, data []byte) *pcluster.Member {
	n, err := records.Node(data)
	if err != nil {
		w.log.Warn("skipping a node znode zkactor cannot read (foreign or corrupt data)", "path", path, "bytes", len(data), "err", err)
		return nil
	}
	return memberOf(n)
}

func memberOf(n *pb.Node) *pcluster.Member {
	if len(n.Kinds) == 0 {
		return nil
	}
	host, portText, err := net.SplitHostPort(n.Address)
	if err != nil {
		return nil
	}
	port, err := strconv.ParseInt(portText, 10, 32)
	if err != nil {
		return nil
	}
	return &pcluster.Member{Id: n.Id, Host: host, Port: int32(port), Kinds: slices.Clone(n.Kinds)}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errRetry makes sweep read again at once (the directory appeared).
var errRetry = errors.New("read again")

// closedEvents is a channel that is always ready: "look again now".
var closedEvents = func() <-chan zk.Event {
	ch := make(chan zk.Event)
	close(ch)
	return ch
}()
