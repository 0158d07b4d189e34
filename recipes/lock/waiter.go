package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
)

// waiter is one Lock or TryLock call's place in the queue. Only the
// calling goroutine touches it.
type waiter struct {
	m    *Mutex
	guid string // names every znode of this call

	path    string          // the waiter znode, "" = none
	session int64           // the session that owns path
	own     <-chan zk.Event // watch on path; nil when none is set
	token   int64           // path's creation zxid
	strays  bool            // a create's outcome was lost: znodes of ours may exist besides path
}

// run queues the waiter and returns once it heads the queue under a lease
// that holds (nil), or with an error: ctx ended, TryLock found the lock
// taken, or the server refused the create.
func (w *waiter) run(ctx context.Context, try bool) error {
	s := w.m.s
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock %q: %w", w.m.name, err)
		}
		if w.path == "" || w.session != s.ID() {
			if w.path != "" {
				w.m.log.Debug("the session changed while waiting: queueing again", "path", w.path)
				w.path, w.own = "", nil
			}
			if err := w.enter(ctx); err != nil {
				if protected.Refused(err) || ctx.Err() != nil {
					return fmt.Errorf("lock %q: %w", w.m.name, err)
				}
				w.m.log.Debug("entering the queue", "err", err)
				w.sleep(ctx, nil)
				continue
			}
		}
		if w.own == nil {
			switch gone, err := w.watchOwn(ctx); {
			case errors.Is(err, cluster.ErrClosed):
				return fmt.Errorf("lock %q: %w", w.m.name, err)
			case err != nil:
				w.sleep(ctx, nil)
				continue
			case gone:
				w.path = ""
				continue
			}
		}
		names, err := protected.Children(ctx, s, w.m.dir)
		if protected.Refused(err) {
			// ErrClosed, or a directory this session may not list
			// (another identity's ACL): retrying cannot cure it.
			return fmt.Errorf("lock %q: %w", w.m.name, err)
		}
		if err != nil {
			w.sleep(ctx, nil)
			continue
		}
		q := waiters.Order(names)
		me := w.path[strings.LastIndexByte(w.path, '/')+1:]
		w.removeStrays(ctx, q, me)
		if w.strays {
			// A stray of ours is still there: it must not stay ahead of
			// (or be counted beside) this one. Try again before going on.
			w.sleep(ctx, nil)
			continue
		}
		idx := slices.Index(q, me)
		if idx < 0 {
			w.m.log.Debug("the waiter znode is gone: queueing again", "path", w.path)
			w.path, w.own = "", nil
			continue
		}
		pred, watch, err := w.predecessor(ctx, q, idx, !try)
		if protected.Refused(err) {
			return fmt.Errorf("lock %q: %w", w.m.name, err)
		}
		if err != nil {
			w.sleep(ctx, nil)
			continue
		}
		if pred != "" && try {
			return fmt.Errorf("lock %q: %w", w.m.name, ErrLocked)
		}
		if pred == "" {
			if !w.awaitLease(ctx) {
				continue // ctx ended, or the session changed
			}
			select {
			case ev := <-w.own: // the znode changed meanwhile: look again
				w.own = nil
				if ev.Type == zk.EventNodeDeleted {
					w.path = ""
				}
				continue
			default:
			}
			return nil
		}
		w.m.log.Debug("waiting for the predecessor", "path", w.path, "predecessor", pred)
		// A predecessor this session may not read has no watch: look
		// again after the backoff.
		poll := time.NewTimer(backoff)
		if watch != nil {
			poll.Stop()
		}
		select {
		case <-watch: // deleted, changed, or the session ended: look again
		case <-poll.C:
		case ev := <-w.own:
			w.own = nil
			if ev.Type == zk.EventNodeDeleted {
				w.m.log.Info("the waiter znode was deleted by someone else: queueing again", "path", w.path)
				w.path = ""
			}
		case <-ctx.Done():
		}
		poll.Stop()
	}
}

