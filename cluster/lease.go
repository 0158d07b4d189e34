package cluster

import (
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// The quorum lease: SafeUntilFor tells until when the quorum leader itself
// certainly counts a session alive. It is anchored only at events that
// prove a touch of the session by the quorum leader at or after a known
// moment t, never at the receipt of an arbitrary byte:
//
//  1. a handshake on a connection dialed at t (the leader created or
//     revalidated the session);
//  2. two probes on one connection, the second sent at least T/3 after the
//     first's reply; t is the first's send time. A probe is a multi with one
//     check of "/" at any version: a write that the quorum leader checks
//     the session for, and that changes nothing.
//
// The lease ends at t + T − T/10. Package global's documentation ("One at a
// time: the lease") gives the argument and what it assumes. Probes run only
// while someone holds the lease (HoldLease), once every T/6, one at a time.

// leaseMargin is how much earlier than the proven expiry the lease ends.
func leaseMargin(timeout time.Duration) time.Duration { return timeout / 10 }

// pairSpacing is the least time between a probe's reply and a later probe
// that may extend the lease from the first: more than the leader's ping
// period (tick/2 ≤ T/4), with T/12 to spare at ZooKeeper's floor.
func pairSpacing(timeout time.Duration) time.Duration { return timeout / 3 }

// probeInterval is the time from a probe's reply to the next probe.
func probeInterval(timeout time.Duration) time.Duration { return timeout / 6 }

// probeHistory is how many confirmed probes are kept to pair with.
const probeHistory = 8

type lease struct {
	mu      sync.Mutex
	session int64         // the session the anchor is for; 0 = none
	anchor  time.Duration // since Session.start: the quorum leader touched session at or after this
	recent  []probeResult // the last confirmed probes, oldest first
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
		l.session, l.anchor, l.recent = session, at, nil
		return
	}
	if at > l.anchor {
		l.anchor = at
	}
}

// expireLease voids the lease: ZooKeeper said the session has expired.
func (s *Session) expireLease(session int64) {
	l := &s.lease
	l.mu.Lock()
	if l.session == session {
		l.session, l.recent = 0, nil
	}
	l.mu.Unlock()
}

// SafeUntil is the moment, on this process's monotonic clock, until which
// the current session is certainly alive at the quorum leader (see the
// comment at the top of lease.go). Past it, the servers may already have
// expired the session and handed what this node held to another; leaders
// stop acting then. The zero time means no proof at all.
func (s *Session) SafeUntil() time.Time { return s.SafeUntilFor(s.ID()) }

// SafeUntilFor is SafeUntil for a given session: the zero time once the
// client has moved on to another session, so that a term of an old session
// can never look safe again, and from the moment Close begins.
func (s *Session) SafeUntilFor(session int64) time.Time {
	if isClosed(s.closed) {
		// Close gives the session up: the servers delete its ephemerals
		// as soon as they hear of it, and others may take over at once.
		return time.Time{}
	}
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

// HoldLease keeps the lease fresh, probing the quorum leader every sixth of
// the session timeout, until release is called. Elections hold it for as
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
	if len(l.recent) == 0 {
		return 0, true
	}
	last := l.recent[len(l.recent)-1]
	if last.session != s.ID() || last.conn != s.connGen.Load() {
		return 0, true
	}
	due := last.confirmed + probeInterval(s.Timeout())
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
	var pair *probeResult
	for i := len(l.recent) - 1; i >= 0; i-- {
		r := l.recent[i]
		if r.session == session && r.conn == conn && sent-r.confirmed >= pairSpacing(s.Timeout()) {
			pair = &r
			break
		}
	}
	l.recent = append(l.recent, p)
	if len(l.recent) > probeHistory {
		l.recent = append(l.recent[:0], l.recent[len(l.recent)-probeHistory:]...)
	}
	l.mu.Unlock()
	if pair != nil {
		s.renewLease(session, pair.sent)
	}
	return true
}
