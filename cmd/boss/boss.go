package main

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	zka "github.com/zkactor/zkactor/actor"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
)

const (
	// storeTimeout bounds one ZooKeeper operation of the boss; it is shorter
	// than the requestor's wait, so a requestor hears Rejected rather than
	// timing out.
	storeTimeout = 5 * time.Second
	// checkInterval is how often the boss looks for workers that came
	// (for jobs nobody could take) or went (their registration vanished).
	// Lookups are reads of the registry's cache, so this costs no requests.
	checkInterval = 250 * time.Millisecond
)

// check is the boss's periodic self-message.
type check struct{}

// assignment is a job the boss has delegated and not yet heard Done for.
type assignment struct {
	job    *bossv1.Job
	worker *actor.PID
}

// waiting is a job no worker has yet.
type waiting struct {
	job    *bossv1.Job
	warned bool // "Where is my workforce?!" said for it
}

// bossActor is the global "boss". Its first message is Elected; from then
// on it records submitted jobs in ZooKeeper (then acknowledges them),
// delegates them round-robin to the workers, and forgets them on Done. A
// job whose worker dies goes back to the queue.
type bossActor struct {
	node      *zka.Node
	jobs      *jobStore
	out       *printer
	log       *slog.Logger
	deadGrace time.Duration // how long a worker that terminated is skipped, if its registration lingers

	elected  bool
	queue    []*waiting
	running  map[string]assignment // by job id
	next     int                   // round-robin position
	dead     map[string]time.Time  // worker -> skip it until then
	watching map[string]bool       // workers watched for Terminated
	stopTick scheduler.CancelFunc
}

func newBoss(node *zka.Node, jobs *jobStore, out *printer, log *slog.Logger, sessionTimeout time.Duration) *bossActor {
	return &bossActor{
		node:      node,
		jobs:      jobs,
		out:       out,
		log:       log.With("actor", "boss"),
		deadGrace: 2*sessionTimeout + time.Second,
		running:   map[string]assignment{},
		dead:      map[string]time.Time{},
		watching:  map[string]bool{},
	}
}

func (b *bossActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *zkactorv1.Elected:
		b.onElected(c, m)
	case *bossv1.Submit:
		b.onSubmit(c, m)
	case *bossv1.Done:
		b.onDone(m)
		b.dispatch(c)
	case *actor.Terminated:
		b.workerGone(m.Who, "it terminated ("+m.Why.String()+")")
		b.dispatch(c)
	case check:
		b.checkWorkers()
		b.dispatch(c)
	case *actor.Stopping:
		if b.stopTick != nil {
			b.stopTick()
		}
	}
}

func (b *bossActor) onElected(c actor.Context, m *zkactorv1.Elected) {
	b.log.Debug("elected", "epoch", m.Epoch)
	b.out.say("I'm the boss!")
	if n := len(b.workers()); n == 0 {
		b.out.say("I don't do any work! Start a worker.")
	} else {
		b.out.say("I've got %d workers right now.", n)
	}
	if !b.elected {
		b.elected = true
		b.stopTick = scheduler.NewTimerScheduler(c).SendRepeatedly(checkInterval, checkInterval, c.Self(), check{})
	}
	// Take over whatever the previous boss left unfinished: it may have been
	// delegated already, to a worker that is doing it right now; then it runs
	// twice, which is the price of never running zero times.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	left, err := b.jobs.List(ctx)
	if err != nil {
		// The jobs stay in ZooKeeper; the next boss will find them.
		b.log.Error("cannot read unfinished jobs", "err", err)
	}
	known := map[string]bool{}
	for id := range b.running {
		known[id] = true
	}
	for _, w := range b.queue {
		known[w.job.Id] = true
	}
	for _, job := range left {
		if !known[job.Id] {
			b.queue = append(b.queue, &waiting{job: job})
		}
	}
	if len(left) > 0 {
		b.log.Info("took over unfinished jobs", "count", len(left))
	}
	b.dispatch(c)
}

