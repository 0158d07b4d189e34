package global

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/metrics"
)

// Tenure runs one actor under the guard of a global's term, for an
// ephemeral znode that another recipe won by a rule of its own (package
// recipes/rolematch: the first to create a role's assignment holds it).
// It is a term without the queue: the actor starts under a PID fixed before
// the znode exists, receives *zkactorv1.Elected{Name, Epoch, Candidate} first
// (the epoch is the znode's creation zxid, Candidate its path), handles no
// message once the session's lease has run out, and stops when the znode is
// deleted by someone else or goes with its session. A lease that runs out
// while the session survives stops the actor; if the znode is still the
// session's when the lease holds again, a new actor starts with the same
// epoch, as a global's term resumes. The znode is the one of that creation
// zxid: one created again at the path, even by the same session, is not the
// tenure's (it ends as lost).
//
// The tenure ends (Done) when its actor stops by itself (SelfStopped), when
// the znode is gone (Lost), on Stop, or when the Elections close; it deletes
// the znode it still owns then, after the actor has stopped, or hands it to
// cluster.Session.DeleteWhenConnected when ZooKeeper cannot be reached.
type Tenure struct {
	c          *candidacy
	life       context.Context
	stop       context.CancelFunc
	stopNotify func()
	started    atomic.Bool
	lost       atomic.Bool
	finishOnce sync.Once
	done       chan struct{}

	epoch int64 // the znode's creation zxid, once read (owned by run)
}

// NewTenure installs a stand-in under a new PID whose id starts with
// idPrefix: messages sent to the PID wait there until the actor runs.
// name labels the tenure's logs and metrics. The tenure holds the session's
// lease until it ends. Start it with the znode once it exists, or Stop it.
func (e *Elections) NewTenure(name, idPrefix string) (*Tenure, error) {
	id := strings.ReplaceAll(idPrefix, " ", "_") + "-" + randomHex(6)
	pid := actor.NewPID(e.system.Address(), id)
	c := &candidacy{
		e: e, name: name, pid: pid,
		st:   newStaging(e.system, pid, e.log.With("tenure", name)),
		log:  e.log.With("tenure", name),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("zkactor: tenure %q: %w", name, cluster.ErrClosed)
	}
	if !c.st.install() {
		return nil, fmt.Errorf("zkactor: tenure %q: process id %s is taken", name, id)
	}
	t := &Tenure{c: c, done: make(chan struct{})}
	t.life, t.stop = context.WithCancel(e.life)
	c.releaseLease = e.s.HoldLease()
	// Session events wake the tenure (it is no candidacy of the table).
	t.stopNotify = e.s.Notify(func(cluster.Event) { c.wakeUp() })
	e.wg.Add(1)
	// Close waits for every tenure (wg): one not started yet, whose
	// creator may wait for ZooKeeper for a while, ends with the Elections
	// instead, and Start then does nothing.
	context.AfterFunc(t.life, func() {
		if t.started.CompareAndSwap(false, true) {
			t.finish()
		}
	})
	return t, nil
}

// Closed is closed once Close has ended the Elections' candidacies: every
// tenure ends then, and NewTenure refuses new ones. A recipe whose actors
// run as tenures (rolematch) ends what waits to start them.
func (e *Elections) Closed() <-chan struct{} { return e.life.Done() }

// PID is the PID the tenure's actor runs under.
func (t *Tenure) PID() *actor.PID { return t.c.pid }

// Start takes over path, an ephemeral znode that session owns, and runs
// props under the PID for as long as the znode is the session's and its
// lease holds (see Tenure). It returns at once; a second call does nothing,
// and so does a call once the tenure has ended unstarted (Stop, or the
// Elections closed): Done is closed then, and the znode is the caller's to
// delete.
func (t *Tenure) Start(path string, session int64, props *actor.Props) {
	if !t.started.CompareAndSwap(false, true) {
		return
	}
	t.c.props, t.c.path, t.c.session = props, path, session
	go t.run()
}

// Stop ends the tenure: its actor stops, then the znode is deleted. It does
// not wait: see Done.
func (t *Tenure) Stop() {
	t.stop()
	if t.started.CompareAndSwap(false, true) {
		t.finish() // never started: only the stand-in and the lease to give back
	}
}

