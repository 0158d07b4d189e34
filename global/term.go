package global

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/metrics"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// term is one tenure of this node as the global.
type term struct {
	epoch    int64
	path     string // the candidate znode, for fencing (Elected.Candidate)
	session  int64  // the session that owns the candidate znode; the lease must be this one's
	pid      *actor.PID
	done     chan struct{} // closed (stopped) when the actor has stopped, see watchStop
	doneOnce sync.Once

	// ended is set once, by whoever ends the term first: the guard, endTerm,
	// or the actor stopping by itself (then selfStopped too). The actor
	// handles no message after it.
	ended       atomic.Bool
	selfStopped atomic.Bool
	announced   atomic.Bool // Elected was delivered (to the current instance of the actor)
	restarted   atomic.Bool // the actor is restarting: its next Started sends Elected again
}

// lead starts a term once this candidate heads the queue and the lease of
// its session holds: the global actor starts in place of the stand-in,
// with the candidate znode's creation zxid as the epoch. The znode is known
// to be ours and is watched since the candidacy entered (run), so leading
// costs no request. It reports false when the loop should retry after a
// backoff.
func (c *candidacy) lead() bool {
	if !time.Now().Before(c.e.s.SafeUntilFor(c.session)) {
		c.log.Debug("not leading yet: waiting for the lease", "path", c.path)
		return false
	}
	t := &term{epoch: c.epoch, path: c.path, session: c.session, done: make(chan struct{})}
	c.mu.Lock()
	props := c.props
	c.mu.Unlock()
	guarded := *props // a copy: the caller's props stay as they were
	guarded.Configure(actor.WithReceiverMiddleware(c.guard(t)))
	pid, err := c.st.start(&guarded)
	if err != nil {
		c.log.Error("starting the global actor", "err", err)
		return false
	}
	t.pid = pid
	c.watchStop(t)
	c.e.system.Root.Send(pid, &pb.Elected{Name: c.name, Epoch: t.epoch, Candidate: t.path})
	c.mu.Lock()
	c.term = t
	c.mu.Unlock()
	c.e.leaders.Evict(c.name)
	c.log.Info("elected", "pid", pid.String(), "epoch", t.epoch)
	metrics.TermStarted(c.name, t.epoch)
	return true
}

// safe reports whether the lease of the term's session holds now.
func (c *candidacy) safe(t *term) bool {
	return time.Now().Before(c.e.s.SafeUntilFor(t.session))
}

// hold waits while this node leads, connected or not. It ends the term when
// the lease runs out or the candidate znode is deleted, and returns true to
// let the loop look at the queue again; false when the candidacy ends (the
// global stopped by itself, or the candidacy was stopped). The lease is
// checked on the clock alone; the one request made here (re-arming the
// watch on the znode) gives up when the lease ends.
func (c *candidacy) hold(ctx context.Context, t *term) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if t.ended.Load() {
			// By the guard, or by the actor itself.
			return !c.endTerm(t, metrics.TermEndLease, "the guard stopped the global: the lease ran out")
		}
		if !c.safe(t) {
			return !c.endTerm(t, metrics.TermEndLease, "the lease ran out: ZooKeeper may have expired the session")
		}
		if c.own == nil {
			// The watch fired without a delete (the data changed, say):
			// look again.
			if !c.rewatch(ctx, t) {
				return false
			}
			continue
		}
		timer.Reset(time.Until(c.e.s.SafeUntilFor(t.session)) + time.Millisecond)
		select {
		case <-ctx.Done():
			return false
		case <-c.e.s.Done(): // the session is given up: its lease with it
		case <-t.done:
		case ev := <-c.own:
			c.own = nil
			if ev.Type == zk.EventNodeDeleted {
				c.path = ""
				return !c.endTerm(t, metrics.TermEndZnodeGone, "the candidate znode was deleted by someone else")
			}
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// rewatch re-arms the watch on the candidate znode while leading, waiting
// no longer than the lease. It reports false when the candidacy ends.
func (c *candidacy) rewatch(ctx context.Context, t *term) bool {
	ctx, cancel := context.WithDeadline(ctx, c.e.s.SafeUntilFor(t.session))
	defer cancel()
	var (
		found bool
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err := c.e.s.Do(ctx, cluster.Op{Name: "exists", Path: c.path, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, watch, err = conn.ExistsW(c.path)
		return err
	})
	switch {
	case err != nil:
		return c.sleep(ctx, backoff) || ctx.Err() == context.DeadlineExceeded
	case !found || stat.EphemeralOwner != t.session || stat.Czxid != t.epoch:
		// Czxid: a tenure's path is shared (rolematch), and the same
		// session may have created it again after a delete whose event
		// this watch never saw (it fired once, for an earlier change).
		c.path = ""
		return !c.endTerm(t, metrics.TermEndZnodeGone, "the candidate znode is gone")
	default:
		c.own = watch
	}
	return true
}

// guard is the global actor's receiver middleware: the term's epoch is
// delivered first (again after a restart: the new instance must learn it
// too), and no message is handled once the lease of the term's
// session has run out (after a partition or a pause); the actor is stopped
// then, and the messages it did not handle go back to the stand-in for the
// next term. It also tells a stop of the actor's own (the candidacy ends)
// from one the candidacy made.
func (c *candidacy) guard(t *term) actor.ReceiverMiddleware {
	elected := &pb.Elected{Name: c.name, Epoch: t.epoch, Candidate: t.path}
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch m := env.Message.(type) {
			case *actor.Stopping:
				// The actor stops. (Its end is learned from watchStop, not
				// from Stopped: protoactor's lifecycle messages are empty
				// structs, so one that somebody sent as an ordinary message
				// cannot be told from the real one. A sent Stopping ends
				// the term, and the actor with it; a sent Stopped ends
				// nothing.)
				if t.ended.CompareAndSwap(false, true) {
					t.selfStopped.Store(true)
				}
				c.survive(next, ctx, env)
				return
			case *actor.Stopped:
				c.survive(next, ctx, env)
				return
			case *actor.Restarting:
				// A panic restarts the actor under the same term: the new
				// instance learns the epoch first, as the first one did.
				t.announced.Store(false)
				t.restarted.Store(true)
				next(ctx, env)
				return
			case *actor.Started:
				next(ctx, env)
				if t.restarted.Swap(false) {
					// Through the mailbox, as lead sent the first: a stop
					// asked for in Started goes first, and the term then
					// announces nothing.
					if proc, ok := ctx.ActorSystem().ProcessRegistry.Get(ctx.Self()); ok {
						if ap, live := proc.(*actor.ActorProcess); live {
							ap.SendUserMessage(ctx.Self(), elected)
						}
					}
				}
				return
			case *actor.PoisonPill:
				next(ctx, env)
				return
			case *pb.Elected:
				if m == elected || proto.Equal(m, elected) {
					// The term's own: handled once, and only while the term
					// holds (a term over before it began announces nothing).
					if !t.ended.Load() && c.safe(t) && !t.announced.Swap(true) {
						next(ctx, env)
					}
					return
				}
			}
			if t.ended.Load() {
				c.st.requeue(env)
				return
			}
			if !c.safe(t) {
				if t.ended.CompareAndSwap(false, true) {
					// endTerm stops the actor once the stand-in has its
					// place, so that nothing sent meanwhile is lost.
					c.log.Warn("the global stops: its lease ran out", "epoch", t.epoch)
					metrics.GuardStop()
					c.wakeUp()
				}
				c.st.requeue(env)
				return
			}
			if !t.announced.Swap(true) {
				next(ctx, &actor.MessageEnvelope{Message: elected})
			}
			next(ctx, env)
		}
	}
}

