package workqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
)

// waiter is a waiting Take's place in the queue's line: an ephemeral
// sequential znode <waiters>/<token>-<seq> of the session. The first in
// line watches items/ and claims/; every other waiter watches the one
// before it (ZooKeeper's lock recipe), so that a put wakes one handle,
// and the line moves on one waiter at a time as each leaves: it took an
// item, its Take gave up, or its session ended.
type waiter struct {
	path    string // the znode, "" while there is none
	session int64  // the session that owns it
	first   bool   // it heads the line: its Take watches items/ and claims/
	pred    string // the waiter before it, watched ("" when first or not known)
}

// place names w's place for tests: "first", "behind", or "" (none).
func (w *waiter) place() string {
	switch {
	case w.path == "":
		return ""
	case w.first:
		return "first"
	}
	return "behind"
}

// queueUp makes sure w stands in the line on the current session and knows
// its place: first, or behind a waiter whose exists watch is armed. It
// costs no request while w's place is known and the watch has not fired.
// Without a session (the client is reconnecting) it does nothing: the
// Connected or Expired event wakes the Take.
func (q *Queue) queueUp(ctx context.Context, w *waiter) error {
	for {
		session := q.s.ID()
		if session == 0 {
			return nil
		}
		if w.path != "" && w.session != session {
			// Gone with its session (ZooKeeper deletes ephemerals at expiry).
			q.log.Debug("the waiter's session ended: queueing up again", "path", w.path)
			*w = waiter{}
		}
		if w.path == "" {
			if err := q.join(ctx, w); err != nil {
				return err
			}
		}
		if w.first || w.pred != "" && q.predArmed(w.pred, w.session) {
			return nil
		}
		names, err := q.children(ctx, q.waiters, false)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		line, _ := order(names)
		i := slices.Index(line, w.path[strings.LastIndexByte(w.path, '/')+1:])
		switch {
		case i < 0:
			q.log.Warn("the waiter znode was deleted by someone else: queueing up again", "path", w.path)
			*w = waiter{}
			continue
		case i == 0:
			w.first, w.pred = true, ""
			q.log.Debug("first in line: watching the items", "path", w.path)
			return nil
		}
		pred := q.waiters + "/" + line[i-1]
		ok, err := q.watchPred(ctx, pred)
		if err != nil {
			return err
		}
		if ok {
			w.pred = pred
			return nil
		}
		// The one before left meanwhile: look again.
	}
}

// testHookBeforeJoin, when a test sets it, runs before a waiter's create.
var testHookBeforeJoin func()

// join creates w's znode at the back of the line. A create whose reply was
// lost is found by its token (the protected create ZooKeeper's recipes use):
// the waiter of this session whose name starts with it.
func (q *Queue) join(ctx context.Context, w *waiter) error {
	data, err := proto.Marshal(&workqueuev1.Waiter{Taker: q.producer, Since: timestamppb.Now()})
	if err != nil {
		return fmt.Errorf("join the line of %s: %w", q.waiters, err)
	}
	token := randomHex(8)
	prefix := q.waiters + "/" + token + "-"
	for attempt := 0; ; attempt++ {
		if testHookBeforeJoin != nil {
			testHookBeforeJoin()
		}
		var created string
		var session int64
		// A create that lands after the Take gave up (its ctx ended) makes a
		// waiter nobody stands behind: it would head the line, unwatched,
		// for as long as the session lives. It is deleted as soon as its
		// outcome is known.
		late := func(err error) {
			switch {
			case err == nil && created != "":
				q.s.DeleteWhenConnected(created)
			case err != nil && zkutil.IsTransient(err):
				q.removeLateWaiter(token)
			}
		}
		err := plumbing.DoLate(ctx, q.s, "create", prefix, late, func(c *zk.Conn) error {
			before := c.SessionID()
			p, err := zkutil.CreateWithParents(c, q.root, prefix, data, zk.FlagEphemeral|zk.FlagSequence, q.s.ACL())
			if c.SessionID() == before {
				created, session = p, before
			}
			return err
		})
		if err != nil && ctx.Err() != nil {
			if zkutil.IsTransient(err) { // the outcome came, unknown
				q.removeLateWaiter(token)
			} // else it is late's, if it comes
			return err
		}
		if err == nil && session != 0 {
			*w = waiter{path: created, session: session}
			return nil
		}
		if err != nil && !zkutil.IsTransient(err) || attempt >= 2 {
			if err == nil {
				err = errors.New("the session changed during the create")
			}
			return fmt.Errorf("join the line: %w", err)
		}
		// Unknown outcome: is there a waiter of ours with the token?
		if found, owner, err := q.findWaiter(ctx, token); err != nil {
			return fmt.Errorf("join the line: %w", err)
		} else if found != "" && owner == q.s.ID() {
			*w = waiter{path: q.waiters + "/" + found, session: owner}
			return nil
		}
	}
}