// Done is closed once the tenure has ended: its actor has stopped and its
// znode is deleted (or handed to the session's reaper).
func (t *Tenure) Done() <-chan struct{} { return t.done }

// Lost reports, once Done, that the tenure ended because its znode was
// deleted by someone else or went with its session.
func (t *Tenure) Lost() bool { return t.lost.Load() }

// SelfStopped reports, once Done, that the tenure ended because its actor
// stopped by itself.
func (t *Tenure) SelfStopped() bool {
	select {
	case <-t.done:
	default:
		return false
	}
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.closing // set by endTerm when the actor stopped by itself
}

// Epoch returns the epoch of the running actor, and false while none runs.
func (t *Tenure) Epoch() (int64, bool) {
	if term := t.c.currentTerm(); term != nil && !term.ended.Load() {
		return term.epoch, true
	}
	return 0, false
}

// run is the tenure's loop: confirm and watch the znode, wait for the
// lease, run the actor (hold), and look again when a term ends.
func (t *Tenure) run() {
	c := t.c
	defer t.finish()
	ctx := t.life
	for ctx.Err() == nil {
		s := c.e.s
		if term := c.currentTerm(); term != nil {
			if !c.hold(ctx, term) {
				return
			}
			continue
		}
		if c.path == "" {
			t.lost.Store(true)
			return
		}
		if id := s.ID(); id != 0 && id != c.session {
			c.log.Info("the session of the znode ended: the tenure is over", "path", c.path)
			c.path = ""
			t.lost.Store(true)
			return
		}
		if !s.Connected() {
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if c.own == nil {
			gone, err := c.watchOwn(ctx)
			if err != nil {
				if !c.sleep(ctx, backoff) {
					return
				}
				continue
			}
			if !gone && t.epoch != 0 && c.epoch != t.epoch {
				// Created again by the same session (the path is shared:
				// another application on this node took the role after a
				// delete whose event the watch did not carry): not ours.
				c.log.Info("the znode was replaced: the tenure is over", "path", c.path)
				gone = true
			}
			if gone {
				c.path = ""
				continue
			}
			t.epoch = c.epoch
		}
		ready, alive := c.readyToLead(ctx)
		if !alive {
			return
		}
		if !ready {
			continue
		}
		if !c.lead() && !c.sleep(ctx, backoff) {
			return
		}
	}
}

// finish stops the actor, gives the lease back, deletes the znode if it is
// still the session's, and takes the stand-in out of the registry.
func (t *Tenure) finish() {
	t.finishOnce.Do(func() {
		c := t.c
		defer c.e.wg.Done()
		if term := c.currentTerm(); term != nil {
			c.endTerm(term, metrics.TermEndResigned, "the tenure ended")
		}
		t.stopNotify()
		c.releaseLease()
		if c.path != "" {
			ctx, cancel := c.e.lastCtx()
			err := t.deleteOwn(ctx)
			cancel()
			if err != nil {
				c.log.Warn("deleting the tenure's znode once connected (it goes with the session at the latest)", "path", c.path, "err", err)
				c.e.s.DeleteWhenConnected(c.path)
			}
		}
		c.st.remove()
		t.stop() // t.life is a child of the Elections': let it go
		close(t.done)
	})
}

// deleteOwn deletes the tenure's znode if it is still the one the session
// created: its path is shared with whoever takes over next, so a znode of
// another session, or one created after ours, is left alone.
func (t *Tenure) deleteOwn(ctx context.Context) error {
	c := t.c
	s := c.e.s
	if !s.Connected() {
		return cluster.ErrNotConnected
	}
	return s.Do(ctx, cluster.Op{Name: "delete", Path: c.path, Idempotent: true}, func(conn *zk.Conn) error {
		ok, stat, err := conn.Exists(c.path)
		if err != nil || !ok || stat.EphemeralOwner != c.session || c.epoch != 0 && stat.Czxid != c.epoch {
			return err
		}
		err = conn.Delete(c.path, stat.Version)
		if err == zk.ErrNoNode || err == zk.ErrBadVersion {
			return nil // gone, or replaced meanwhile: not ours any more
		}
		return err
	})
}
