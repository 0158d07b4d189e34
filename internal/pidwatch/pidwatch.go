// Package pidwatch tells its owner when actors stop. One protoactor actor
// per Watcher watches (protoactor's Watch) the PIDs it is given, local or
// remote, and calls the owner's function with each one that terminates.
// The registry uses it to drop the registrations of an actor that stops
// (as Erlang's pg does), and subscriptions to end those of a subscriber
// that stops.
//
//	w := pidwatch.Start(system, func(who *actor.PID) { ... })  // one watching actor
//	w.Watch(pid) / w.Unwatch(pid)                              // messages to it, in order
//	w.Stop()                                                   // the actor stops; no call after it returns
package pidwatch

import "github.com/asynkron/protoactor-go/actor"

// Watcher is one watching actor.
type Watcher struct {
	system *actor.ActorSystem
	pid    *actor.PID
}

type (
	watch   struct{ pid *actor.PID }
	unwatch struct{ pid *actor.PID }
)

// Start spawns the watching actor. stopped is called, on the actor's
// goroutine, with every watched PID that terminates; it must not block.
func Start(system *actor.ActorSystem, stopped func(who *actor.PID)) *Watcher {
	pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *watch:
			c.Watch(m.pid)
		case *unwatch:
			c.Unwatch(m.pid)
		case *actor.Terminated:
			stopped(m.Who)
		}
	}))
	return &Watcher{system: system, pid: pid}
}

// Watch starts watching pid. Watch and Unwatch take effect in the order
// they are called (from one goroutine, or under the caller's lock).
func (w *Watcher) Watch(pid *actor.PID) { w.system.Root.Send(w.pid, &watch{pid}) }

// Unwatch stops watching pid. Both are messages to the watching actor: a
// PID that stops before its Unwatch is handled may still be reported, so
// stopped checks its owner's own tables.
//
// They go through the watching actor, not straight to pid as system
// messages, although that would save a message per call: the callers hold
// their own locks, and a Watch of a PID that is gone is handled by dead
// letters, which run the actor system's DeadLetterEvent subscribers on the
// sending goroutine (attack_test.go). The watching actor sends them.
func (w *Watcher) Unwatch(pid *actor.PID) { w.system.Root.Send(w.pid, &unwatch{pid}) }

// Stop stops the watching actor and waits for it: stopped is not called
// after Stop returns.
func (w *Watcher) Stop() { _ = w.system.Root.StopFuture(w.pid).Wait() }
