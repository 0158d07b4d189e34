package cluster

import (
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// The quorum lease.
//
// A leader must stop acting before ZooKeeper could expire its session and
// hand what it held to another. Bytes from a server prove nothing: a
// follower cut off from its quorum goes on answering pings for up to
// syncLimit × tickTime while the quorum leader expires the sessions of its
// clients. What the lease counts instead are events that prove that the
// quorum leader itself renewed (touched) the session at or after a known
// moment t, on this process's monotonic clock. The quorum leader expires a
// session no earlier than one session timeout T after its last touch, so
// the session is alive until t + T; the lease ends a margin earlier, at
// t + T − T/10 (SafeUntil).
//
// Two kinds of event anchor the lease:
//
//  1. A handshake. When a connection dialed at d gets a session, the
//     session was either created by the quorum leader (createSession is a
//     transaction) or revalidated by it (a follower asks the leader, which
//     touches the session, before it accepts a reconnect). Either happened
//     after d: t = d.
//  2. Two probes on one connection. A probe is a multi holding one check of
//     "/" at any version: a write, so a follower forwards it to the quorum
//     leader, which checks that the session is live (PrepRequestProcessor's
//     checkSession) and changes nothing. A follower does not pass the touch
//     with the request: it collects the sessions its clients touched and
//     hands them over when it answers the leader's next ping, which the
//     leader sends every tick/2. So one confirmed probe P1, sent at s1,
//     shows only that the session was live when the leader saw it. A
//     second probe P2, sent at least T/4 after P1's reply on the same
//     connection and confirmed too, shows that the follower kept following
//     the same leader (a follower that loses it closes its clients'
//     connections) and that the leader→follower link carried P2's commit,
//     after the pings the leader sent in between (at least one, as
//     tick/2 ≤ T/4); the follower answered them with the touch it recorded
//     when P1 arrived, at or after s1, and the answer travels in order with
//     the requests it forwards. Then t = s1.
//
// What this assumes, and what it does not:
//   - the clocks of this process and of the quorum leader run at the same
//     rate, within the T/10 margin;
//   - the ensemble's tickTime is at most T/2, which ZooKeeper enforces by
//     clamping session timeouts to at least 2 ticks (minSessionTimeout's
//     default; an ensemble configured below it voids the argument);
//   - a follower's answer to a ping is not overtaken by a request it
//     forwards later (one TCP connection), and is not delayed past the
//     leader's processing of P2 by more than the probe spacing allows;
//     ZooKeeper's own syncLimit makes the same kind of timing assumption.
//
// A process paused between checking the lease and acting, or a message in
// flight to a third party when the lease ends, is beyond any lease: that is
// what the epoch (a fencing token, package global) is for.
//
// Probes run only while someone holds the lease (HoldLease), once every T/4,
// one at a time: a probe that hangs (a partitioned follower) lets the lease
// run out on its own.

// leaseMargin is how much earlier than the proven expiry the lease ends.
func leaseMargin(timeout time.Duration) time.Duration { return timeout / 10 }

// probeSpacing is the least time between a probe's reply and the next
// probe that may extend the lease from the first.
func probeSpacing(timeout time.Duration) time.Duration { return timeout / 4 }

type lease struct {
	mu      sync.Mutex
	session int64         // the session the anchor is for; 0 = none
	anchor  time.Duration // since Session.start: the quorum leader touched session at or after this
	last    probeResult   // the last confirmed probe
	holders int
	kick    chan struct{}
}

type probeResult struct {
	session   int64
	conn      uint64
	sent      time.Duration
	confirmed time.Duration
}

// renewLease records that the quorum leader touched session at or after at.
func (s *Session) renewLease(session int64, at time.Duration) {
	if session == 0 {
		return
	}
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session != session {
		l.session, l.anchor, l.last = session, at, probeResult{}
		return
	}
	if at > l.anchor {
		l.anchor = at
	}
}

// SafeUntil is the moment, on this process's monotonic clock, until which
// the current session is certainly alive at the quorum leader (see the
// comment at the top of lease.go). Past it, the servers may already have
// expired the session and handed what this node held to another; leaders
// stop acting then. The zero time means no proof at all.
func (s *Session) SafeUntil() time.Time { return s.SafeUntilFor(s.ID()) }

// SafeUntilFor is SafeUntil for a given session: the zero time once the
// client has moved on to another session, so that a term of an old session
// can never look safe again.
func (s *Session) SafeUntilFor(session int64) time.Time {
	l := &s.lease
	l.mu.Lock()
	ok, anchor := l.session == session && session != 0, l.anchor
	l.mu.Unlock()
	if !ok {
		return time.Time{}
	}
	t := s.Timeout()
	return s.start.Add(anchor + t - leaseMargin(t))
}

// HoldLease keeps the lease fresh, probing the quorum leader every quarter
// of the session timeout, until release is called. Elections hold it for as
// long as they have a candidate, so that a candidate that comes first in its
// queue can start its term at once.
func (s *Session) HoldLease() (release func()) {
	l := &s.lease
	l.mu.Lock()
	l.holders++
	l.mu.Unlock()
	s.kickLease()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.holders--
			l.mu.Unlock()
		})
	}
}

