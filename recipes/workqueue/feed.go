package workqueue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// DefaultWindow is FeedOptions.Window's default.
const DefaultWindow = 16

// MaxWindow bounds FeedOptions.Window: the feeder fills a slot per
// delivery when it starts (a window of 1<<40 kept it filling for hours).
const MaxWindow = 1 << 16

// answerTimeout bounds one attempt at the Ack or Release of a delivery;
// an attempt that fails for want of ZooKeeper is retried (a var for tests).
var answerTimeout = 10 * time.Second

// FeedOptions configures Feed.
type FeedOptions struct {
	// Window bounds the deliveries the consumer holds unanswered at once
	// (default DefaultWindow, at most MaxWindow): the feeder takes no more
	// until it answers.
	Window int
}

// Feed spawns, with spawner (an actor.Context, to make it that actor's
// child, or a RootContext), a feeder for the consumer actor: it takes items
// from the queue and sends each to consumer as a *workqueuev1.Delivery,
// oldest first. The consumer answers each, whenever it is done, with a
// *workqueuev1.Ack (remove the item) or a *workqueuev1.Release (give it
// back) sent to Delivery.feeder; at most Window deliveries are unanswered
// at once.
//
// After the session's end (an expiry), the items delivered before are
// free again: they come again, to this consumer or another, with one more
// attempt; an answer to an item delivered twice applies to the last take.
//
// The feeder follows the consumer: it watches it and stops when it stops,
// and it stops when the Queue or its session is closed. Stopping the feeder (the PID
// returned) or closing the Queue gives back the items it holds unanswered.
// With a nil spawner or consumer, Feed does nothing and returns nil.
// Failures to take are logged and retried with backoff; so are answers
// that cannot reach ZooKeeper, while the session that holds the item lives
// (an item must not stay claimed by a live session nobody answers for).
func (q *Queue) Feed(spawner actor.SpawnerContext, consumer *actor.PID, opts FeedOptions) *actor.PID {
	if spawner == nil || consumer == nil {
		// Nobody to spawn the feeder or to deliver to: the feeder would
		// panic watching a nil PID.
		q.log.Warn("Feed with a nil spawner or consumer: ignored")
		return nil
	}
	window := opts.Window
	if window <= 0 {
		window = DefaultWindow
	}
	window = min(window, MaxWindow)
	return spawner.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &feeder{q: q, consumer: consumer, window: window, held: map[string]*Item{}}
	}))
}

// feeder is the actor Feed spawns. Its taking goroutine holds a slot per
// unanswered delivery; answers run on goroutines of their own (the queue's
// WaitGroup), so Receive never waits on ZooKeeper.
type feeder struct {
	q        *Queue
	consumer *actor.PID
	window   int

	cancel context.CancelFunc
	slots  chan struct{} // one per delivery the consumer may hold

	mu      sync.Mutex
	held    map[string]*Item // delivered, unanswered
	stopped bool
}

// Receive implements actor.Actor.
func (f *feeder) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		c.Watch(f.consumer)
		var ctx context.Context
		ctx, f.cancel = context.WithCancel(context.Background())
		f.slots = make(chan struct{}, f.window)
		for range f.window {
			f.slots <- struct{}{}
		}
		// Known to the queue before it takes anything, so that Close gives
		// back whatever it comes to hold.
		f.q.addFeeder(f)
		if f.q.spawn(func() { f.take(ctx, c.ActorSystem(), c.Self()) }) != nil {
			c.Stop(c.Self()) // the queue is closed
		}
	case *workqueuev1.Ack:
		f.answer(m.Id, true)
	case *workqueuev1.Release:
		f.answer(m.Id, false)
	case *actor.Terminated:
		if m.Who.Equal(f.consumer) {
			c.Stop(c.Self())
		}
	case *actor.Stopping:
		f.cancel()
		// A closed queue gives back what the feeder holds in Close.
		_ = f.q.spawn(func() {
			left := f.stop()
			f.q.removeFeeder(f) // what it held is in hand
			for _, it := range left {
				f.q.settle(it, false)
			}
		})
	case *actor.Stopped:
		// Not while it holds items (the queue was closed before the spawn
		// above): Close, whose sweep may not have run yet, releases them.
		f.mu.Lock()
		holds := len(f.held) > 0
		f.mu.Unlock()
		if !holds {
			f.q.removeFeeder(f)
		}
	}
}

// giveBack releases what the feeder holds, and takes no more. Whoever
// calls it first (the feeder stopping, or Close) gives the items back.
func (f *feeder) giveBack(ctx context.Context) {
	for _, it := range f.stop() {
		if err := f.q.Release(ctx, it); err != nil {
			f.q.log.Warn("giving back a delivery; it comes back with the session's end", "item", it.ID, "err", err)
		}
	}
}

