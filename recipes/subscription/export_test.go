package subscription

import "testing"

// Active counts the subscriptions that are following (tests wait for it to
// drop when a subscription should have ended).
func Active(s *Subscriptions) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, set := range s.byPID {
		n += len(set)
	}
	return n
}

// SetTestHookListed runs f after each listing and each creation event of
// every subscription (before the reads they ask for are sent) until the
// test ends.
func SetTestHookListed(t *testing.T, f func()) {
	testHookListed.Store(&f)
	t.Cleanup(func() { testHookListed.Store(nil) })
}

// WatchCounts returns the requests sent and the watch events received so
// far on the connection of s's persistent watches (0, 0 before the first
// Subscribe).
func WatchCounts(s *Subscriptions) (requests, events int64) {
	s.mu.Lock()
	l := s.stream
	s.mu.Unlock()
	if l == nil {
		return 0, 0
	}
	return l.conn.Requests(), l.conn.Events()
}

// WatchServer returns the server of s's persistent watches' connection,
// "" when it has none.
func WatchServer(s *Subscriptions) string {
	s.mu.Lock()
	l := s.stream
	s.mu.Unlock()
	if l == nil {
		return ""
	}
	return l.conn.Server()
}

// StreamExited reports whether s's stream goroutine has ended (true when
// s never had one).
func StreamExited(s *Subscriptions) bool {
	s.mu.Lock()
	l := s.stream
	s.mu.Unlock()
	if l == nil {
		return true
	}
	select {
	case <-l.exited:
		return true
	default:
		return false
	}
}
