package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/zkactor/zkactor/internal/metrics"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
)

const (
	// storeTimeout bounds one ZooKeeper operation of the boss; it is shorter
	// than the requestor's wait, so a requestor hears Rejected rather than
	// timing out.
	storeTimeout = 5 * time.Second
	// checkInterval is how often the boss looks for workers that came
	// (for jobs nobody could take) or went (their registration vanished),
	// and for assignments that timed out. Lookups are reads of the
	// registry's cache, so this costs no requests.
	checkInterval = 250 * time.Millisecond
	// feedWindow bounds the jobs the boss holds at once (queued here or
	// delegated): the queue's feeder takes no more until some are done.
	feedWindow = 1024
)

// check is the boss's periodic self-message.
type check struct{}

// assignment is a job the boss has delegated and not yet heard Done for.
type assignment struct {
	job    *bossv1.Job
	worker *actor.PID
	since  time.Time // delegated at
}

// waiting is a job no worker has yet.
type waiting struct {
	job    *bossv1.Job
	warned bool // "Where is my workforce?!" said for it
}

// bossConfig holds the boss's timing.
type bossConfig struct {
	// deadGrace is how long a worker that terminated is skipped, if its
	// registration lingers.
	deadGrace time.Duration
	// assignTimeout is how long a worker may hold a job before the boss
	// delegates it again.
	assignTimeout time.Duration
}

// bossActor is the global "boss". Its first message is Elected, whose
// epoch it sends with every delegation; it then has the jobs queue's
// feeder deliver it every unfinished job (those the last boss left first,
// then each new one), records submitted jobs in the queue (then
// acknowledges them to the requestor), delegates them round-robin to the
// workers, and acknowledges them to the queue on Done.
//
// Jobs run at least once: a job is delegated again when its worker dies,
// or when it is not done within assignTimeout (the worker may have
// restarted under the same PID and forgotten it), and a new boss gets
// every job still in the queue (its claims went with the old boss's term
// or session). So a job may run more than once, and a long
// job, or one queued behind others at a busy worker, may run again
// elsewhere.
//
// The boss never waits on ZooKeeper inside Receive: each request runs on a
// goroutine, and its outcome comes back through ReenterAfter, so the boss
// answers other messages while a write is in flight.
type bossActor struct {
	// findWorkers returns the registered workers: the node's
	// GetCapable("worker"), a read of the registry's cache.
	findWorkers func(context.Context) ([]*actor.PID, error)
	jobs        *workqueue.Queue
	out         *printer
	log         *slog.Logger
	cfg         bossConfig

	ctx    context.Context    // ends with the term: requests in flight stop
	cancel context.CancelFunc // ends ctx, on Stopping
	epoch  int64              // the term's, from Elected
	// deposed: a worker has served a boss of a newer term; this one
	// delegates nothing more while it waits for its term to end.
	deposed bool
	elected bool
	feeder  *actor.PID        // delivers the queue's jobs; a child, it stops with the boss
	items   map[string]string // job id -> the queue item it came as, to Ack on Done

	queue    []*waiting
	running  map[string]assignment // by job id
	next     int                   // round-robin position
	dead     map[string]time.Time  // worker -> skip it until then
	watching map[string]bool       // workers watched for Terminated
	stopTick scheduler.CancelFunc  // the periodic check
}

func newBoss(findWorkers func(context.Context) ([]*actor.PID, error), jobs *workqueue.Queue, out *printer, log *slog.Logger, cfg bossConfig) *bossActor {
	return &bossActor{
		findWorkers: findWorkers,
		jobs:        jobs,
		out:         out,
		log:         log.With("actor", "boss"),
		cfg:         cfg,
		running:     map[string]assignment{},
		dead:        map[string]time.Time{},
		watching:    map[string]bool{},
		items:       map[string]string{},
	}
}

// Receive implements actor.Actor.
func (b *bossActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		b.ctx, b.cancel = context.WithCancel(context.Background())
	case *zkactorv1.Elected:
		b.onElected(c, m)
	case *workqueuev1.Delivery:
		b.onDelivery(m)
		b.dispatch(c)
	case *bossv1.Submit:
		b.onSubmit(c, m)
	case *bossv1.Done:
		b.onDone(c, m)
		b.dispatch(c)
	case *bossv1.Refused:
		b.onRefused(c, m)
	case *actor.Terminated:
		b.workerGone(m.Who, "it terminated ("+m.Why.String()+")")
		b.dispatch(c)
	case check:
		b.checkWorkers()
		b.checkAssignments()
		b.dispatch(c)
	case *actor.Stopping:
		b.cancel()
		if b.stopTick != nil {
			b.stopTick()
		}
	}
}

