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
// When the term ends, detach makes it buffer again.
type staging struct {
	system *actor.ActorSystem
	pid    *actor.PID
	log    *slog.Logger

	mu      sync.Mutex
	buf     []staged
	target  actor.Process // set while the real actor runs: forward to it
	rescue  *eventstream.Subscription
	dropped int // messages refused since the buffer filled up
}

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

// Stop before the global runs is ignored: the candidate stays a candidate.
func (st *staging) Stop(*actor.PID) {}

func (st *staging) put(m staged) {
	if _, stop := m.message.(*actor.Stop); stop && m.system {
		// A stop meant for a term that is over (the candidacy's own, or a
		// future's that found the actor gone) must not stop the next one;
		// and a stop before the global runs is ignored, as Stop is.
		return
	}
	st.mu.Lock()
	if t := st.target; t != nil {
		st.mu.Unlock()
		deliver(t, st.pid, m)
		return
	}
	if len(st.buf) < maxStaged {
		st.buf = append(st.buf, m)
		st.mu.Unlock()
		return
	}
	// Full: the message is refused, and the sender learns it the way
	// protoactor tells of any undeliverable message.
	st.dropped++
	n := st.dropped
	st.mu.Unlock()
	if n == 1 || n%10_000 == 0 {
		st.log.Warn("the staged global's buffer is full: refusing messages until it runs", "pid", st.pid.String(), "refused", n, "buffered", maxStaged)
	}
	if !m.system {
		st.system.EventStream.Publish(&actor.DeadLetterEvent{PID: nil, Message: m.message})
	}
}

func deliver(p actor.Process, pid *actor.PID, m staged) {
	if m.system {
		p.SendSystemMessage(pid, m.message)
	} else {
		p.SendUserMessage(pid, m.message)
	}
}

// start spawns props under the staged PID and hands over the buffer. The
// registry has no atomic replace, so between removing the stand-in and
// adding the actor a sender may find nothing: for the whole term the
// dead-letter events of this PID are caught and put through the stand-in,
// which buffers them until the actor runs and forwards them after.
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
	st.mu.Lock()
	for _, m := range st.buf {
		deliver(proc, pid, m)
	}
	st.buf = nil
	st.dropped = 0
	st.target = proc
	st.mu.Unlock()
	return pid, nil
}

// detach makes the stand-in buffer again, before the term's actor stops:
// what is sent from now on waits for the next term.
func (st *staging) detach() {
	st.mu.Lock()
	st.target = nil
	st.mu.Unlock()
}

// reinstall puts the stand-in back under the PID once the term's actor has
// stopped, and then ends the rescue of dead letters.
func (st *staging) reinstall() {
	st.install()
	if st.rescue != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
	}
}

// remove takes the stand-in out of the registry for good.
func (st *staging) remove() {
	if st.rescue != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
	}
	if p, ok := st.system.ProcessRegistry.Get(st.pid); ok && p == actor.Process(st) {
		st.system.ProcessRegistry.Remove(st.pid)
	}
	st.mu.Lock()
	n := len(st.buf)
	st.buf = nil
	st.mu.Unlock()
	if n > 0 {
		st.log.Warn("the candidacy ended with messages its global never ran to handle", "pid", st.pid.String(), "messages", n)
	}
}
