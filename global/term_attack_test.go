package global_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// panicky is a global whose Receive panics once on the lifecycle message
// chosen (Stopping or Stopped), as cleanup code may.
func panicky(on string, panicked *atomic.Int32) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *actor.Stopping:
			if on == "stopping" && panicked.Add(1) == 1 {
				panic("cleanup failed in Stopping")
			}
		case *actor.Stopped:
			if on == "stopped" && panicked.Add(1) == 1 {
				panic("cleanup failed in Stopped")
			}
		}
	})
}

// A global actor that panics while handling its Stopped (or Stopping) must
// not wedge the candidacy: Resign must return and the next candidate must
// take over. The guard closes t.done only after next() returns for Stopped,
// so a panic there leaves done open and endTerm waits on it forever.
func TestAttackPanicInStoppedWedgesTerm(t *testing.T) {
	for _, on := range []string{"stopped", "stopping"} {
		t.Run(on, func(t *testing.T) {
			zkc := zktest.Shared(t)
			root := zktest.Root(t)
			var j journal
			a := newNode(t, zkc.Addrs(), root, 4*time.Second)
			b := newNode(t, zkc.Addrs(), root, 4*time.Second)
			ctx := ctxT(t)
			var panicked atomic.Int32
			if _, err := a.Elections.RegisterCandidate(ctx, "boss", panicky(on, &panicked)); err != nil {
				t.Fatal(err)
			}
			zktest.Eventually(t, 10*time.Second, func() error {
				if _, ok := a.Elections.Epoch("boss"); !ok {
					return fmt.Errorf("a does not lead yet")
				}
				return nil
			})
			if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := a.Elections.Resign(rctx, "boss")
			if panicked.Load() == 0 {
				t.Fatalf("the actor never panicked")
			}
			if err != nil {
				t.Errorf("Resign after a panic in %s: %v (endTerm waits on t.done forever)", on, err)
			}
			zktest.Eventually(t, 5*time.Second, func() error {
				if len(j.running()) != 1 {
					return fmt.Errorf("b never took over after a's global panicked in %s", on)
				}
				return nil
			})
		})
	}
}

// The guard is appended last to the global's props, so it is the
// innermost receiver middleware: a middleware of the caller's that handles
// *actor.Stopped itself (does not call next) hides it from the guard, and
// t.done is never closed. Before 87e3192 the term's end came from a
// Terminated sent by protoactor whatever the middlewares did.
func TestAttackUserMiddlewareSwallowingStoppedWedgesTerm(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var saw atomic.Int32
	props := actor.PropsFromFunc(func(c actor.Context) {},
		actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
			return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
				if _, ok := env.Message.(*actor.Stopped); ok {
					saw.Add(1) // "final cleanup", handled here
					return
				}
				next(c, env)
			}
		}))
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", props); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, ok := a.Elections.Epoch("boss"); !ok {
			return fmt.Errorf("a does not lead yet")
		}
		return nil
	})
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := a.Elections.Resign(rctx, "boss")
	if saw.Load() == 0 {
		t.Fatal("the actor never stopped")
	}
	if err != nil {
		t.Errorf("Resign with a middleware that handles Stopped: %v", err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		if len(j.running()) != 1 {
			return fmt.Errorf("b never took over")
		}
		return nil
	})
}

// The guard takes any *actor.Stopped for the actor's end, including one
// sent to the global as an ordinary message: t.done closes while the actor
// runs, hold's select spins on the closed channel, and at the term's end
// endTerm skips the poison pill (isClosed(t.done)), so the actor runs on
// after Resign. Before 87e3192 such a message was just passed on.
func TestAttackStoppedAsUserMessageEndsTermEarly(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	a.System.Root.Send(pid, &actor.Stopped{})
	// A marker behind it: once handled, the Stopped has passed the guard.
	a.System.Root.Send(pid, &pb.PID{Id: "marker"})
	zktest.Eventually(t, 5*time.Second, func() error {
		for _, r := range j.all() {
			for _, h := range r.handled {
				if h == "marker" {
					return nil
				}
			}
		}
		return fmt.Errorf("marker not handled yet")
	})
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 3*time.Second, func() error {
		if r := j.running(); len(r) != 0 {
			return fmt.Errorf("%d globals still running after Resign", len(r))
		}
		return nil
	})
}
