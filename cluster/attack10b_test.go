package cluster_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/test/zktest"
)

// Register watches the PID while it holds the registry's lock and the
// registration path's lock. Since bfdb0aa the Watch of a PID that is
// already gone is published as a DeadLetterEvent on Register's own
// goroutine, so every EventStream subscriber runs inside those locks. A
// dead-letter monitor that unregisters PIDs found dead (or calls any
// Register/Unregister) deadlocks the registry: before, the publish ran on
// the watching actor's goroutine and the monitor's Unregister just waited
// for Register to finish.
func TestAttack10bDeadLetterMonitorUnregistering(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)

	gone := n.Spawn(t)
	_ = n.System.Root.StopFuture(gone).Wait()

	abort := make(chan struct{})
	unregistered := make(chan error, 1)
	sub := n.System.EventStream.Subscribe(func(evt any) {
		dl, ok := evt.(*actor.DeadLetterEvent)
		if !ok || dl.PID == nil || !dl.PID.Equal(gone) {
			return
		}
		if _, watch := dl.Message.(*actor.Watch); !watch {
			return
		}
		// The monitor: this PID is dead, drop what it registered.
		done := make(chan error, 1)
		go func() { done <- n.Registry.Unregister(ctx, "svc", dl.PID) }()
		select {
		case err := <-done:
			unregistered <- err
		case <-abort: // only so that a failing run ends
			go func() { unregistered <- <-done }()
		}
	})
	t.Cleanup(func() { n.System.EventStream.Unsubscribe(sub) })

	registered := make(chan error, 1)
	go func() { registered <- n.Registry.Register(ctx, "svc", gone, nil) }()
	select {
	case err := <-registered:
		if err != nil {
			t.Errorf("Register: %v", err)
		}
	case <-time.After(8 * time.Second):
		close(abort)
		<-registered
		<-unregistered
		t.Fatal("Register of a stopped actor's PID did not return within 8 s: a dead-letter subscriber ran on its goroutine, under the registry's locks, and waits for Unregister")
	}
	if err := <-unregistered; err != nil {
		t.Errorf("Unregister from the monitor: %v", err)
	}
	// Either way the stopped actor's registration goes.
	capable(t, n, "svc")
}