func (b *bossActor) onElected(c actor.Context, m *zkactorv1.Elected) {
	b.log.Debug("elected", "epoch", m.Epoch)
	b.epoch = m.Epoch
	b.out.say("I'm the boss!")
	if n := len(b.workers()); n == 0 {
		b.out.say("I don't do any work! Start a worker.")
	} else {
		b.out.say("I've got %d workers right now.", n)
	}
	if !b.elected {
		b.elected = true
		b.stopTick = scheduler.NewTimerScheduler(c).SendRepeatedly(checkInterval, checkInterval, c.Self(), check{})
		b.feeder = b.jobs.Feed(c, c.Self(), workqueue.FeedOptions{Window: feedWindow})
	}
}

// onDelivery queues a job the feeder took from the queue: one the last
// boss left unfinished (taken over: some may be running at a worker right
// now, and then run twice, the price of never running zero times), or one
// submitted since.
func (b *bossActor) onDelivery(d *workqueuev1.Delivery) {
	job, err := decodeJob(d.Key, d.Payload)
	if err != nil {
		// Held, not acknowledged: it is not this program's to delete.
		b.log.Warn("skipping an item among the jobs that is not a job", "item", d.Id, "err", err)
		return
	}
	if b.known(job.Id) {
		b.log.Warn("a second item for a job already held; leaving it", "job", job.Id, "item", d.Id)
		return
	}
	job.SubmittedAt = d.PutAt
	b.items[job.Id] = d.Id
	b.queue = append(b.queue, &waiting{job: job})
	sortWaiting(b.queue)
	if d.Attempts > 1 {
		metrics.Jobs(metrics.JobTakenOver, 1)
		b.log.Info("took over an unfinished job", "job", job.Id, "attempt", d.Attempts)
	}
}

func (b *bossActor) onSubmit(c actor.Context, m *bossv1.Submit) {
	if err := checkJob(m.Token, m.Text); err != nil {
		answer(c, &bossv1.Rejected{Reason: err.Error()})
		return
	}
	if b.deposed {
		// A newer boss runs: it alone reads the jobs recorded from now on.
		answer(c, &bossv1.Rejected{Reason: "this boss has been superseded by a newer one", Retry: true})
		return
	}
	if job := b.find(jobID(m.Token)); job != nil && job.Text == m.Text {
		answer(c, &bossv1.Accepted{JobId: job.Id}) // submitted again: it is recorded
		return
	}
	id := jobID(m.Token)
	payload, err := jobPayload(m.Text)
	if err != nil {
		answer(c, &bossv1.Rejected{Reason: err.Error()})
		return
	}
	b.async(c, func(ctx context.Context) (any, error) {
		return b.jobs.Put(ctx, id, payload)
	}, func(_ any, err error) {
		if errors.Is(err, workqueue.ErrKeyUsed) {
			answer(c, &bossv1.Rejected{Reason: "the token " + m.Token + " already names a different job"})
			return
		}
		if err != nil {
			b.log.Error("cannot record job", "token", m.Token, "err", err)
			answer(c, &bossv1.Rejected{
				Reason: "the boss cannot record the job in ZooKeeper: " + err.Error() + "; it may or may not be recorded: submitting it again with the same token records it at most once",
				Retry:  true,
			})
			return
		}
		// Only now, with the job in ZooKeeper, may the requestor go away.
		// The feeder delivers it (a watch fires on the new item).
		answer(c, &bossv1.Accepted{JobId: id})
	})
}

// answer responds to a Submit, and counts the job as accepted or rejected.
func answer(c actor.Context, m any) {
	switch m.(type) {
	case *bossv1.Accepted:
		metrics.Jobs(metrics.JobAccepted, 1)
	case *bossv1.Rejected:
		metrics.Jobs(metrics.JobRejected, 1)
	}
	c.Respond(m)
}

func (b *bossActor) onDone(c actor.Context, m *bossv1.Done) {
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
	if item, ok := b.items[m.JobId]; ok {
		// The feeder removes the item; if it cannot, the job stays in the
		// queue and a later boss runs it again.
		delete(b.items, m.JobId)
		c.Send(b.feeder, &workqueuev1.Ack{Id: item})
	}
	if job == nil {
		b.log.Debug("done again", "job", m.JobId, "worker", m.Worker)
		return
	}
	metrics.Jobs(metrics.JobDone, 1)
	b.out.say("Job done: %s (%s) by %s", job.Text, job.Id, m.Worker)
}

// onRefused: a worker has served a boss of a newer term, so this one's
// term is over even if it has not heard so yet. The newer boss has every
// unfinished job, from ZooKeeper: this one stops its feeder, which gives
// back the jobs it holds (else they stay claimed by this boss's session,
// hidden from the newer boss, until this term ends), and takes no more.
func (b *bossActor) onRefused(c actor.Context, m *bossv1.Refused) {
	if m.Epoch <= b.epoch {
		b.log.Warn("a worker refused a task for no reason known", "worker", m.Worker, "job", m.JobId, "epoch", m.Epoch, "mine", b.epoch)
		return
	}
	if !b.deposed {
		b.deposed = true
		b.log.Warn("a worker has served a newer boss; delegating no more", "worker", m.Worker, "epoch", m.Epoch, "mine", b.epoch)
		b.out.say("Worker %s has served a newer boss: I delegate no more.", m.Worker)
		if b.feeder != nil {
			c.Stop(b.feeder)
		}
	}
	delete(b.running, m.JobId)
	metrics.Jobs(metrics.JobRefused, 1)
}

