package main

import (
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// maxJobSleep caps the "sleep:DURATION" of a job.
const maxJobSleep = time.Minute

// workerActor does one job at a time, in the order they come, and tells
// the boss that sent each one (Work.boss) when it is done. If that boss
// is gone by then, the Done is lost and the next boss runs the job again.
//
// It refuses work from a boss whose epoch is lower than one it has already
// served, and tells that boss so (Refused): a boss that lost its term
// without noticing yet (paused, partitioned) must not have work done next
// to its successor's.
type workerActor struct {
	out   *printer
	epoch int64 // the highest boss epoch seen
}

// Receive implements actor.Actor.
func (w *workerActor) Receive(c actor.Context) {
	m, ok := c.Message().(*bossv1.Work)
	if !ok {
		return
	}
	text := m.GetJob().GetText()
	if m.GetEpoch() < w.epoch {
		w.out.say("Refusing task: %s (from a boss of epoch %d; I have served epoch %d)", text, m.GetEpoch(), w.epoch)
		if b := m.GetBoss(); b != nil {
			c.Send(actor.NewPID(b.Address, b.Id), &bossv1.Refused{JobId: m.GetJob().GetId(), Worker: pidString(c.Self()), Epoch: w.epoch})
		}
		return
	}
	w.epoch = m.GetEpoch()
	w.out.say("Doing task: %s", text)
	// A demo job does nothing, unless a word of it is "sleep:DURATION":
	// then the worker takes that long (tests use it to hold a job).
	if d := jobSleep(text); d > 0 {
		time.Sleep(d)
	}
	if b := m.GetBoss(); b != nil {
		c.Send(actor.NewPID(b.Address, b.Id), &bossv1.Done{JobId: m.GetJob().GetId(), Worker: pidString(c.Self())})
	}
}

// jobSleep returns the DURATION of the first "sleep:DURATION" word of a job's text.
func jobSleep(text string) time.Duration {
	for _, word := range strings.Fields(text) {
		if s, ok := strings.CutPrefix(word, "sleep:"); ok {
			if d, err := time.ParseDuration(s); err == nil && d > 0 {
				return min(d, maxJobSleep)
			}
		}
	}
	return 0
}

func pidString(p *actor.PID) string { return p.Address + "/" + p.Id }