// removeLateWaiter deletes the waiter named with token if the current
// session owns it: the create of a Take that gave up, whose outcome is
// unknown. The goroutine is the session's: it ends within the session's
// RequestTimeout.
func (q *Queue) removeLateWaiter(token string) {
	session := q.s.ID()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), q.s.RequestTimeout())
		defer cancel()
		found, owner, err := q.findWaiter(ctx, token)
		if err != nil {
			q.log.Warn("a waiter whose create was given up may stand in line until the session ends", "token", token, "err", err)
			return
		}
		if found != "" && owner == session && owner != 0 {
			q.s.DeleteWhenConnected(q.waiters + "/" + found)
		}
	}()
}

// findWaiter returns the waiter named with token, if any, and the session
// that owns it.
func (q *Queue) findWaiter(ctx context.Context, token string) (string, int64, error) {
	names, err := q.children(ctx, q.waiters, false)
	if errors.Is(err, zk.ErrNoNode) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	for _, n := range names {
		if k, _, ok := parseItem(n); !ok || k != token {
			continue
		}
		_, stat, err := q.get(ctx, q.waiters+"/"+n)
		if errors.Is(err, zk.ErrNoNode) {
			return "", 0, nil
		}
		if err != nil {
			return "", 0, err
		}
		return n, stat.EphemeralOwner, nil
	}
	return "", 0, nil
}

// watchPred sets an exists watch on the waiter p, the one before this
// handle's, unless one is armed; it reports whether p exists. At most one
// such watch per handle is recorded (a handle has one waiting Take at a
// time), and one is set again only after it fired: go-zookeeper keeps a
// channel for every watch until it fires.
func (q *Queue) watchPred(ctx context.Context, p string) (bool, error) {
	session := q.s.ID()
	q.mu.Lock()
	armed := q.predPath == p && q.predSession == session
	gen := q.waiterEvents
	q.mu.Unlock()
	if armed {
		return true, nil
	}
	var (
		ok    bool
		owner int64
	)
	err := q.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		before := c.SessionID()
		var err error
		ok, _, _, err = c.ExistsW(p)
		if c.SessionID() == before {
			owner = before
		}
		return err
	})
	if err != nil {
		return false, err
	}
	if ok && owner != 0 {
		q.mu.Lock()
		if q.waiterEvents == gen { // else the watch may have fired already
			q.predPath, q.predSession = p, owner
		}
		q.mu.Unlock()
	}
	return ok, nil
}

// predArmed reports whether the exists watch on the waiter p, set on
// session, has not fired yet.
func (q *Queue) predArmed(p string, session int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.predPath == p && q.predSession == session
}

// leave deletes w's znode, so that the waiter behind it moves up (and
// becomes first, watching items/, if w was). It does not wait for an
// unreachable ZooKeeper: the session deletes the znode once connected, or
// takes it along when it ends.
func (q *Queue) leave(w *waiter) {
	if w.path == "" || w.session != q.s.ID() {
		return // none, or gone with its session
	}
	if !q.s.Connected() {
		q.s.DeleteWhenConnected(w.path)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.s.RequestTimeout())
	defer cancel()
	p := w.path
	err := q.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		return zkutil.Delete(c, p, -1)
	})
	if err != nil {
		q.log.Debug("leaving the line: the session deletes the waiter once connected", "path", p, "err", err)
		q.s.DeleteWhenConnected(p)
	}
}