// async runs op, which may wait on ZooKeeper, on a goroutine of its own,
// and then cont inside the actor, through protoactor's ReenterAfter: the
// boss handles other messages meanwhile, and cont may Respond to the
// message being handled now. op's ctx ends after storeTimeout or with the
// term; if the term ends first, cont does not run.
func (b *bossActor) async(c actor.Context, op func(ctx context.Context) (any, error), cont func(any, error)) {
	type outcome struct {
		res any
		err error
	}
	system := c.ActorSystem()
	f := actor.NewFuture(system, storeTimeout+time.Second) // its timeout is a backstop: op ends first
	ctx, cancel := context.WithTimeout(b.ctx, storeTimeout)
	go func() {
		defer cancel()
		res, err := op(ctx)
		system.Root.Send(f.PID(), &outcome{res, err})
	}()
	c.ReenterAfter(f, func(res any, err error) {
		if err != nil {
			cont(nil, err)
			return
		}
		o := res.(*outcome)
		cont(o.res, o.err)
	})
}

// known reports whether the job is queued or delegated.
func (b *bossActor) known(id string) bool { return b.find(id) != nil }

func (b *bossActor) find(id string) *bossv1.Job {
	if a, ok := b.running[id]; ok {
		return a.job
	}
	for _, w := range b.queue {
		if w.job.Id == id {
			return w.job
		}
	}
	return nil
}

// requeue puts jobs back in the queue, oldest first, to be delegated again.
func (b *bossActor) requeue(jobs []*bossv1.Job) {
	metrics.Jobs(metrics.JobRedelegated, len(jobs))
	for _, job := range jobs {
		b.queue = append(b.queue, &waiting{job: job})
	}
	sortWaiting(b.queue)
}

// workerGone puts the jobs of a dead worker back in the queue.
func (b *bossActor) workerGone(who *actor.PID, why string) {
	key := pidString(who)
	delete(b.watching, key)
	b.dead[key] = time.Now().Add(b.cfg.deadGrace)
	var again []*bossv1.Job
	for id, a := range b.running {
		if pidString(a.worker) == key {
			again = append(again, a.job)
			delete(b.running, id)
		}
	}
	if len(again) == 0 {
		return
	}
	b.log.Warn("worker gone; delegating its tasks again", "worker", key, "why", why, "tasks", len(again))
	b.out.say("Worker %s is gone: delegating its %d task(s) again", key, len(again))
	b.requeue(again)
}

// checkAssignments delegates again the jobs not done within assignTimeout.
// Their worker may be slow, or may have restarted under the same PID (same
// address, same name) and forgotten them; no Terminated tells those apart.
func (b *bossActor) checkAssignments() {
	now := time.Now()
	var again []*bossv1.Job
	for id, a := range b.running {
		if now.Sub(a.since) >= b.cfg.assignTimeout {
			b.log.Warn("task not done in time; delegating it again", "job", id, "worker", pidString(a.worker), "timeout", b.cfg.assignTimeout)
			b.out.say("Task %s not done by %s within %v: delegating it again", a.job.Text, pidString(a.worker), b.cfg.assignTimeout)
			again = append(again, a.job)
			delete(b.running, id)
		}
	}
	b.requeue(again)
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
	ctx, cancel := context.WithTimeout(b.ctx, storeTimeout)
	defer cancel()
	pids, err := b.findWorkers(ctx)
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
	ctx, cancel := context.WithTimeout(b.ctx, storeTimeout)
	defer cancel()
	pids, err := b.findWorkers(ctx)
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

// dispatch delegates the queued jobs, round-robin over the workers, each
// with the term's epoch.
func (b *bossActor) dispatch(c actor.Context) {
	if !b.elected || b.deposed || len(b.queue) == 0 {
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
	now := time.Now()
	for _, w := range b.queue {
		worker := workers[b.next%len(workers)]
		b.next++
		key := pidString(worker)
		if !b.watching[key] {
			b.watching[key] = true
			c.Watch(worker)
		}
		b.running[w.job.Id] = assignment{job: w.job, worker: worker, since: now}
		b.out.say("Delegating task: %s to %s", w.job.Text, key)
		c.Send(worker, &bossv1.Work{Job: w.job, Boss: self, Epoch: b.epoch})
	}
	metrics.Jobs(metrics.JobDelegated, len(b.queue))
	b.queue = nil
}

// sortWaiting orders jobs by submission time.
func sortWaiting(ws []*waiting) {
	slices.SortStableFunc(ws, func(x, y *waiting) int {
		switch {
		case jobBefore(x.job, y.job):
			return -1
		case jobBefore(y.job, x.job):
			return 1
		}
		return 0
	})
}
