package pidwatch_test

import (
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/internal/pidwatch"
)

// Watch is meant to be called under the owner's lock (the registry's r.mu,
// the subscriptions' s.mu). Watching a PID that is already gone publishes a
// DeadLetterEvent; EventStream.Publish runs every subscriber on the
// publishing goroutine. Before bfdb0aa that was the watching actor's
// goroutine; now it is the caller's, inside its lock: a dead-letter
// subscriber that needs the same lock (or just waits for the caller) hangs
// the caller. Watch must return without waiting for event-stream
// subscribers, and the stop must still be reported.
func TestAttackWatchRunsDeadLetterSubscribersUnderCallersLock(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	stopped := make(chan *actor.PID, 4)
	w := pidwatch.Start(system, func(who *actor.PID) { stopped <- who })
	t.Cleanup(w.Stop)
	gone := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = system.Root.StopFuture(gone).Wait()

	var mu sync.Mutex // the owner's lock, held around Watch
	abort := make(chan struct{})
	sub := system.EventStream.Subscribe(func(evt any) {
		dl, ok := evt.(*actor.DeadLetterEvent)
		if !ok || dl.PID == nil || !dl.PID.Equal(gone) {
			return
		}
		// A dead-letter monitor that consults the owner's state.
		locked := make(chan struct{})
		go func() { mu.Lock(); mu.Unlock(); close(locked) }()
		select {
		case <-locked:
		case <-abort: // only so that a failing run ends
		}
	})
	t.Cleanup(func() { system.EventStream.Unsubscribe(sub) })

	returned := make(chan struct{})
	go func() {
		mu.Lock()
		w.Watch(gone)
		mu.Unlock()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		close(abort)
		<-returned
		t.Fatal("Watch of a stopped PID did not return within 5 s: it ran a dead-letter subscriber on the caller's goroutine, under the caller's lock")
	}
	select {
	case who := <-stopped:
		if !who.Equal(gone) {
			t.Fatalf("reported %v, want %v", who, gone)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a PID watched after it stopped was not reported within 5 s")
	}
}
