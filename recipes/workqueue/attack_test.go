package workqueue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// signalHandler is a slog.Handler that signals every record whose message
// starts with prefix.
type signalHandler struct {
	prefix string
	ch     chan string
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		select {
		case h.ch <- r.Message:
		default:
		}
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// holdingConsumer records the deliveries it gets and answers none.
func holdingConsumer(system *actor.ActorSystem) (*actor.PID, <-chan *workqueuev1.Delivery) {
	got := make(chan *workqueuev1.Delivery, 16)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if d, ok := c.Message().(*workqueuev1.Delivery); ok {
			got <- d
		}
	}))
	return pid, got
}

func waitDelivery(t *testing.T, got <-chan *workqueuev1.Delivery) *workqueuev1.Delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery")
		return nil
	}
}

// watchStop returns a channel closed when pid stops.
func watchStop(system *actor.ActorSystem, pid *actor.PID) <-chan struct{} {
	stopped := make(chan struct{})
	system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(pid)
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				close(stopped)
			}
		}
	}))
	return stopped
}

// Close promised that feeders "give their items back", but the feeder's
// taking goroutine just returned: the deliveries its consumer held stayed
// claimed by the session, which outlives the handle (an actor.Node's), so
// no other taker could have them until the process ended; the feeder
// actor lived on, answering nothing. Close now releases them and the
// feeder stops.
func TestAttackCloseGivesBackFeedersItems(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	q := open(t, s, root, "jobs", "fed")
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "other")
	put(t, other, "held", "unanswered")
	system := newSystem(t)
	consumer, got := holdingConsumer(system)
	feeder := q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
	stopped := watchStop(system, feeder)
	if d := waitDelivery(t, got); d.Key != "held" {
		t.Fatalf("delivered %s", d.Key)
	}
	q.Close() // the session lives on
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	it, err := other.Take(ctx)
	if err != nil {
		t.Fatalf("after the fed handle was closed, its session alive, the item it held is not free: %v", err)
	}
	if it.Key != "held" || it.Attempts != 2 {
		t.Errorf("took %s attempt %d, want held attempt 2", it.Key, it.Attempts)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the feeder lives on after Close")
	}
}

// A consumer's Ack that cannot reach ZooKeeper within answerTimeout was
// logged and dropped: the item stayed claimed by the feeder's session, so
// neither removed nor ever delivered again while that session lived (it
// outlives the outage). The answer is now tried again until it lands.
func TestAttackAckAcrossAnOutageLands(t *testing.T) {
	defer workqueue.SetAnswerTimeout(300 * time.Millisecond)()
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, 8*time.Second)
	failed := &signalHandler{prefix: "answering a delivery", ch: make(chan string, 1)}
	q, err := workqueue.Open(ctxT(t), s, "jobs", workqueue.Options{Root: root, Producer: "fed", Logger: slog.New(failed)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	put(t, q, "job", "do it")
	system := newSystem(t)
	consumer, got := holdingConsumer(system)
	q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
	d := waitDelivery(t, got)
	session := s.ID()

	proxy.Blackhole()
	system.Root.Send(actor.NewPID(d.Feeder.Address, d.Feeder.Id), &workqueuev1.Ack{Id: d.Id})
	select {
	case <-failed.ch: // the first attempt failed
	case <-time.After(20 * time.Second):
		t.Fatal("the Ack neither failed nor landed during the outage")
	}
	proxy.Restore()
	c := zkc.Connect(t)
	eventuallyChildren(t, c, root+"/queues/jobs/items", 0)
	eventuallyChildren(t, c, root+"/queues/jobs/claims", 0)
	if s.ID() != session {
		t.Fatalf("the session changed (%#x, was %#x): the test needs it to outlive the outage", s.ID(), session)
	}
}

// A take that gave up (its ctx ended) records its claim as a stray, and a
// later take removed every stray claim of this handle on that item,
// whoever made it: when the late outcome of an abandoned take on item X
// arrived after a later take of this handle had claimed X (the abandoned
// multi failed, X was freed, the next take got it), the take after that
// deleted the live claim, and another taker got X while it was held: two
// holders. Strays now carry the abandoned take's token.
func TestAttackStrayOfAnEarlierTakeSparesALiveClaim(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b")
	put(t, other, "x", "first")
	put(t, other, "y", "second")
	held := take(t, q)
	if held.Key != "x" {
		t.Fatalf("took %s, want x", held.Key)
	}
	workqueue.AddStray(q, held.ID, "an-abandoned-take")
	if it := take(t, q); it.Key != "y" { // the take sweeps the strays first
		t.Fatalf("took %s, want y", it.Key)
	}
	c := zkc.Connect(t)
	if names := children(t, c, root+"/queues/jobs/claims"); len(names) != 2 {
		t.Fatalf("claims %v: the live claim on %s was swept as a stray", names, held.ID)
	}
	empty(t, other)
	if err := q.Ack(ctxT(t), held); err != nil {
		t.Fatalf("Ack of the held item: %v", err)
	}
}

// A feeder whose consumer stops while its take's claim is in flight: the
// server makes the claim, the reply comes after the take gave up. The
// stray was only removed by the next take of the handle, and a stopped
// feeder makes none: the item stayed hidden while the session lived.
func TestAttackClaimOfAStoppedFeederIsRemoved(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, 10*time.Second)
	q := open(t, s, root, "jobs", "fed")
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "other")
	put(t, other, "job", "do it")
	c := zkc.Connect(t)
	claims := root + "/queues/jobs/claims"

	system := newSystem(t)
	consumer, got := holdingConsumer(system)
	proxy.Delay(3 * time.Second) // every reply comes late
	feeder := q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
	stopped := watchStop(system, feeder)
	eventuallyChildren(t, c, claims, 1) // the server has the claim; its reply is on its way
	if err := system.Root.StopFuture(consumer).Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the feeder did not stop with its consumer")
	}
	select {
	case d := <-got:
		t.Fatalf("delivered %s before the consumer stopped: the claim's reply was not late", d.Id)
	default:
	}
	proxy.Delay(0)
	eventuallyChildren(t, c, claims, 0)
	if it := take(t, other); it.Key != "job" {
		t.Fatalf("took %s", it.Key)
	}
}