// stopped closes done: the actor has stopped.
func (t *term) stopped(c *candidacy) {
	t.doneOnce.Do(func() { close(t.done) })
	c.wakeUp()
}

// watchStop learns of the end of the term's actor (whatever its receiver
// middlewares do with Stopped): a watcher's Watch goes straight to the
// actor's process. Never through the PID: while detach swaps the stand-in
// in, the registry holds nothing under it, and protoactor's dead letters
// answer a Watch with a Terminated although the actor still runs (CI saw a
// term end that way while its actor ran on).
func (c *candidacy) watchStop(t *term) {
	proc, ok := c.e.system.ProcessRegistry.Get(t.pid)
	if _, live := proc.(*actor.ActorProcess); !ok || !live {
		// Already gone from the registry: it stopped (during Started, say;
		// its Stopping went through the guard).
		t.stopped(c)
		return
	}
	c.e.system.Root.Spawn(actor.PropsFromFunc(func(ac actor.Context) {
		switch m := ac.Message().(type) {
		case *actor.Started:
			proc.SendSystemMessage(t.pid, &actor.Watch{Watcher: ac.Self()})
		case *actor.Terminated:
			if m.Who.Equal(t.pid) {
				// Ended by nobody's request: it stopped by itself (its
				// Stopping was kept from the guard).
				if t.ended.CompareAndSwap(false, true) {
					t.selfStopped.Store(true)
				}
				t.stopped(c)
				ac.Stop(ac.Self())
			}
		}
	}))
}

// survive hands a lifecycle message of a stopping actor to the actor,
// recovering a panic of its handler: protoactor would escalate it and
// never finish the stop, and the term (and with it the name) would be
// wedged for good.
func (c *candidacy) survive(next actor.ReceiverFunc, ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("the global panicked while stopping; its stop goes on", "message", fmt.Sprintf("%T", env.Message), "panic", r)
		}
	}()
	next(ctx, env)
}

// endTerm is the one way a term ends, whoever ended it: the actor handles
// no message after it (the guard hands them back to the stand-in, for the
// next term), it is stopped once its mailbox has passed through, and the
// cache entry goes. It reports whether the actor stopped by itself, which
// ends the candidacy; RegisterCandidate no longer reuses the candidacy from
// that moment. reason is why for the metrics, unless the actor stopped by
// itself.
func (c *candidacy) endTerm(t *term, reason metrics.TermEnd, why string) (selfStopped bool) {
	if t.ended.CompareAndSwap(false, true) {
		c.log.Warn("stepping down", "why", why, "epoch", t.epoch)
	}
	if proc := c.st.detach(); proc != nil && !isClosed(t.done) {
		// Straight to the actor's process: the PID now names the stand-in.
		// The pill queues behind what the mailbox holds, which passes
		// through the guard back to the stand-in.
		proc.SendUserMessage(t.pid, &actor.PoisonPill{})
	}
	<-t.done
	self := t.selfStopped.Load()
	if self {
		reason = metrics.TermEndStopped
	}
	metrics.TermEnded(c.name, t.epoch, reason)
	c.mu.Lock()
	c.term = nil
	c.closing = c.closing || self
	c.mu.Unlock()
	c.st.reinstall()
	c.e.leaders.Evict(c.name)
	if self {
		c.log.Info("the global stopped: ending the candidacy", "epoch", t.epoch)
	}
	return self
}
