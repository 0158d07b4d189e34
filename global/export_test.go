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
