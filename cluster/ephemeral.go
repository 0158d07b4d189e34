package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/internal/zkwatch"
)

// keeper keeps a set of ephemeral znodes in ZooKeeper for as long as this
// process wants them, across disconnects and session expiries. It is the
// one place that creates and deletes the fixed-path ephemerals of a node:
// its node znode and its registrations.
//
// Each path is in one of two local sets:
//   - wanted: it should exist, with this data, owned by our session;
//   - doomed: it must not exist (a delete failed, or a create's outcome was
//     unknown when its caller gave up); it is deleted when connected.
//
// A background goroutine reconciles ZooKeeper with these sets after every
// (re)connection: on a new session it re-creates every wanted znode. One
// of ours deleted by someone else (an operator, a cleanup script) is
// re-created too: the follower (follow.go) watches the directories of the
// wanted znodes on a connection of its own and reports a znode it suspects
// gone, and the keeper confirms that on its session before it acts.
// Operations on one path are serialised by a per-path lock, so a create and
// a delete of the same path never cross on the wire.
type keeper struct {
	s    *Session
	root string

	mu      sync.Mutex
	wanted  map[string][]byte
	byDir   map[string]map[string]struct{} // wanted paths by parent directory
	created map[string]int64               // path → session that confirmed it
	doomed  map[string]struct{}
	// suspects: wanted znodes the follower could not find as ours; the
	// loop asks the session whether they exist (confirm).
	suspects map[string]struct{}
	locks    map[string]*pathLock

	f         *follower
	kick      chan struct{}
	stop      func()        // stops session notifications
	stopWatch func()        // stops watch events
	quit      chan struct{} // closed by close
	done      chan struct{} // closed when loop has returned
}

type pathLock struct {
	mu   sync.Mutex
	refs int
}

// testFollowerServers, when a test sets it, is where followers connect.
var testFollowerServers []string

// newKeeper starts a keeper and its follower's connection (see follower).
func newKeeper(s *Session, root string) (*keeper, error) {
	cfg := s.Config()
	digest := ""
	if a := cfg.Auth; a != nil {
		digest = a.User + ":" + a.Password
	}
	if testFollowerServers != nil {
		cfg.Servers = testFollowerServers
	}
	conn, err := zkwatch.Dial(zkwatch.Config{Servers: cfg.Servers, SessionTimeout: s.Timeout(), Digest: digest, Logger: s.log,
		Events: suspicious})
	if err != nil {
		return nil, err
	}
	k := &keeper{
		s:        s,
		root:     root,
		wanted:   map[string][]byte{},
		byDir:    map[string]map[string]struct{}{},
		created:  map[string]int64{},
		doomed:   map[string]struct{}{},
		suspects: map[string]struct{}{},
		locks:    map[string]*pathLock{},
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	k.f = newFollower(k, conn)
	k.stop = s.Notify(func(ev Event) {
		if ev.Kind == Connected {
			k.wake()
		}
	})
	// The session's own watches (a lookup's, say) are exact: its events
	// come in order with its replies.
	k.stopWatch = s.OnWatchEvent(func(ev zk.Event) {
		if ev.Type == zk.EventNodeDeleted {
			k.missing(ev.Path, 0)
		}
	})
	go k.loop()
	return k, nil
}

// missing notes that path, if kept, no longer exists for its session (or
// for the given one, when not 0): the reconciler re-creates it.
func (k *keeper) missing(path string, session int64) {
	k.mu.Lock()
	_, wanted := k.wanted[path]
	gone := wanted && k.created[path] != 0 && (session == 0 || k.created[path] == session)
	if gone {
		k.created[path] = 0
	}
	k.mu.Unlock()
	if gone {
		k.s.log.Info("a kept ephemeral znode was deleted by someone else: re-creating it", "path", path)
		k.wake()
	}
}

// suspect notes that path, if kept, may be gone or overwritten: the loop
// asks the session (confirm). A path whose create is still on the wire is
// suspect too: the event may be of a delete that came before the create's
// reply (confirm waits for the create, under the path's lock).
func (k *keeper) suspect(path string) { k.suspectUnlessOwned(path, 0) }

// suspectUnlessOwned is suspect, unless session owner (not 0) is the one
// that confirmed path.
func (k *keeper) suspectUnlessOwned(path string, owner int64) {
	k.mu.Lock()
	_, wanted := k.wanted[path]
	on := k.created[path]
	suspect := wanted && (on == 0 || on != owner)
	if suspect {
		k.suspects[path] = struct{}{}
	}
	k.mu.Unlock()
	if suspect {
		k.wake()
	}
}

func parentDir(path string) string { return path[:strings.LastIndexByte(path, '/')] }

// want adds path to the wanted set, and to its directory's index (so that
// a directory's check costs what is ours in it, not everything kept).
// Under k.mu.
func (k *keeper) want(path string, data []byte) {
	k.wanted[path] = data
	dir := parentDir(path)
	if k.byDir[dir] == nil {
		k.byDir[dir] = map[string]struct{}{}
	}
	k.byDir[dir][path] = struct{}{}
}

// unwant takes path out of the wanted set and its index. Under k.mu.
func (k *keeper) unwant(path string) {
	delete(k.wanted, path)
	dir := parentDir(path)
	if m := k.byDir[dir]; m != nil {
		delete(m, path)
		if len(m) == 0 {
			delete(k.byDir, dir)
			k.f.idle(dir)
		}
	}
	k.f.forget(path)
}

// close stops the reconciler. The znodes go with the session, or with drop.
func (k *keeper) close() {
	k.stop()
	k.stopWatch()
	close(k.quit)
	<-k.done
	k.f.close()
}

func (k *keeper) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func (k *keeper) lock(path string) (unlock func()) {
	k.mu.Lock()
	l := k.locks[path]
	if l == nil {
		l = &pathLock{}
		k.locks[path] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, path)
		}
		k.mu.Unlock()
	}
}

