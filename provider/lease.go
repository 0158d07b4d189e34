package provider

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
)

// An activation runs only while its member can vouch for the session that
// owns its znode: until Session.SafeUntilFor(session), the moment until
// which the quorum leader certainly counts that session alive (see
// cluster/lease.go and package global's documentation for the argument).
// Another member can create the znode only once that session has expired,
// which is later. Two things enforce it:
//
//   - guard, a receiver middleware, checks the lease before every message
//     the grain handles; past it the message goes to the dead letters (a
//     requester is told at once and retries) and the grain is stopped;
//   - leaseWatch stops every activation of a session the moment its lease
//     ends, whether or not messages arrive.
//
// The lookup holds the lease (Session.HoldLease) while the member runs, so
// probes keep it fresh: an activation can start at once.

// leaseHolds reports whether the lease of session holds now.
func leaseHolds(s *cluster.Session, session int64) bool {
	return time.Now().Before(s.SafeUntilFor(session))
}

// guard is the receiver middleware of one activation whose znode session
// owns.
func guard(s *cluster.Session, session int64, log *slog.Logger) actor.ReceiverMiddleware {
	var stopped atomic.Bool
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch env.Message.(type) {
			case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting, *actor.PoisonPill:
				next(ctx, env)
				return
			}
			if leaseHolds(s, session) {
				next(ctx, env)
				return
			}
			ctx.ActorSystem().DeadLetter.SendUserMessage(ctx.Self(), env)
			if stopped.CompareAndSwap(false, true) {
				log.Warn("an activation stops: its member can no longer vouch for its ZooKeeper session", "pid", ctx.Self().String())
				ctx.ActorSystem().Root.Stop(ctx.Self())
			}
		}
	}
}

// leaseWatch stops the activations of a session when its lease ends.
type leaseWatch struct {
	s      *cluster.Session
	system *actor.ActorSystem
	log    *slog.Logger

	mu      sync.Mutex
	running map[int64]map[string]*actor.PID // session → PID id → PID
	fewer   chan struct{}                   // closed (and replaced by nil) when running shrinks; for waitIdle

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

func newLeaseWatch(s *cluster.Session, system *actor.ActorSystem, log *slog.Logger) *leaseWatch {
	w := &leaseWatch{
		s: s, system: system, log: log,
		running: map[int64]map[string]*actor.PID{},
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *leaseWatch) add(session int64, pid *actor.PID) {
	w.mu.Lock()
	m := w.running[session]
	if m == nil {
		m = map[string]*actor.PID{}
		w.running[session] = m
	}
	m[pid.Id] = pid
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *leaseWatch) remove(session int64, pid *actor.PID) {
	w.mu.Lock()
	if m := w.running[session]; m != nil {
		delete(m, pid.Id)
		if len(m) == 0 {
			delete(w.running, session)
		}
		w.shrunk()
	}
	w.mu.Unlock()
}

// shrunk wakes waitIdle. w.mu is held.
func (w *leaseWatch) shrunk() {
	if w.fewer != nil {
		close(w.fewer)
		w.fewer = nil
	}
}

// waitIdle waits until no activation runs, or until deadline; it reports
// whether none runs.
func (w *leaseWatch) waitIdle(deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		w.mu.Lock()
		if len(w.running) == 0 {
			w.mu.Unlock()
			return true
		}
		if w.fewer == nil {
			w.fewer = make(chan struct{})
		}
		fewer := w.fewer
		w.mu.Unlock()
		select {
		case <-fewer:
		case <-timer.C:
			return false
		}
	}
}

// stopAll stops every running activation now (the member died).
func (w *leaseWatch) stopAll(why string) {
	w.mu.Lock()
	var pids []*actor.PID
	for _, m := range w.running {
		for _, pid := range m {
			pids = append(pids, pid)
		}
	}
	w.mu.Unlock()
	if len(pids) > 0 {
		w.log.Warn("stopping every activation", "why", why, "activations", len(pids))
	}
	for _, pid := range pids {
		w.system.Root.Stop(pid)
	}
}

func (w *leaseWatch) close() {
	close(w.quit)
	<-w.done
}

func (w *leaseWatch) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := w.check()
		wait := time.Hour
		if !next.IsZero() {
			// A millisecond past the end, so that the check sees it ended.
			wait = time.Until(next) + time.Millisecond
		}
		timer.Reset(wait)
		select {
		case <-w.quit:
			return
		case <-w.kick:
		case <-timer.C:
		}
	}
}

// check stops the activations of every session whose lease has ended, and
// returns the earliest end among the others (zero if none runs).
func (w *leaseWatch) check() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var next time.Time
	for session, m := range w.running {
		until := w.s.SafeUntilFor(session)
		if time.Now().Before(until) {
			if next.IsZero() || until.Before(next) {
				next = until
			}
			continue
		}
		w.log.Warn("the lease of a session ran out: stopping its activations before ZooKeeper could let another member activate them",
			"session", session, "activations", len(m))
		for _, pid := range m {
			w.system.Root.Stop(pid)
		}
		delete(w.running, session)
		w.shrunk()
	}
	return next
}