// enter creates the waiter znode: ephemeral, sequential and protected by
// the call's GUID, so that after a connection lost during the create the
// waiter finds its own znode instead of queueing twice (see
// protected.Shape.Enqueue).
func (w *waiter) enter(ctx context.Context) error {
	path, session, strays, err := waiters.Enqueue(ctx, w.m.s, w.m.root, w.m.dir, w.guid, w.m.data, backoff)
	// The next listing, or abandon, deletes the strays.
	w.strays = w.strays || strays
	if err != nil {
		return err
	}
	w.path, w.session, w.own = path, session, nil
	return nil
}

// watchOwn reads the waiter znode with a watch: its creation zxid is the
// fencing token, and the watch tells the holder when someone deletes it.
// It reports gone when the znode no longer exists or is another session's.
func (w *waiter) watchOwn(ctx context.Context) (gone bool, err error) {
	var (
		found bool
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	p := w.path
	err = w.m.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, watch, err = conn.ExistsW(p)
		return err
	})
	if err != nil {
		return false, err
	}
	if !found || stat.EphemeralOwner != w.session {
		return true, nil
	}
	w.own, w.token = watch, stat.Czxid
	return false, nil
}

// predecessor finds the live waiter just ahead of q[idx] and, when watch
// is set, watches it: the only znode whose deletion wakes this waiter.
// Waiters gone meanwhile and znodes with no session behind them are passed
// over. It returns "" when none is left: this waiter heads the queue.
//
// A waiter znode this session may not read (a foreign client's ACL) is
// looked at with exists, which needs no permission, and returned with no
// watch: the server sets none on a refused read, and sends no event on
// such a znode to an exists watch either, so the caller polls it.
func (w *waiter) predecessor(ctx context.Context, q []string, idx int, watch bool) (string, <-chan zk.Event, error) {
	for i := idx - 1; i >= 0; i-- {
		p := w.m.dir + "/" + q[i]
		var (
			stat *zk.Stat
			ch   <-chan zk.Event
		)
		// GetW rather than ExistsW: on a znode already gone it leaves no
		// watch behind on the server.
		err := w.m.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			if watch {
				_, stat, ch, err = conn.GetW(p)
			} else {
				_, stat, err = conn.Get(p)
			}
			if errors.Is(err, zk.ErrNoAuth) {
				var found bool
				ch = nil
				found, stat, err = conn.Exists(p)
				if err == nil && !found {
					err = zk.ErrNoNode
				}
			}
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		if !protected.TakesPart(stat) {
			w.m.log.Debug("passing over a znode with no session behind it", "path", p)
			continue
		}
		return p, ch, nil
	}
	return "", nil, nil
}

// removeStrays deletes the znodes of this call other than its own (left by
// a create whose outcome was lost), when there may be any.
func (w *waiter) removeStrays(ctx context.Context, q []string, me string) {
	if !w.strays {
		return
	}
	w.strays = false
	w.m.log.Debug("deleting stray waiter znodes", "dir", w.m.dir, "guid", w.guid)
	if err := waiters.Delete(ctx, w.m.s, w.m.dir, w.guid, q, me); err != nil {
		w.strays = true // next time
	}
}

// awaitLease waits, without requests, until the lease of the waiter's
// session holds. It reports false when ctx ends or the session changes.
func (w *waiter) awaitLease(ctx context.Context) bool {
	s := w.m.s
	for !time.Now().Before(s.SafeUntilFor(w.session)) {
		if s.ID() != w.session || !w.sleep(ctx, nil) {
			return false
		}
	}
	return true
}

// sleep waits for the backoff, or less if woken. It reports false once ctx
// has ended.
func (w *waiter) sleep(ctx context.Context, wake <-chan zk.Event) bool {
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	case <-w.m.s.Done():
		return false
	}
}

// abandon gives up the waiter's znodes after a failed or cancelled call:
// deleted now if ZooKeeper answers within the session timeout, else by the
// session as soon as it can.
func (w *waiter) abandon(ctx context.Context) {
	s := w.m.s
	if w.path != "" && w.session == s.ID() {
		if err := protected.Abandon(ctx, s, w.path); err != nil {
			w.m.log.Debug("deleting the waiter znode once connected", "path", w.path, "err", err)
		}
	}
	if w.strays {
		waiters.SweepLater(s, w.m.dir, w.guid, s.ID(), backoff)
	}
}