// keep makes path an ephemeral znode with data, owned by this session, and
// keeps it so across session expiries. It returns once ZooKeeper has it. On
// error the path is not wanted, and if a create may have happened anyway,
// it is deleted later.
func (k *keeper) keep(ctx context.Context, path string, data []byte) error {
	unlock := k.lock(path)
	defer unlock()
	return k.keepLocked(ctx, path, data)
}

// keepLocked is keep for a caller that holds path's lock.
func (k *keeper) keepLocked(ctx context.Context, path string, data []byte) error {
	k.mu.Lock()
	k.want(path, data)
	delete(k.doomed, path)
	k.mu.Unlock()

	err := k.ensure(ctx, path, data)
	if err != nil {
		k.mu.Lock()
		k.unwant(path)
		delete(k.created, path)
		if !permanent(err) {
			// The outcome is unknown (the connection dropped, or ctx ended
			// with the create on the wire): make sure it is gone. A
			// permanent error is the server's answer: nothing was created,
			// and a znode owned elsewhere is not ours to delete.
			k.doomed[path] = struct{}{}
		}
		k.mu.Unlock()
		k.wake()
	}
	return err
}

// drop deletes path and stops keeping it. If ZooKeeper cannot be reached
// within ctx, the delete is retried in the background and drop returns the
// error; the znode goes at the latest with the session.
func (k *keeper) drop(ctx context.Context, path string) error {
	unlock := k.lock(path)
	defer unlock()
	return k.dropLocked(ctx, path)
}

// dropLocked is drop for a caller that holds path's lock.
func (k *keeper) dropLocked(ctx context.Context, path string) error {
	k.mu.Lock()
	k.unwant(path)
	delete(k.created, path)
	k.doomed[path] = struct{}{}
	k.mu.Unlock()
	err := k.remove(ctx, path)
	if err != nil {
		k.wake()
	}
	return err
}

// dropLater stops keeping path and deletes it in the background. Callers
// that hold path's lock may call it too: it takes none.
func (k *keeper) dropLater(path string) {
	k.mu.Lock()
	k.unwant(path)
	delete(k.created, path)
	k.doomed[path] = struct{}{}
	k.mu.Unlock()
	k.wake()
}

// remove deletes path if our session owns it. A znode of another session
// (a second process with this node's id, or a foreign client) is left
// alone: the path is only ever doomed for a create of ours whose outcome
// was unknown, and if it exists under another owner, that create failed.
func (k *keeper) remove(ctx context.Context, path string) error {
	err := k.s.Do(ctx, Op{Name: "delete", Path: path, Idempotent: true}, func(c *zk.Conn) error {
		ok, stat, err := c.Exists(path)
		if err != nil || !ok {
			return err
		}
		if stat.EphemeralOwner != c.SessionID() {
			k.s.log.Debug("not deleting a znode another session owns", "path", path,
				"owner", fmt.Sprintf("%#x", stat.EphemeralOwner))
			return nil
		}
		return zkutil.Delete(c, path, stat.Version)
	})
	if err == nil || permanent(err) {
		k.mu.Lock()
		delete(k.doomed, path)
		k.mu.Unlock()
	}
	return err
}