// go-zookeeper cannot remove a watch and keeps a channel for every one a
// request sets. Every take set a watch on items/ and one on claims/; a
// take and a release change claims/ but not items/, so a consumer that
// releases (or a caller whose takes time out on an empty queue) grew the
// client's memory by a channel per take until the next put or ack. A take
// now sets a watch only where none of its handle's is armed.
func TestAttackTakesLeaveNoPileOfWatches(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	q := open(t, s, root, "jobs", "a")
	items, claims := root+"/queues/jobs/items", root+"/queues/jobs/claims"
	const rounds = 20
	for range rounds { // an empty queue: each take times out
		empty(t, q)
	}
	if n := workqueue.ClientWatches(s.Conn(), items); n > 1 {
		t.Errorf("after %d takes from an empty queue: %d watches on items/, want at most 1", rounds, n)
	}
	put(t, q, "job", "again and again")
	for range rounds {
		it := take(t, q)
		if err := q.Release(ctxT(t), it); err != nil {
			t.Fatal(err)
		}
	}
	if i, c := workqueue.ClientWatches(s.Conn(), items), workqueue.ClientWatches(s.Conn(), claims); i > 1 || c > 1 {
		t.Errorf("after %d take/release rounds: %d watches on items/ and %d on claims/, want at most 1 each", rounds, i, c)
	}
	// The armed watches still wake a waiting take.
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b")
	held := take(t, q)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		it, err := q.Take(ctx)
		if err == nil && it.Key != "next" {
			err = fmt.Errorf("took %s, want next", it.Key)
		}
		done <- err
	}()
	put(t, other, "next", "wakes it")
	if err := <-done; err != nil {
		t.Fatalf("a waiting take after the rounds: %v", err)
	}
	if err := q.Ack(ctxT(t), held); err != nil && !errors.Is(err, workqueue.ErrNotHeld) {
		t.Fatal(err)
	}
}

