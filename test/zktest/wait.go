package zktest

import (
	"testing"
	"time"
)

// pollInterval is how often Eventually re-checks its condition. It is
// not synchronisation: the deadline is what bounds the wait.
const pollInterval = 2 * time.Millisecond

// Eventually waits until cond returns nil, polling, and fails the test with
// cond's last error if that has not happened within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}
