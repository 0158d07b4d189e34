package global

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// SetTestHookDetached sets testHookDetached for the test's duration.
func SetTestHookDetached(t *testing.T, f func(pid *actor.PID)) {
	testHookDetached = f
	t.Cleanup(func() { testHookDetached = nil })
}

// Ending reports how many candidacies Elections keeps as ending (waited
// for by a later candidacy of their name), for the leak test.
func Ending(e *Elections) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ending)
}
