package subscription

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
