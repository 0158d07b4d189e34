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

// SetTestHookListed runs f after each listing of every subscription
// (before its reads) until the test ends.
func SetTestHookListed(t *testing.T, f func()) {
	testHookListed.Store(&f)
	t.Cleanup(func() { testHookListed.Store(nil) })
}
