package global

import (
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
)

// maxStaged bounds the messages a not-yet-running global buffers.
const maxStaged = 100_000

// staging stands in the process registry under a candidate's PID while the
// candidate is not running its global: it keeps what is sent there, so
// that messages sent between an election and the actor's start (by nodes
// whose caches already name the new global) wait instead of being lost.
// When the term starts, start swaps the real actor in and hands it the
// buffer in order; senders that still hold the stand-in are forwarded.
// When the term ends, detach makes it buffer again, and what the ending
// actor had not handled yet comes back through requeue, ahead of what was
// buffered meanwhile, for the next term.
//
// The registry has no atomic replace: between removing the stand-in and
// adding the actor (and between the actor's end and the stand-in's return)
// a sender may find nothing. Those messages become dead letters, which are
// caught and put through the stand-in; protoactor still tells the sender of
// a request it has no recipient (DeadLetterResponse), although the message
// is delivered after all.
type staging struct {
	system *actor.ActorSystem
	pid    *actor.PID
	log    *slog.Logger

	mu       sync.Mutex
	requeued []staged // handed back by an ending term: delivered first
	buf      []staged
	target   actor.Process // set while the real actor runs: forward to it
	draining actor.Process // the ending term's actor, until reinstall
	removed  bool          // the candidacy is over: answer as a dead PID
	rescue   *eventstream.Subscription
	dropped  int // messages refused since the buffer filled up
}

// testHookDetached, when set by a test, runs in detach while no process
// holds the PID.
var testHookDetached func(pid *actor.PID)

type staged struct {
	system  bool
	message any
}

func newStaging(system *actor.ActorSystem, pid *actor.PID, log *slog.Logger) *staging {
	return &staging{system: system, pid: pid, log: log}
}

// install registers the stand-in under the PID. It fails only if something
// else holds the id.
func (st *staging) install() bool {
	_, ok := st.system.ProcessRegistry.Add(st, st.pid.Id)
	return ok
}

func (st *staging) SendUserMessage(_ *actor.PID, message any) { st.put(staged{false, message}) }

func (st *staging) SendSystemMessage(_ *actor.PID, message any) { st.put(staged{true, message}) }

// Stop reaches a running global (a sender may hold the stand-in for good:
// protoactor caches it in the PID); before the global runs it is ignored:
// the candidate stays a candidate.
func (st *staging) Stop(pid *actor.PID) {
	st.mu.Lock()
	t := st.target
	if t == nil {
		t = st.draining // the ending actor stopping itself
	}
	st.mu.Unlock()
	if t != nil {
		t.Stop(pid)
	}
}

func (st *staging) put(m staged) {
	st.mu.Lock()
	if t := st.target; t != nil {
		st.mu.Unlock()
		deliver(t, st.pid, m)
		return
	}
	if d := st.draining; d != nil && m.system {
		// System messages while a term ends are the ending actor's own
		// (its stop, its children's, its watches).
		st.mu.Unlock()
		deliver(d, st.pid, m)
		return
	}
	if isStop(m) {
		// A stop or poison pill that finds no running global: one meant
		// for a term that is over (the candidacy's own, or a future's, come
		// back as a dead letter) must not end the next term, and one sent
		// before the global runs is ignored, as Stop is. (The chaos checker
		// found a term's last poison pill ending the next term, and with it
		// the candidacy, for good.)
		st.mu.Unlock()
		return
	}
	if st.removed {
		// Senders keep a stand-in they once resolved for good (protoactor
		// caches any process that is not an actor in the PID): tell them,
		// as for any PID that is gone.
		st.mu.Unlock()
		deliver(st.system.DeadLetter, st.pid, m)
		return
	}
	if len(st.buf)+len(st.requeued) < maxStaged {
		st.buf = append(st.buf, m)
		st.mu.Unlock()
		return
	}
	st.dropped++
	n := st.dropped
	st.mu.Unlock()
	if n == 1 || n%10_000 == 0 {
		st.log.Warn("the staged global's buffer is full: refusing messages until it runs", "pid", st.pid.String(), "refused", n, "buffered", maxStaged)
	}
	if !m.system {
		// PID left out, or the rescue would catch it and put it back here.
		st.system.EventStream.Publish(&actor.DeadLetterEvent{Message: m.message})
	}
}

// requeue takes back a message the ending term's actor did not handle.
func (st *staging) requeue(env *actor.MessageEnvelope) {
	st.mu.Lock()
	st.requeued = append(st.requeued, staged{false, env})
	st.mu.Unlock()
}