func (b *bossActor) onSubmit(c actor.Context, m *bossv1.Submit) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	job, err := b.jobs.Add(ctx, m.Text)
	if err != nil {
		b.log.Error("cannot record job", "text", m.Text, "err", err)
		c.Respond(&bossv1.Rejected{Reason: "the boss cannot record the job in ZooKeeper: " + err.Error()})
		return
	}
	// Only now, with the job in ZooKeeper, may the requestor go away.
	c.Respond(&bossv1.Accepted{JobId: job.Id})
	b.queue = append(b.queue, &waiting{job: job})
	b.dispatch(c)
}

func (b *bossActor) onDone(m *bossv1.Done) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := b.jobs.Remove(ctx, m.JobId); err != nil {
		// The job stays recorded and a later boss will run it again.
		b.log.Error("cannot remove finished job", "job", m.JobId, "err", err)
	}
	var job *bossv1.Job
	if a, ok := b.running[m.JobId]; ok {
		job = a.job
		delete(b.running, m.JobId)
	}
	for i, w := range b.queue {
		if w.job.Id == m.JobId {
			job = w.job
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			break
		}
	}
	if job == nil {
		b.log.Debug("done again", "job", m.JobId, "worker", m.Worker)
		return
	}
	b.out.say("Job done: %s (%s) by %s", job.Text, job.Id, m.Worker)
}

// workerGone puts the jobs of a dead worker back in the queue, in front.
func (b *bossActor) workerGone(who *actor.PID, why string) {
	key := pidString(who)
	delete(b.watching, key)
	b.dead[key] = time.Now().Add(b.deadGrace)
	var again []*waiting
	for id, a := range b.running {
		if pidString(a.worker) == key {
			again = append(again, &waiting{job: a.job})
			delete(b.running, id)
		}
	}
	if len(again) == 0 {
		return
	}
	sortWaiting(again)
	b.log.Warn("worker gone; delegating its tasks again", "worker", key, "why", why, "tasks", len(again))
	b.out.say("Worker %s is gone: delegating its %d task(s) again", key, len(again))
	b.queue = append(again, b.queue...)
}

// checkWorkers notices workers whose registration vanished (their node
// died or lost its session) without a Terminated reaching us.
func (b *bossActor) checkWorkers() {
	now := time.Now()
	for k, until := range b.dead {
		if now.After(until) {
			delete(b.dead, k)
		}
	}
	if len(b.running) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	pids, err := b.node.GetCapable(ctx, "worker")
	if err != nil {
		return // unknown is not gone
	}
	live := map[string]bool{}
	for _, p := range pids {
		live[pidString(p)] = true
	}
	gone := map[string]*actor.PID{}
	for _, a := range b.running {
		if k := pidString(a.worker); !live[k] {
			gone[k] = a.worker
		}
	}
	for _, pid := range gone {
		b.workerGone(pid, "its registration vanished")
	}
}

// workers are the registered workers, less those known to be dead.
func (b *bossActor) workers() []*actor.PID {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	pids, err := b.node.GetCapable(ctx, "worker")
	if err != nil {
		b.log.Warn("cannot look up workers", "err", err)
		return nil
	}
	live := pids[:0]
	for _, p := range pids {
		if _, dead := b.dead[pidString(p)]; !dead {
			live = append(live, p)
		}
	}
	return live
}

// dispatch delegates the queued jobs, round-robin over the workers.
func (b *bossActor) dispatch(c actor.Context) {
	if !b.elected || len(b.queue) == 0 {
		return
	}
	workers := b.workers()
	if len(workers) == 0 {
		for _, w := range b.queue {
			if !w.warned {
				w.warned = true
				b.out.say("Where is my workforce?!")
			}
		}
		return
	}
	self := &zkactorv1.PID{Address: c.Self().Address, Id: c.Self().Id}
	for _, w := range b.queue {
		worker := workers[b.next%len(workers)]
		b.next++
		key := pidString(worker)
		if !b.watching[key] {
			b.watching[key] = true
			c.Watch(worker)
		}
		b.running[w.job.Id] = assignment{job: w.job, worker: worker}
		b.out.say("Delegating task: %s to %s", w.job.Text, key)
		c.Send(worker, &bossv1.Work{Job: w.job, Boss: self})
	}
	b.queue = nil
}

// sortWaiting orders jobs by id, which is submission order.
func sortWaiting(ws []*waiting) {
	sort.Slice(ws, func(i, j int) bool { return ws[i].job.Id < ws[j].job.Id })
}
