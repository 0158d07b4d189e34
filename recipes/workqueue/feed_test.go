package workqueue_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

func newSystem(t *testing.T) *actor.ActorSystem {
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return testLogger() }),
		actor.WithDeadLetterThrottleInterval(time.Millisecond),
	)
	t.Cleanup(system.Shutdown)
	return system
}

// A consumer actor fed by Feed gets the items in order as Deliveries and
// answers by message: an Ack removes the item, a Release gives it back
// (it comes again, attempt 2). When the consumer stops, the feeder stops
// and gives back what it holds unanswered, for the next taker.
func TestFeedFollowsTheConsumer(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	q := open(t, s, root, "jobs", "fed")
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "other")
	for _, k := range []string{"a", "b", "c"} {
		put(t, other, k, "payload "+k)
	}
	system := newSystem(t)
	got := make(chan *workqueuev1.Delivery, 10)
	consumer := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		d, ok := c.Message().(*workqueuev1.Delivery)
		if !ok {
			return
		}
		got <- d
		feeder := actor.NewPID(d.Feeder.Address, d.Feeder.Id)
		switch {
		case d.Key == "a", d.Key == "b" && d.Attempts > 1:
			c.Send(feeder, &workqueuev1.Ack{Id: d.Id})
		case d.Key == "b":
			c.Send(feeder, &workqueuev1.Release{Id: d.Id})
		}
		// "c" is held, unanswered
	}))
	feeder := q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
	stopped := make(chan struct{})
	system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(feeder)
		case *actor.Terminated:
			if m.Who.Equal(feeder) {
				close(stopped)
			}
		}
	}))
	next := func() *workqueuev1.Delivery {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-time.After(15 * time.Second):
			t.Fatal("no delivery")
			return nil
		}
	}
	var order []string
	for range 4 {
		d := next()
		order = append(order, d.Key+string(rune('0'+d.Attempts)))
		if string(d.Payload) != "payload "+d.Key || d.Producer != "other" {
			t.Errorf("delivery %s: payload %q producer %q", d.Id, d.Payload, d.Producer)
		}
	}
	// b is released and comes back before c: the feeder takes the oldest
	// free item, and one at a time (Window 1).
	if want := "[a1 b1 b2 c1]"; fmt.Sprint(order) != want {
		t.Errorf("deliveries %v, want %s", order, want)
	}
	c := zkc.Connect(t)
	eventuallyChildren(t, c, root+"/queues/jobs/items", 1) // a and b acknowledged

	// The consumer stops: the feeder follows and gives c back.
	if err := system.Root.StopFuture(consumer).Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the feeder did not stop with its consumer")
	}
	it := take(t, other)
	if it.Key != "c" || it.Attempts != 2 {
		t.Fatalf("after the consumer stopped, took %s attempt %d, want c attempt 2", it.Key, it.Attempts)
	}
}

// At least once, fed: when the feeder's session expires while the consumer
// holds an item, the item comes again (attempt 2), and the consumer's Ack
// then removes it.
func TestFeedAfterSessionExpiry(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, time.Second)
	q := open(t, s, root, "jobs", "fed")
	put(t, q, "only", "the one")
	system := newSystem(t)
	got := make(chan *workqueuev1.Delivery, 10)
	consumer := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		d, ok := c.Message().(*workqueuev1.Delivery)
		if !ok {
			return
		}
		got <- d
		if d.Attempts > 1 {
			c.Send(actor.NewPID(d.Feeder.Address, d.Feeder.Id), &workqueuev1.Ack{Id: d.Id})
		}
	}))
	q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
	next := func() *workqueuev1.Delivery {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery")
			return nil
		}
	}
	if d := next(); d.Key != "only" || d.Attempts != 1 {
		t.Fatalf("first delivery %s attempt %d", d.Key, d.Attempts)
	}
	zkc.ExpireSession(t, proxy, s.ID())
	if d := next(); d.Key != "only" || d.Attempts != 2 {
		t.Fatalf("after the expiry: %s attempt %d, want only attempt 2", d.Key, d.Attempts)
	}
	eventuallyChildren(t, zkc.Connect(t), root+"/queues/jobs/items", 0)
}