func (s *Session) kickLease() {
	select {
	case s.lease.kick <- struct{}{}:
	default:
	}
}

// keepLease is the probing goroutine.
func (s *Session) keepLease() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if wait, wanted := s.nextProbe(); !wanted || wait > 0 {
			if !wanted {
				wait = time.Hour
			}
			timer.Reset(wait)
			select {
			case <-s.closed:
				return
			case <-s.lease.kick:
			case <-timer.C:
			}
			continue
		}
		if !s.Connected() {
			select {
			case <-s.closed:
				return
			case <-s.readyChan():
			}
			continue
		}
		if !s.probe() {
			// Failed or not confirmable (a reconnect in between): try again
			// soon, but do not hammer a struggling ensemble.
			timer.Reset(s.Timeout() / 10)
			select {
			case <-s.closed:
				return
			case <-timer.C:
			}
		}
	}
}

// nextProbe says whether probes are wanted and how long until the next.
func (s *Session) nextProbe() (time.Duration, bool) {
	l := &s.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holders == 0 {
		return 0, false
	}
	if l.last.session == 0 || l.last.session != s.ID() || l.last.conn != s.connGen.Load() {
		return 0, true
	}
	due := l.last.confirmed + probeSpacing(s.Timeout())
	return due - time.Since(s.start), true
}

func (s *Session) readyChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// probe sends one probe and extends the lease if it and the previous one
// prove a touch (see above). It reports whether the probe was confirmed.
func (s *Session) probe() bool {
	session, conn, sent := s.conn.SessionID(), s.connGen.Load(), time.Since(s.start)
	res, err := s.conn.Multi(&zk.CheckVersionRequest{Path: "/", Version: -1})
	confirmed := time.Since(s.start)
	// The server checks the session before the ACL, so a refusal to read
	// "/" proves as much as a success.
	proof := func(err error) bool { return err == nil || errors.Is(err, zk.ErrNoAuth) }
	if !proof(err) || len(res) != 1 || !proof(res[0].Error) ||
		session == 0 || s.conn.SessionID() != session || s.connGen.Load() != conn {
		if err != nil && !transient(err) && !isClosed(s.closed) {
			s.log.Warn("lease probe failed", "err", err)
		}
		return false
	}
	p := probeResult{session: session, conn: conn, sent: sent, confirmed: confirmed}
	l := &s.lease
	l.mu.Lock()
	prev := l.last
	l.last = p
	l.mu.Unlock()
	if prev.session == session && prev.conn == conn && sent >= prev.confirmed+probeSpacing(s.Timeout()) {
		s.renewLease(session, prev.sent)
	}
	return true
}
