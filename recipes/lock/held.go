package lock

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	lockv1 "github.com/zkactor/zkactor/proto/recipes/lock/v1"
)

// Why a lock was lost, in Held.Err and LockLost.Reason.
const (
	reasonLease   = "lease"   // the session's lease ran out: it can no longer be vouched for
	reasonExpired = "expired" // ZooKeeper expired the session
	reasonDeleted = "deleted" // someone else deleted the lock's znode
	reasonClosed  = "closed"  // the Session was closed
)

// Held is one tenure of a lock: from a Lock or TryLock that returned it
// until Unlock, or until the lock is lost (Lost is closed then).
type Held struct {
	m       *Mutex
	path    string
	session int64
	token   int64
	release func() // of the lease

	lost       chan struct{}
	unlock     chan struct{}
	unlockOnce sync.Once
	done       chan struct{} // the monitor has returned
	released   chan struct{} // the first Unlock's delete is over

	mu        sync.Mutex
	err       error
	reason    string // of the loss
	unlocked  bool
	unlockErr error       // the first Unlock's outcome, once released is closed
	ended     bool        // lost or unlocked: no more followers
	follows   []*follower // actors tied to the lock
}

func newHeld(m *Mutex, w *waiter, release func()) *Held {
	h := &Held{
		m: m, path: w.path, session: w.session, token: w.token, release: release,
		lost: make(chan struct{}), unlock: make(chan struct{}), done: make(chan struct{}),
		released: make(chan struct{}),
	}
	go h.monitor(w.own)
	return h
}

// Token is the fencing token of this tenure: the creation zxid of the
// lock's znode. Tenures of a lock follow queue order, which is creation
// order, so tokens only grow: a resource that remembers the highest token
// it has seen can refuse a holder that lost the lock without knowing it yet.
func (h *Held) Token() int64 { return h.token }

// Path is the lock's znode for this tenure. A ZooKeeper write that must not
// outlive the tenure can be fenced with it: a multi that checks this path
// (any version) fails once the lock is released or lost there.
func (h *Held) Path() string { return h.path }

// Lost is closed when the lock is lost: the session's lease ran out (a
// partition, a pause, slow replies: ZooKeeper may expire the session and
// let another lock), the session expired or was closed, or someone deleted
// the znode. It is never closed after Unlock.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is nil while the lock is held or after Unlock, and after a loss an
// error wrapping ErrLost that says why.
//
// Err is the check to make right before acting as the holder: it reads the
// session's lease on the monotonic clock, so it reports the loss the
// instant the lease runs out, also in a process that was frozen (SIGSTOP,
// a VM pause) and has just been thawed, when Lost may not be closed yet
// (the goroutine that closes it wakes with the process, in any order). A
// holder that acts only when Err is nil acts as a global does under its
// lease guard.
func (h *Held) Err() error {
	h.mu.Lock()
	err, unlocked := h.err, h.unlocked
	h.mu.Unlock()
	if err != nil || unlocked {
		return err
	}
	if !time.Now().Before(h.m.s.SafeUntilFor(h.session)) {
		return fmt.Errorf("lock %q: %w: the session's lease ran out: ZooKeeper may expire it", h.m.name, ErrLost)
	}
	return nil
}

// Unlock releases the lock: the znode is deleted, so that the next waiter
// takes over at once. It is idempotent, and returns nil after a loss (the
// znode was given up then). If ZooKeeper cannot be reached within ctx, it
// returns an error and the session deletes the znode as soon as it can;
// the lock counts as released either way. An Unlock while another is under
// way (an actor's Follow and the caller, say) waits for that one's outcome
// within its own ctx.
func (h *Held) Unlock(ctx context.Context) error {
	h.unlockOnce.Do(func() { close(h.unlock) })
	<-h.done
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return nil
	}
	if h.unlocked {
		h.mu.Unlock()
		// Not nil at once: the znode may still be there, and ZooKeeper
		// unreachable.
		select {
		case <-h.released:
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.unlockErr
		case <-ctx.Done():
			return fmt.Errorf("unlock %q: %w", h.m.name, context.Cause(ctx))
		}
	}
	h.unlocked = true
	h.mu.Unlock()
	h.end(nil)
	s := h.m.s
	p := h.path
	err := s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		return zkutil.Delete(conn, p, -1)
	})
	h.release()
	if err != nil {
		s.DeleteWhenConnected(p)
		err = fmt.Errorf("unlock %q: %w", h.m.name, err)
	} else {
		h.m.log.Debug("unlocked", "path", p, "token", h.token)
	}
	h.mu.Lock()
	h.unlockErr = err
	h.mu.Unlock()
	close(h.released)
	return err
}

