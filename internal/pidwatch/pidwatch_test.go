package pidwatch_test

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/internal/pidwatch"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// A watched actor that stops is reported; after Stop nothing is, not even
// a watched actor that stops then.
func TestStoppedActorsAreReported(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	stopped := make(chan *actor.PID, 4)
	w := pidwatch.Start(system, func(who *actor.PID) { stopped <- who })
	idle := actor.PropsFromFunc(func(actor.Context) {})
	first, second := system.Root.Spawn(idle), system.Root.Spawn(idle)
	w.Watch(first)
	w.Watch(second)
	_ = system.Root.StopFuture(first).Wait()
	select {
	case who := <-stopped:
		if !who.Equal(first) {
			t.Fatalf("reported %v, want %v", who, first)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watched actor's stop was not reported within 5 s")
	}
	w.Stop()
	_ = system.Root.StopFuture(second).Wait()
	select {
	case who := <-stopped:
		t.Fatalf("reported %v after Stop", who)
	default:
	}
}

// A PID that has already stopped (or never lived) is reported at once:
// its Watch goes to dead letters, which answer it with Terminated.
func TestStoppedBeforeWatchIsReported(t *testing.T) {
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	stopped := make(chan *actor.PID, 4)
	w := pidwatch.Start(system, func(who *actor.PID) { stopped <- who })
	t.Cleanup(w.Stop)
	gone := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = system.Root.StopFuture(gone).Wait()
	w.Watch(gone)
	select {
	case who := <-stopped:
		if !who.Equal(gone) {
			t.Fatalf("reported %v, want %v", who, gone)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a PID watched after it stopped was not reported within 5 s")
	}
}