// permanent reports errors that the same request would meet again: the
// server refused it (a bad path or argument, an ACL, a znode owned by
// another session). The keeper reports them and gives up on the path
// instead of retrying.
func permanent(err error) bool {
	for _, e := range []error{
		zk.ErrInvalidPath, zk.ErrBadArguments, zk.ErrNoAuth, zk.ErrInvalidACL, zk.ErrAuthFailed,
		zk.ErrNoChildrenForEphemerals, zk.ErrInvalidFlags, zk.ErrAPIError,
		ErrOwnedElsewhere, ErrBadName,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ensure creates path (and its parents) unless our session already has it.
func (k *keeper) ensure(ctx context.Context, path string, data []byte) error {
	var session int64
	late := func(err error) {
		// The caller gave up and keep() doomed the path. If the create was
		// applied after all (or may have been), make sure it is deleted
		// after this reply: requests on one connection are ordered.
		if permanent(err) {
			return // refused: nothing was created
		}
		k.mu.Lock()
		if _, wanted := k.wanted[path]; !wanted {
			k.doomed[path] = struct{}{}
		}
		k.mu.Unlock()
		k.wake()
	}
	// The path is fixed, so a retry after a lost connection is safe: it
	// finds its own znode (ErrNodeExists, owned by this session).
	op := Op{Name: "create", Path: path, Idempotent: true, late: late}
	dir := parentDir(path)
	k.mu.Lock()
	known := false // another znode of ours exists under dir: so does dir
	for p := range k.byDir[dir] {
		if p != path && k.created[p] != 0 {
			known = true
			break
		}
	}
	k.mu.Unlock()
	// The create waits for the directory's watch (follower), which is
	// usually set already; the first in a directory waits while its
	// parent is made.
	watch := k.f.watch(dir)
	var watched uint64 // the follower's connection whose watch saw the create go out; 0: none
	err := k.s.Do(ctx, op, func(c *zk.Conn) error {
		session = c.SessionID()
		// The first znode under a parent (a name's first registration
		// here) makes the parent first: two requests, not three. (A parent
		// reaped since is found missing and made again.)
		if !known {
			if err := zkutil.EnsureParent(c, k.root, path, k.s.ACL()); err != nil {
				return err
			}
		}
		waitWatch(watch)
		watched = k.f.watchedOn(dir)
		_, err := zkutil.CreateWithParents(c, k.root, path, data, zk.FlagEphemeral, k.s.ACL())
		if transient(err) {
			// The create may or may not have been applied. The path is
			// fixed, so asking settles it (ErrNodeExists below).
			return err
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		watched = 0 // made earlier, maybe with no watch in place
		got, stat, err := c.Get(path)
		if err != nil {
			return err
		}
		if stat.EphemeralOwner != c.SessionID() {
			return fmt.Errorf("%w (owner %#x, ours %#x)", ErrOwnedElsewhere, stat.EphemeralOwner, c.SessionID())
		}
		if !bytes.Equal(got, data) {
			// Changed data is a delete and a create, not a set, so that the
			// children watch of every cache fires.
			if err := c.Delete(path, stat.Version); err != nil {
				return err
			}
			_, err = zkutil.CreateWithParents(c, k.root, path, data, zk.FlagEphemeral, k.s.ACL())
			return err
		}
		return nil
	})
	if err == nil {
		k.mu.Lock()
		k.created[path] = session
		k.mu.Unlock()
		k.f.created(path, watched) // after created: see follower.watched
	}
	return err
}

// Bounds of the delay between reconcile attempts that failed while connected.
const (
	minReconcileBackoff = 50 * time.Millisecond
	maxReconcileBackoff = 2 * time.Second
)

// loop reconciles after every (re)connection and every wake.
func (k *keeper) loop() {
	defer close(k.done)
	backoff := minReconcileBackoff
	for {
		select {
		case <-k.s.Done():
			return
		case <-k.quit:
			return
		case <-k.kick:
		}
		if !k.s.Connected() {
			continue
		}
		if k.reconcile() {
			backoff = minReconcileBackoff
			continue
		}
		// Something failed while connected (e.g. a request in flight when
		// the connection dropped): try again after a backoff. Permanent
		// errors were dropped by reconcile, so this ends once ZooKeeper
		// answers.
		select {
		case <-k.s.Done():
			return
		case <-k.quit:
			return
		case <-time.After(backoff):
			backoff = min(2*backoff, maxReconcileBackoff)
			k.wake()
		}
	}
}

// settled reports whether nothing is left to do: every wanted znode was
// confirmed on the current session, none is doomed, and no directory check
// is coming.
func (k *keeper) settled() bool {
	session := k.s.ID()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.doomed) > 0 || len(k.suspects) > 0 || k.f.busy() {
		return false
	}
	for p := range k.wanted {
		if k.created[p] != session {
			return false
		}
	}
	return true
}

// reconcile re-creates wanted znodes the current session lacks and deletes
// doomed ones. It reports whether everything settled.
func (k *keeper) reconcile() bool {
	ok := k.confirm()
	session := k.s.ID()
	k.mu.Lock()
	var missing, doomed []string
	for p := range k.wanted {
		if k.created[p] != session {
			missing = append(missing, p)
		}
	}
	for p := range k.doomed {
		doomed = append(doomed, p)
	}
	k.mu.Unlock()

	for _, p := range missing {
		unlock := k.lock(p)
		k.mu.Lock()
		data, still := k.wanted[p]
		k.mu.Unlock()
		if still {
			ctx, cancel := context.WithTimeout(context.Background(), k.s.cfg.RequestTimeout)
			if err := k.ensure(ctx, p, data); permanent(err) {
				// Retrying cannot help: report it once and stop keeping it.
				k.s.log.Error("cannot re-create ephemeral znode; giving it up", "path", p, "err", err)
				k.mu.Lock()
				k.unwant(p)
				delete(k.created, p)
				k.mu.Unlock()
			} else if err != nil {
				k.s.log.Warn("re-creating ephemeral znode", "path", p, "err", err)
				ok = false
			} else {
				k.s.log.Debug("re-created ephemeral znode", "path", p)
			}
			cancel()
		}
		unlock()
	}
	for _, p := range doomed {
		unlock := k.lock(p)
		k.mu.Lock()
		_, still := k.doomed[p]
		k.mu.Unlock()
		if still {
			ctx, cancel := context.WithTimeout(context.Background(), k.s.cfg.RequestTimeout)
			if err := k.remove(ctx, p); permanent(err) {
				k.s.log.Error("cannot delete ephemeral znode; leaving it to the session's end", "path", p, "err", err)
			} else if err != nil {
				k.s.log.Warn("deleting ephemeral znode", "path", p, "err", err)
				ok = false
			}
			cancel()
		}
		unlock()
	}
	return ok
}

// confirm asks the session about each suspect (see follower): one that is
// not there as ours with our data is missing, and re-created by the
// reconcile that follows. A suspect made on an earlier session is dropped unasked: the
// reconcile makes all of those again anyway (an expiry deletes them, and
// the follower then reports every one). It reports false when a question
// went unanswered (the suspect stays).
func (k *keeper) confirm() bool {
	k.mu.Lock()
	suspects := make([]string, 0, len(k.suspects))
	for p := range k.suspects {
		suspects = append(suspects, p)
	}
	k.mu.Unlock()
	ok := true
	for _, p := range suspects {
		if !k.s.Connected() {
			return false // asked again once connected: its session may be new by then
		}
		unlock := k.lock(p)
		session := k.s.ID()
		k.mu.Lock()
		_, wanted := k.wanted[p]
		ask := wanted && session != 0 && k.created[p] == session
		if !ask {
			delete(k.suspects, p)
		}
		k.mu.Unlock()
		if ask {
			var (
				found bool
				owner int64
				on    int64
				data  []byte
			)
			ctx, cancel := context.WithTimeout(context.Background(), k.s.cfg.RequestTimeout)
			err := k.s.Do(ctx, Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
				var (
					stat *zk.Stat
					err  error
				)
				if on = c.SessionID(); on != session {
					return nil // a new session: the reconcile makes it again
				}
				data, stat, err = c.Get(p)
				if found = err == nil; errors.Is(err, zk.ErrNoNode) {
					return nil
				}
				if err != nil || stat.EphemeralOwner != on {
					return err
				}
				// There as ours, says the session's server; but it may lag
				// behind the follower's, which saw the delete. A sync makes
				// it catch up with the quorum leader first: asked again,
				// it knows of every delete the follower could have seen.
				if _, err := c.Sync(p); err != nil {
					return err
				}
				data, stat, err = c.Get(p)
				if found = err == nil; errors.Is(err, zk.ErrNoNode) {
					return nil
				}
				if found {
					owner = stat.EphemeralOwner
				}
				return err
			})
			cancel()
			if err != nil {
				ok = false
			} else {
				k.mu.Lock()
				delete(k.suspects, p)
				want, still := k.wanted[p]
				k.mu.Unlock()
				if !found || owner != on || still && !bytes.Equal(data, want) {
					// Gone, or someone else's, or overwritten: the reconcile
					// makes it again (ensure replaces ours with other data).
					k.missing(p, on)
				}
			}
		}
		unlock()
		if !ok {
			break // the session is unreachable: the loop retries after a backoff
		}
	}
	return ok
}

// waitWatch waits for a directory's watch (follower.watch), at most
// armWait. The usual case, a watched directory, costs no timer.
func waitWatch(watch <-chan struct{}) {
	select {
	case <-watch:
		return
	default:
	}
	t := time.NewTimer(armWait)
	defer t.Stop()
	select {
	case <-watch:
	case <-t.C:
	}
}