// monitor watches the tenure until Unlock or a loss: the lease on the
// monotonic clock (no request), the znode's watch, the session's end.
func (h *Held) monitor(own <-chan zk.Event) {
	defer close(h.done)
	s := h.m.s
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		until := s.SafeUntilFor(h.session)
		if !time.Now().Before(until) {
			h.lose(reasonLease, "the session's lease ran out: ZooKeeper may expire it")
			return
		}
		if own == nil {
			// The watch fired without a delete (the data changed, say):
			// arm it again, waiting no longer than the lease.
			var gone bool
			own, gone = h.rewatch(until)
			if gone {
				h.lose(reasonDeleted, "the lock's znode is gone")
				return
			}
		}
		wait := time.Until(until) + time.Millisecond
		if own == nil && wait > backoff {
			wait = backoff // the watch could not be armed: try again soon
		}
		timer.Reset(wait)
		select {
		case <-h.unlock:
			return
		case <-s.Done():
			h.lose(reasonClosed, "the session was closed")
			return
		case ev := <-own:
			own = nil
			switch {
			case ev.Type == zk.EventNodeDeleted:
				h.lose(reasonDeleted, "the lock's znode was deleted by someone else")
				return
			case ev.Type == zk.EventNotWatching && ev.Err == zk.ErrSessionExpired:
				h.lose(reasonExpired, "the session expired")
				return
			case ev.Type == zk.EventNotWatching:
				h.lose(reasonClosed, "the session was closed")
				return
			}
		case <-timer.C:
		}
	}
}

// rewatch arms the watch on the znode again, waiting no longer than until.
// A failure leaves it unarmed (nil): the lease decides then.
func (h *Held) rewatch(until time.Time) (<-chan zk.Event, bool) {
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	go func() {
		select {
		case <-h.unlock:
			cancel()
		case <-ctx.Done():
		}
	}()
	var (
		found bool
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	p := h.path
	err := h.m.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, watch, err = conn.ExistsW(p)
		return err
	})
	switch {
	case err != nil:
		return nil, false
	case !found || stat.EphemeralOwner != h.session:
		return nil, true
	}
	return watch, false
}

// lose ends the tenure: Lost closes first, then the znode is handed to the
// session to delete (it may still head the queue, on a session that
// survives), and the actors tied to the lock are told.
func (h *Held) lose(reason, why string) {
	h.mu.Lock()
	h.err = fmt.Errorf("lock %q: %w: %s", h.m.name, ErrLost, why)
	h.reason = reason
	h.mu.Unlock()
	close(h.lost)
	h.m.log.Warn("lock lost", "why", why, "path", h.path, "token", h.token)
	h.release()
	if reason != reasonDeleted {
		h.m.s.DeleteWhenConnected(h.path)
	}
	h.end(&lockv1.LockLost{Name: h.m.name, Token: h.token, Reason: reason})
}

// end stops the followers of the tenure, telling them of a loss.
func (h *Held) end(lost *lockv1.LockLost) {
	h.mu.Lock()
	fs := h.follows
	h.follows, h.ended = nil, true
	h.mu.Unlock()
	for _, f := range fs {
		f.stop(lost)
	}
}

// Follow ties the lock to an actor: pid receives a *lockv1.LockLost if the
// lock is lost, and the lock is released when the actor stops. Following a
// tenure that has ended already sends the LockLost at once (after a loss)
// or does nothing (after Unlock). With a nil system or pid there is no
// actor to follow: Follow logs that and does nothing.
func (h *Held) Follow(system *actor.ActorSystem, pid *actor.PID) {
	if system == nil || pid == nil {
		// Not later, from the monitor's goroutine: a LockLost sent to a
		// nil PID would crash the process when the lock is lost.
		h.m.log.Warn("Follow with a nil actor system or PID: ignored", "path", h.path)
		return
	}
	f := &follower{system: system, pid: pid}
	f.start(h)
	h.mu.Lock()
	if h.ended {
		err, reason := h.err, h.reason
		h.mu.Unlock()
		var lost *lockv1.LockLost
		if err != nil {
			lost = &lockv1.LockLost{Name: h.m.name, Token: h.token, Reason: reason}
		}
		f.stop(lost)
		return
	}
	h.follows = append(h.follows, f)
	h.mu.Unlock()
}

// follower is an actor watching the holder actor for one tenure.
type follower struct {
	system *actor.ActorSystem
	pid    *actor.PID // the holder
	self   *actor.PID // the watcher
}

func (f *follower) start(h *Held) {
	f.self = f.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(f.pid)
		case *actor.Terminated:
			if m.Who.Equal(f.pid) {
				c.Stop(c.Self())
				// Unlock waits on ZooKeeper: not in Receive.
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), h.m.s.RequestTimeout())
					defer cancel()
					if err := h.Unlock(ctx); err != nil {
						h.m.log.Warn("releasing the lock of a stopped actor", "err", err)
					}
				}()
			}
		}
	}))
}

func (f *follower) stop(lost *lockv1.LockLost) {
	if lost != nil {
		f.system.Root.Send(f.pid, lost)
	}
	f.system.Root.Stop(f.self)
}
