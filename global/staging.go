package global

import (
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
// buffer in order.
type staging struct {
	system *actor.ActorSystem
	pid    *actor.PID

	mu     sync.Mutex
	buf    []staged
	target actor.Process // set once the real actor runs: forward to it
	rescue *eventstream.Subscription
}

type staged struct {
	system  bool
	message any
}

func newStaging(system *actor.ActorSystem, pid *actor.PID) *staging {
	return &staging{system: system, pid: pid}
}

// install registers the stand-in under the PID. It fails only if something
// else holds the id.
func (st *staging) install() bool {
	st.mu.Lock()
	st.target = nil
	st.mu.Unlock()
	_, ok := st.system.ProcessRegistry.Add(st, st.pid.Id)
	return ok
}

func (st *staging) SendUserMessage(_ *actor.PID, message any) { st.put(staged{false, message}) }

func (st *staging) SendSystemMessage(_ *actor.PID, message any) { st.put(staged{true, message}) }

// Stop before the global runs is ignored: the candidate stays a candidate.
func (st *staging) Stop(*actor.PID) {}

func (st *staging) put(m staged) {
	st.mu.Lock()
	if t := st.target; t != nil {
		st.mu.Unlock()
		deliver(t, st.pid, m)
		return
	}
	if len(st.buf) < maxStaged {
		st.buf = append(st.buf, m)
	}
	st.mu.Unlock()
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
// adding the actor a sender may find nothing: for that instant the
// dead-letter events of this PID are caught and redelivered.
func (st *staging) start(props *actor.Props) (*actor.PID, error) {
	st.rescue = st.system.EventStream.SubscribeWithPredicate(func(evt any) {
		dl := evt.(*actor.DeadLetterEvent)
		st.mu.Lock()
		t := st.target
		st.mu.Unlock()
		if t == nil {
			return
		}
		if _, sys := dl.Message.(actor.SystemMessage); sys {
			t.SendSystemMessage(st.pid, dl.Message)
		} else {
			t.SendUserMessage(st.pid, &actor.MessageEnvelope{Message: dl.Message, Sender: dl.Sender})
		}
	}, func(evt any) bool {
		dl, ok := evt.(*actor.DeadLetterEvent)
		return ok && dl.PID != nil && dl.PID.Id == st.pid.Id && dl.PID.Address == st.pid.Address
	})
	st.system.ProcessRegistry.Remove(st.pid)
	pid, err := st.system.Root.SpawnNamed(props, st.pid.Id)
	if err != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.install()
		return nil, err
	}
	proc, _ := st.system.ProcessRegistry.Get(pid)
	st.mu.Lock()
	buf := st.buf
	st.buf = nil
	for _, m := range buf {
		deliver(proc, pid, m)
	}
	st.target = proc
	st.mu.Unlock()
	return pid, nil
}

// stopped ends the rescue once the term's actor has stopped.
func (st *staging) stopped() {
	if st.rescue != nil {
		st.system.EventStream.Unsubscribe(st.rescue)
		st.rescue = nil
	}
}

// remove takes the stand-in out of the registry for good.
func (st *staging) remove() {
	st.stopped()
	if p, ok := st.system.ProcessRegistry.Get(st.pid); ok && p == actor.Process(st) {
		st.system.ProcessRegistry.Remove(st.pid)
	}
}
