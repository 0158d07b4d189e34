// Package pidwatch tells its owner when actors stop. One protoactor actor
// per Watcher watches (protoactor's Watch) the PIDs it is given, local or
// remote, and calls the owner's function with each one that terminates.
// The registry uses it to drop the registrations of an actor that stops
// (as Erlang's pg does), and subscriptions to end those of a subscriber
// that stops.
//
//	w := pidwatch.Start(system, func(who *actor.PID) { ... })  // one watching actor
//	w.Watch(pid) / w.Unwatch(pid)                              // system messages to pid, in order
//	w.Stop()                                                   // the actor stops; no call after it returns
//
// Watch and Unwatch send protoactor's Watch and Unwatch, naming the
// watching actor, to the watched PID straight, as an actor's own
// context.Watch does: not through the watching actor's mailbox, which
// would cost a message and a scheduling of that actor per call (a
// registration each).
package pidwatch

import "github.com/asynkron/protoactor-go/actor"

// Watcher is one watching actor.
type Watcher struct {
	system *actor.ActorSystem
	pid    *actor.PID
}

// Start spawns the watching actor. stopped is called, on the actor's
// goroutine, with every watched PID that terminates; it must not block.
func Start(system *actor.ActorSystem, stopped func(who *actor.PID)) *Watcher {
	pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*actor.Terminated); ok {
			stopped(m.Who)
		}
	}))
	return &Watcher{system: system, pid: pid}
}

// Watch starts watching pid. Watch and Unwatch of one PID take effect in
// the order they are called (from one goroutine, or under the caller's
// lock): each is a system message to pid, and its mailbox keeps their
// order.
func (w *Watcher) Watch(pid *actor.PID) { w.tell(pid, &actor.Watch{Watcher: w.pid}) }

// Unwatch stops watching pid. Both are messages to pid: a PID that stops
// before its Unwatch arrives may still be reported, so stopped checks its
// owner's own tables.
func (w *Watcher) Unwatch(pid *actor.PID) { w.tell(pid, &actor.Unwatch{Watcher: w.pid}) }

// tell sends a system message to pid: to its process when it is local and
// alive, through remote when it is remote, and to dead letters otherwise
// (which answer a Watch with Terminated).
func (w *Watcher) tell(pid *actor.PID, m any) {
	ref, _ := w.system.ProcessRegistry.Get(pid)
	ref.SendSystemMessage(pid, m)
}

// Stop stops the watching actor and waits for it: stopped is not called
// after Stop returns.
func (w *Watcher) Stop() { _ = w.system.Root.StopFuture(w.pid).Wait() }