// An item this session may read but not write (another client made it
// with a read-only ACL) failed every take's claim with NoAuth, and Take
// returned the error: the oldest free item is tried first, so one such
// item wedged the queue for every taker, a feeder retrying it forever. It
// is now skipped, as an item the session may not read is.
func TestAttackUnwritableItemDoesNotWedgeTheQueue(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	c := zkc.Connect(t)
	data, err := proto.Marshal(&workqueuev1.Item{Key: "evil", Payload: []byte("read only")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(root+"/queues/jobs/items/evil-0000000000", data, 0, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatal(err)
	}
	put(t, q, "good", "takeable")
	if it := take(t, q); it.Key != "good" {
		t.Fatalf("took %s, want good", it.Key)
	}
}

// Someone deleted claims/ (Put and Take make items/ and keys/ again when
// they are gone, not claims/): every take failed listing it, forever.
func TestAttackDeletedClaimsDirIsMadeAgain(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	c := zkc.Connect(t)
	if err := c.Delete(root+"/queues/jobs/claims", -1); err != nil {
		t.Fatal(err)
	}
	put(t, q, "job", "still takeable")
	if it := take(t, q); it.Key != "job" {
		t.Fatalf("took %s, want job", it.Key)
	}
}

// Nil inputs are refused with an error, not a panic: Open without a
// session, Ack and Release of no item, Feed of no consumer (whose feeder
// panicked in Started and again in Stopping, and would send to a nil PID).
func TestAttackNilInputs(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	if q, err := workqueue.Open(ctxT(t), nil, "jobs", workqueue.Options{Root: root}); err == nil {
		q.Close()
		t.Fatal("Open without a session: no error")
	}
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	if err := q.Ack(ctxT(t), nil); err == nil {
		t.Error("Ack(nil): no error")
	}
	if err := q.Release(ctxT(t), nil); err == nil {
		t.Error("Release(nil): no error")
	}
	system := newSystem(t)
	if pid := q.Feed(system.Root, nil, workqueue.FeedOptions{}); pid != nil {
		t.Errorf("Feed of a nil consumer spawned %v", pid)
	}
	if pid := q.Feed(nil, system.NewLocalPID("nobody"), workqueue.FeedOptions{}); pid != nil {
		t.Errorf("Feed with a nil spawner spawned %v", pid)
	}
}

// The producer goes into every item and claim record: invalid UTF-8 made
// every Put and every Take fail to encode (a feeder retried forever), and
// a huge one made every request too large for ZooKeeper. Open refuses them.
func TestAttackBadProducerRefusedAtOpen(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	for _, producer := range []string{"\xff", strings.Repeat("p", 2<<20)} {
		q, err := workqueue.Open(ctxT(t), s, "jobs", workqueue.Options{Root: root, Producer: producer, Logger: testLogger()})
		if err == nil {
			_, perr := q.Put(ctxT(t), "k", []byte("x"))
			q.Close()
			t.Errorf("Open with a producer of %d bytes (valid UTF-8: %v): no error; its Put: %v", len(producer), producer != "\xff", perr)
		}
	}
}

// The session closed under a running feeder (its node stopped before the
// Queue was closed): every Take failed with cluster.ErrClosed, and the
// feeder retried it, logging an error every few seconds, for as long as the
// process lived. It now stops.
func TestAttackFeederStopsWithTheSession(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	q := open(t, s, root, "jobs", "fed")
	system := newSystem(t)
	consumer, _ := holdingConsumer(system)
	feeder := q.Feed(system.Root, consumer, workqueue.FeedOptions{})
	stopped := watchStop(system, feeder)
	empty(t, q) // the feeder is waiting on an empty queue by now, or soon
	s.Close()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("the feeder lives on, taking from a closed session")
	}
}

// A huge Window (a caller's "no limit") made the feeder fill a slot per
// possible delivery in Started, one at a time: it delivered nothing for
// hours. It is capped at MaxWindow.
func TestAttackHugeWindowStillDelivers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "fed")
	put(t, q, "job", "do it")
	system := newSystem(t)
	consumer, got := holdingConsumer(system)
	q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1 << 40})
	if d := waitDelivery(t, got); d.Key != "job" {
		t.Fatalf("delivered %s", d.Key)
	}
}

// ZooKeeper's sequence number is items/'s signed 32-bit child version,
// moved on by every create and delete below it: after 2^31 (a billion
// items put and acknowledged, weeks at a thousand a second) it wraps, and
// the names read "<key>--2147483648" .. "<key>--000000001". Those did not
// parse as items: every later item was skipped as "not an item's name",
// never taken. The names of a queue across the wrap, made here directly,
// are taken, and in the order ZooKeeper made them.
func TestAttackSequenceWrapKeepsTheQueueGoing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	c := zkc.Connect(t)
	names := []string{"a-2147483646", "b-2147483647", "c--2147483648", "d--2147483647", "e--000000001"}
	for i := len(names) - 1; i >= 0; i-- { // creation order does not matter, the names do
		key := names[i][:1]
		data, err := proto.Marshal(&workqueuev1.Item{Key: key, Payload: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Create(root+"/queues/jobs/items/"+names[i], data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range names {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		it, err := q.Take(ctx)
		cancel()
		if err != nil {
			t.Fatalf("took %v, then: %v", got, err)
		}
		got = append(got, it.Key)
	}
	if fmt.Sprint(got) != "[a b c d e]" {
		t.Errorf("took %v, want [a b c d e]", got)
	}
	if _, err := q.Put(ctxT(t), "ends-", []byte("x")); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Put with a key ending in '-': %v, want ErrBadName", err)
	}
}

// Feeders come and go on a long-lived Queue (an actor per request): one
// that stops, even holding a delivery, is forgotten by the queue, which
// keeps only the running ones for Close.
func TestAttackStoppedFeedersAreForgotten(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "fed")
	system := newSystem(t)
	for i := range 5 {
		put(t, q, fmt.Sprint("k", i), "x")
		consumer, got := holdingConsumer(system)
		q.Feed(system.Root, consumer, workqueue.FeedOptions{Window: 1})
		waitDelivery(t, got)
		if err := system.Root.StopFuture(consumer).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	zktest.Eventually(t, 15*time.Second, func() error {
		if n := workqueue.Feeders(q); n != 0 {
			return fmt.Errorf("the queue knows %d feeders, all stopped", n)
		}
		return nil
	})
}