// stop makes the feeder take no more, and returns what it held.
func (f *feeder) stop() map[string]*Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	left := f.held
	f.held = map[string]*Item{}
	return left
}

// take takes items while the feeder runs and a slot is free, and delivers
// them.
func (f *feeder) take(ctx context.Context, system *actor.ActorSystem, self *actor.PID) {
	me := &zkactorv1.PID{Address: self.Address, Id: self.Id}
	failures := 0
	for {
		changed := f.q.nextChange() // a new session, among others
		f.voidLost()                // after the snapshot: no session change slips between
		select {
		case <-f.slots:
		case <-changed:
			continue
		case <-f.q.done:
			system.Root.Stop(self) // Close gives back what it holds
			return
		case <-ctx.Done():
			return
		}
		it, err := f.q.Take(ctx)
		if err != nil {
			f.slots <- struct{}{}
			if ctx.Err() != nil {
				return
			}
			if f.q.isClosed() || errors.Is(err, cluster.ErrClosed) {
				// For good: a closed session takes nothing more. Stopping
				// gives back what the feeder holds, if it still can.
				system.Root.Stop(self)
				return
			}
			delay := backoff(failures)
			failures++
			f.q.log.Error("cannot take an item; trying again", "err", err, "attempt", failures, "backoff", delay)
			select {
			case <-time.After(delay):
			case <-f.q.done:
				system.Root.Stop(self)
				return
			case <-ctx.Done():
				return
			}
			continue
		}
		failures = 0
		f.mu.Lock()
		stopped := f.stopped
		_, again := f.held[it.ID]
		if !stopped {
			f.held[it.ID] = it
		}
		f.mu.Unlock()
		if again {
			// Taken again after this session lost its claim (an expiry): the
			// earlier take is void, and its slot free.
			f.slots <- struct{}{}
		}
		if stopped {
			f.finish(it, false, nil)
			return
		}
		system.Root.Send(f.consumer, &workqueuev1.Delivery{
			Id: it.ID, Key: it.Key, Payload: it.Payload, Producer: it.Producer,
			PutAt: timestamppb.New(it.PutAt), Attempts: uint32(it.Attempts), Feeder: me,
		})
	}
}

// voidLost forgets the items whose claims went with an earlier session:
// they are free in the queue again, and their slots here too.
func (f *feeder) voidLost() {
	current := f.q.s.ID()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, it := range f.held {
		if it.session != current {
			delete(f.held, id)
			f.slots <- struct{}{} // a slot per held item: never blocks
		}
	}
}

// answer acknowledges or releases a delivered item, and frees its slot.
func (f *feeder) answer(id string, ack bool) {
	f.mu.Lock()
	it := f.held[id]
	delete(f.held, id)
	f.mu.Unlock()
	if it == nil {
		f.q.log.Debug("an answer for no item held", "item", id, "ack", ack)
		return
	}
	// The slot is free once ZooKeeper has the answer, so that a released
	// item is free again before the next take looks.
	f.finish(it, ack, func() { f.slots <- struct{}{} }) // a slot per held item: never blocks
}

// finish acknowledges or releases it on a goroutine of the queue's.
// then, if not nil, runs after it.
func (f *feeder) finish(it *Item, ack bool, then func()) {
	err := f.q.spawn(func() {
		f.q.settle(it, ack)
		if then != nil {
			then()
		}
	})
	if err != nil {
		f.q.log.Debug("the queue is closed: the item goes back with the session", "item", it.ID, "ack", ack)
	}
}

// settle acknowledges or releases a delivered item. An attempt that fails
// for want of ZooKeeper (an outage longer than answerTimeout) is tried
// again: given up, it would leave the item claimed by this session, hidden
// from every taker for as long as the session lives. A Release stops
// trying once the session that held the item has ended (its claim went
// with it); an Ack tries until the item is gone or taken by another, or
// the queue is closed.
func (q *Queue) settle(it *Item, ack bool) {
	for attempt := 1; ; attempt++ {
		// Not q.life: Close waits for an attempt under way rather than
		// cut it short (an Ack cut short leaves the item claimed).
		ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
		var err error
		if ack {
			err = q.Ack(ctx, it)
		} else {
			err = q.Release(ctx, it)
		}
		cancel()
		if err == nil {
			return
		}
		retry := isTransient(err) || errors.Is(err, context.DeadlineExceeded)
		if !ack && q.s.ID() != it.session {
			retry = false // the claim went with the session
		}
		if !retry {
			// Unacknowledged, the item goes back with this session's end.
			q.log.Warn("answering a delivery", "item", it.ID, "ack", ack, "err", err)
			return
		}
		delay := backoff(attempt - 1)
		q.log.Warn("answering a delivery; trying again", "item", it.ID, "ack", ack, "err", err, "attempt", attempt, "backoff", delay)
		select {
		case <-time.After(delay):
		case <-q.done:
			return // the item goes back with this session's end
		}
	}
}