// isStop reports a stop or a poison pill, bare or in an envelope (the
// rescue of dead letters wraps what it catches).
func isStop(m staged) bool {
	msg := m.message
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		msg = env.Message
	}
	switch msg.(type) {
	case *actor.Stop, *actor.PoisonPill:
		return true
	}
	return false
}

func deliver(p actor.Process, pid *actor.PID, m staged) {
	if m.system {
		p.SendSystemMessage(pid, m.message)
	} else {
		p.SendUserMessage(pid, m.message)
	}
}

// start spawns props under the staged PID and hands over the buffer, then
// forwards. For the whole term the dead-letter events of this PID are
// caught and put through the stand-in (see the type's comment).
func (st *staging) start(props *actor.Props) (*actor.PID, error) {
	// Subscribe, not SubscribeWithPredicate: the latter sets its predicate
	// after publishing the subscription, a data race with every Publish.
	st.rescue = st.system.EventStream.Subscribe(func(evt any) {
		dl, ok := evt.(*actor.DeadLetterEvent)
		if !ok || dl.PID == nil || dl.PID.Id != st.pid.Id || dl.PID.Address != st.pid.Address {
			return
		}
		if _, sys := dl.Message.(actor.SystemMessage); sys {
			st.put(staged{true, dl.Message})
		} else {
			st.put(staged{false, &actor.MessageEnvelope{Message: dl.Message, Sender: dl.Sender}})
		}
	})
	st.system.ProcessRegistry.Remove(st.pid)
	pid, err := st.system.Root.SpawnNamed(props, st.pid.Id)
	if err != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
		st.install()
		return nil, err
	}
	proc, _ := st.system.ProcessRegistry.Get(pid)
	if _, live := proc.(*actor.ActorProcess); !live {
		// The actor already stopped (during Started, say): keep buffering;
		// the term ends as soon as the loop sees the guard's done. Never forward
		// to the dead-letter process: the rescue would hand it straight back.
		return pid, nil
	}
	// Deliver outside the lock (a delivery may publish and come back here),
	// round after round until nothing new has arrived, then forward.
	for {
		st.mu.Lock()
		batch := append(st.requeued, st.buf...)
		st.requeued, st.buf = nil, nil
		if len(batch) == 0 {
			st.dropped = 0
			st.target = proc
			st.mu.Unlock()
			return pid, nil
		}
		st.mu.Unlock()
		for _, m := range batch {
			deliver(proc, pid, m)
		}
	}
}

// detach makes the stand-in buffer again before the term's actor stops, and
// puts it back in the registry in the actor's place: from then on, what is
// sent waits for the next term, while what the actor's mailbox holds goes
// through the guard back to the stand-in (requeue). It returns the actor's
// process, to stop it directly, or nil if none ran.
func (st *staging) detach() actor.Process {
	st.mu.Lock()
	t := st.target
	st.target, st.draining = nil, t
	st.mu.Unlock()
	if t != nil {
		// Remove marks the actor's process dead for PID caches, so that
		// senders look the PID up again and find the stand-in; the actor
		// itself goes on draining its mailbox.
		if p, ok := st.system.ProcessRegistry.Get(st.pid); ok && p == t {
			st.system.ProcessRegistry.Remove(st.pid)
		}
		if testHookDetached != nil {
			testHookDetached(st.pid)
		}
		st.install()
	}
	return t
}

// reinstall makes sure the stand-in is under the PID once the term's actor
// has stopped (its own removal from the registry may have taken the
// stand-in out), and then ends the rescue of dead letters.
func (st *staging) reinstall() {
	st.mu.Lock()
	st.draining = nil
	st.mu.Unlock()
	st.install()
	if st.rescue != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
	}
}

// remove takes the stand-in out of the registry for good; from now on what
// reaches it goes to the dead-letter process.
func (st *staging) remove() {
	if st.rescue != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
	}
	if p, ok := st.system.ProcessRegistry.Get(st.pid); ok && p == actor.Process(st) {
		st.system.ProcessRegistry.Remove(st.pid)
	}
	st.mu.Lock()
	left := append(st.requeued, st.buf...)
	st.requeued, st.buf, st.target, st.draining, st.removed = nil, nil, nil, nil, true
	st.mu.Unlock()
	if len(left) > 0 {
		st.log.Warn("the candidacy ended with messages its global never handled: sent to dead letters", "pid", st.pid.String(), "messages", len(left))
	}
	for _, m := range left {
		deliver(st.system.DeadLetter, st.pid, m)
	}
}
