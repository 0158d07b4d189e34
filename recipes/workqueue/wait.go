package workqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
// its place: first, or behind a waiter whose data watch is armed. It
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
		line = slices.DeleteFunc(line, q.isJunkWaiter) // passed over: see watchPred
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
		state, err := q.watchPred(ctx, pred)
		if err != nil {
			return err
		}
		if state == predWaiting {
			w.pred = pred
			return nil
		}
		// The one before left meanwhile, or is no waiter: look again.
	}
}

// testHookBeforeJoin, when a test sets it, runs before a waiter's create.
var testHookBeforeJoin func()

// testHookBeforeWatchPred, when a test sets it, runs before a waiter sets
// its watch on the waiter before it, pred.
var testHookBeforeWatchPred func(pred string)

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
			case err == nil || zkutil.IsTransient(err):
				// Made on a session that replaced the one it was sent
				// on (created is then ""), or unknown.
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
			if err == nil || zkutil.IsTransient(err) {
				// The outcome is unknown: a waiter this join gives up
				// on would head the line, unwatched, for the session's
				// life. (A create the server refused made nothing; one
				// Do stopped waiting for is late's.)
				q.removeLateWaiter(token)
			}
			if err == nil {
				err = errors.New("the session changed during the create")
			}
			return fmt.Errorf("join the line: %w", err)
		}
		// Unknown outcome: is there a waiter of ours with the token?
		if found, owner, err := q.findWaiter(ctx, token); err != nil {
			// Still unknown (ZooKeeper out of reach for longer than
			// the RequestTimeout of a Take whose ctx has no deadline):
			// as above.
			q.removeLateWaiter(token)
			return fmt.Errorf("join the line: %w", err)
		} else if found != "" && owner == q.s.ID() {
			*w = waiter{path: q.waiters + "/" + found, session: owner}
			return nil
		}
	}
}

// removeLateWaiter deletes the waiter named with token if the current
// session owns it: the create of a join given up, whose outcome is
// unknown. ZooKeeper may be out of reach for a while (that is how the
// outcome came to be unknown): it tries until it knows, and the waiter is
// deleted, or the session ends (and takes the waiter along) or is closed.
// The goroutine is the session's.
func (q *Queue) removeLateWaiter(token string) {
	session := q.s.ID()
	if session == 0 {
		return // no session: what the create made went with the last one
	}
	go func() {
		for attempt := 0; ; attempt++ {
			if q.s.ID() != session {
				return // gone with its session
			}
			ctx, cancel := context.WithTimeout(context.Background(), q.s.RequestTimeout())
			found, owner, err := q.findWaiter(ctx, token)
			cancel()
			switch {
			case err == nil:
				if found != "" && owner == session {
					q.s.DeleteWhenConnected(q.waiters + "/" + found)
				}
				return
			case errors.Is(err, cluster.ErrClosed):
				return
			}
			q.log.Debug("looking for a waiter whose create was given up; trying again", "token", token, "err", err)
			t := time.NewTimer(backoff(attempt))
			select {
			case <-q.s.Done():
				t.Stop()
				return
			case <-t.C:
			}
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

// predState is what watchPred found before a waiter.
type predState int

const (
	predGone    predState = iota // it left: the line moved
	predWaiting                  // a waiter, watched
	predJunk                     // no waiter (see isWaiter): passed over
)

// watchPred sets a data watch on the waiter p, the one before this
// handle's, unless one is armed, and reports what p is. At most one such
// watch per handle is recorded (a handle has one waiting Take at a time),
// and one is set again only after it fired: go-zookeeper keeps a channel
// for every watch until it fires. A data watch, not an exists watch: on a
// waiter that has just left, exists would watch for a creation that never
// comes (the name had a sequence number), and that watch and its channel
// would stay for the session's life, one each time the line moved under a
// waiter; a read of a znode that is gone sets none.
//
// A znode under waiters/ that no Take of this recipe made (persistent,
// whose data is not a Waiter, or that this session may not read: our
// waiters are readable by all) is junk, remembered and passed over: at
// the head of the line it would keep every waiter behind it from ever
// being first, and items put would wait for good. (Its watch stays until
// it changes: one per junk znode.)
func (q *Queue) watchPred(ctx context.Context, p string) (predState, error) {
	session := q.s.ID()
	q.mu.Lock()
	armed := q.predPath == p && q.predSession == session
	gen := q.waiterEvents
	q.mu.Unlock()
	if armed {
		return predWaiting, nil
	}
	if testHookBeforeWatchPred != nil {
		testHookBeforeWatchPred(p)
	}
	var (
		data  []byte
		stat  *zk.Stat
		owner int64
	)
	err := q.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		before := c.SessionID()
		var err error
		data, stat, _, err = c.GetW(p)
		if c.SessionID() == before {
			owner = before
		}
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return predGone, nil
	case errors.Is(err, zk.ErrNoAuth):
		q.junkWaiter(p, "this session may not read it")
		return predJunk, nil
	case err != nil:
		return predGone, err
	}
	if why := isWaiter(data, stat); why != "" {
		q.junkWaiter(p, why)
		return predJunk, nil
	}
	if owner != 0 {
		q.mu.Lock()
		if q.waiterEvents == gen { // else the watch may have fired already
			q.predPath, q.predSession = p, owner
		}
		q.mu.Unlock()
	}
	return predWaiting, nil
}

// isWaiter returns why a znode under waiters/ is not a waiter, "" if it is
// one: ephemeral, with a Waiter record.
func isWaiter(data []byte, stat *zk.Stat) string {
	if stat.EphemeralOwner == 0 {
		return "it is persistent"
	}
	rec := &workqueuev1.Waiter{}
	if err := proto.Unmarshal(data, rec); err != nil || rec.Taker == "" || rec.Since == nil {
		return "its data is not a Waiter"
	}
	return ""
}

// junkWaiter remembers, and logs once, a znode under waiters/ that is not
// a waiter.
func (q *Queue) junkWaiter(p, why string) {
	if q.firstTime(q.junk, p[strings.LastIndexByte(p, '/')+1:]) {
		q.log.Warn("passing over a znode in the line of waiters", "path", p, "why", why)
	}
}

func (q *Queue) isJunkWaiter(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.junk[name]
}

// predArmed reports whether the data watch on the waiter p, set on
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
