package subscription

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
)

// Backoff between attempts to list the directory again after a failure
// (ZooKeeper unreachable for longer than the request timeout, say).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// readParallelism bounds the concurrent reads of one listing (go-zookeeper
// pipelines them on the one connection).
const readParallelism = 16

// testHookListed, when set (by tests), runs after each successful listing
// and before the reads it asks for: a test changes ZooKeeper there to play
// a change that races the reads.
var testHookListed atomic.Pointer[func()]

// follow is one subscription. Its goroutine (run) owns the view and the
// sequence number; other goroutines only cancel it.
type follow struct {
	s       *Subscriptions
	id      uint64
	service string // "" for nodes
	dir     string
	pid     *actor.PID
	decode  decoder
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the subscription has ended

	// Owned by the goroutine that lists (start, then run).
	view view
	seq  uint64
}

// stop ends the subscription and waits until no further message can be
// sent.
func (f *follow) stop() {
	f.cancel()
	<-f.done
}

// run lists the directory again each time the watch fires (a child
// created or deleted, the directory created, the watch ended by a session
// expiry), until the subscription ends.
func (f *follow) run(watch <-chan zk.Event) {
	backoff := minBackoff
	for {
		select {
		case <-watch:
		case <-f.ctx.Done():
			return
		case <-f.s.s.Done():
			return
		}
		for {
			w, err := f.sync(f.ctx)
			if err == nil {
				watch, backoff = w, minBackoff
				break
			}
			if f.ctx.Err() != nil {
				return
			}
			if errors.Is(err, cluster.ErrClosed) {
				f.log.Debug("subscription ends with its session", "err", err)
				return
			}
			f.log.Debug("listing failed; retrying", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-f.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// sync lists the directory with a watch, reads what the listing does not
// prove unchanged, sends the subscriber the difference from what it was
// told (the snapshot on the first call), and returns the watch. On an
// error nothing is sent and the view is unchanged: the next call starts
// from the same view.
func (f *follow) sync(ctx context.Context) (<-chan zk.Event, error) {
	names, stat, watch, err := f.list(ctx)
	if err != nil {
		return nil, err
	}
	if h := testHookListed.Load(); h != nil {
		(*h)()
	}
	p := diff(&f.view, names, stat)

	// The listing's zxid: every child it shows was created at or before
	// it, so a read that finds a creation zxid above it (or nothing) saw a
	// change made after the listing. Such a change belongs to a later
	// listing (the watch this one set has fired for it): reporting it now
	// would put it before changes that happened earlier.
	var listed int64
	if stat != nil {
		listed = stat.Pzxid
	}

	// Kept children whose life the listing does not prove: those with a
	// new creation zxid left and came back.
	if len(p.verify) > 0 {
		stats, err := f.readAll(ctx, p.verify, false)
		if err != nil {
			return nil, err
		}
		for i, n := range p.verify {
			switch st := stats[i].stat; {
			case st == nil || st.Czxid > listed:
				// Changed since the listing: the listing most likely
				// showed the known life, whose leave then comes after
				// this listing. Keep it as known and let the next
				// listing, which the watch has already asked for, report
				// it. (Listing again until nothing changes meanwhile
				// would never end under steady churn.)
				f.log.Debug("a kept child changed after the listing; the next listing reports it", "path", f.dir+"/"+n)
			case st.Czxid != f.view.children[n].czxid:
				p.gone = append(p.gone, n)
				p.fresh = append(p.fresh, n)
			}
		}
	}
	read, err := f.readAll(ctx, p.fresh, true)
	if err != nil {
		return nil, err
	}

	// Everything is read: apply it.
	var left, joined []*subv1.Member
	for _, n := range p.gone {
		if k := f.view.children[n]; k.member != nil {
			left = append(left, k.member)
		}
		delete(f.view.children, n)
	}
	for i, n := range p.fresh {
		r := read[i]
		if r.stat == nil || r.stat.Czxid > listed {
			// Deleted before its data could be read: never reported. A
			// newer life (created after the listing) is a join of the
			// next listing, which finds it unknown and reads it again.
			continue
		}
		m := &subv1.Member{Id: n, Czxid: r.stat.Czxid}
		if r.refused != nil {
			f.log.Debug("skipping a child this session may not read", "path", f.dir+"/"+n, "err", r.refused)
			f.view.children[n] = known{czxid: r.stat.Czxid}
			continue
		}
		if err := f.decode(m, r.data); err != nil {
			f.log.Debug("skipping a child that is not a usable record", "path", f.dir+"/"+n, "bytes", len(r.data), "err", err)
			f.view.children[n] = known{czxid: r.stat.Czxid}
			continue
		}
		f.view.children[n] = known{czxid: r.stat.Czxid, member: m}
		joined = append(joined, m)
	}
	var zxid int64
	f.view.czxid, f.view.cversion = 0, 0
	if stat != nil {
		f.view.czxid, f.view.cversion, zxid = stat.Czxid, stat.Cversion, stat.Pzxid
	}
	byCzxid(left)
	byCzxid(joined)

	if f.seq == 0 {
		f.seq = 1
		f.send(&subv1.Snapshot{Subscription: f.id, Seq: f.seq, Service: f.service, Members: joined, Zxid: zxid})
		return watch, nil
	}
	for _, m := range left {
		f.seq++
		f.send(&subv1.Left{Subscription: f.id, Seq: f.seq, Service: f.service, Member: m, Zxid: zxid})
	}
	for _, m := range joined {
		f.seq++
		f.send(&subv1.Joined{Subscription: f.id, Seq: f.seq, Service: f.service, Member: m, Zxid: zxid})
	}
	return watch, nil
}

func (f *follow) send(m proto.Message) { f.s.system.Root.Send(f.pid, m) }

// list reads the directory's children with a watch. A missing directory
// lists as empty (stat nil), with a watch on its creation.
func (f *follow) list(ctx context.Context) ([]string, *zk.Stat, <-chan zk.Event, error) {
	for {
		var (
			names []string
			stat  *zk.Stat
			watch <-chan zk.Event
		)
		err := f.s.s.Do(ctx, cluster.Op{Name: "get children", Path: f.dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			names, stat, watch, err = c.ChildrenW(f.dir)
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			// The request may still be running (Do stopped waiting when
			// ctx ended): what it writes is not ours to read.
			return nil, nil, nil, err
		}
		if err == nil {
			return names, stat, watch, nil
		}
		var exists bool
		err = f.s.s.Do(ctx, cluster.Op{Name: "exists", Path: f.dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			exists, _, watch, err = c.ExistsW(f.dir)
			return err
		})
		if err != nil {
			return nil, nil, nil, err
		}
		if !exists {
			return nil, nil, watch, nil
		}
		// Created meanwhile: list it.
	}
}

// childRead is the outcome of reading one child: stat nil when it is gone;
// refused set when its ACL does not let this session read its data.
type childRead struct {
	data    []byte
	stat    *zk.Stat
	refused error
}

// readAll reads the children names of the directory, a few at a time:
// their data and stat (withData), or their stat alone.
func (f *follow) readAll(ctx context.Context, names []string, withData bool) ([]childRead, error) {
	out := make([]childRead, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, readParallelism)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := f.dir + "/" + name
			var r childRead
			var err error
			if withData {
				err = f.s.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
					var err error
					r.data, r.stat, err = c.Get(p)
					return err
				})
			} else {
				err = f.s.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
					var err error
					var ok bool
					ok, r.stat, err = c.Exists(p)
					if !ok {
						r.stat = nil
					}
					return err
				})
			}
			if withData && errors.Is(err, zk.ErrNoAuth) {
				// Another client's child that this session may not read:
				// not a usable record. Failing the listing instead would
				// retry it forever and report nothing else. Its stat
				// (exists needs no permission) lets it be remembered.
				refused := err
				var st *zk.Stat
				err = f.s.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
					var err error
					var ok bool
					ok, st, err = c.Exists(p)
					if !ok {
						st = nil
					}
					return err
				})
				if err == nil && st != nil {
					r = childRead{stat: st, refused: refused}
				}
			}
			switch {
			case errors.Is(err, zk.ErrNoNode): // gone: out[i] stays empty
				err = nil
			case err == nil:
				out[i] = r
			}
			// Any other error: fn may still be running (Do stopped
			// waiting), so r is not ours to read.
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
