package workqueue_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// taking is a Take running in the background.
type taking struct {
	got    chan *workqueue.Item
	cancel context.CancelFunc
}

// startTake starts a Take on q; the test's end cancels it.
func startTake(t *testing.T, q *workqueue.Queue) *taking {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tk := &taking{got: make(chan *workqueue.Item, 1), cancel: cancel}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		it, err := q.Take(ctx)
		if err != nil {
			it = nil
		}
		tk.got <- it
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return tk
}

// line starts a Take on each of qs in turn, each once the one before it
// waits in the line, so that they line up in the order of qs.
func line(t *testing.T, c *zk.Conn, waiters string, qs ...*workqueue.Queue) []*taking {
	t.Helper()
	tks := make([]*taking, len(qs))
	for i, q := range qs {
		tks[i] = startTake(t, q)
		eventuallyChildren(t, c, waiters, i+1)
		zktest.Eventually(t, 10*time.Second, func() error {
			if workqueue.Place(q) == "" {
				return fmt.Errorf("Take %d does not wait in line yet", i)
			}
			return nil
		})
	}
	return tks
}

// gotOne waits until exactly one of tks has taken an item, and returns its
// index and the item.
func gotOne(t *testing.T, tks []*taking) (int, *workqueue.Item) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for i, tk := range tks {
			select {
			case it := <-tk.got:
				if it == nil {
					t.Fatalf("Take %d ended without an item", i)
				}
				return i, it
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatal("no waiting Take got the item")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// countItemsEvents counts the watch events on items/ that s receives.
func countItemsEvents(t *testing.T, s *cluster.Session, items string) *atomic.Int64 {
	n := &atomic.Int64{}
	stop := s.OnWatchEvent(func(ev zk.Event) {
		if ev.Path == items {
			n.Add(1)
		}
	})
	t.Cleanup(stop)
	return n
}

// One Put wakes one of N handles (on N sessions) waiting on an empty queue:
// only the first in line has a watch on items/, so exactly one items/
// notification is sent, and the requests of all N handles together do not
// grow with N: the handles behind the next in line make none. Then the
// next in line serves the next Put. (The items stay held: an Ack would
// wake the first in line as well.)
func TestOnePutWakesOneWaiter(t *testing.T) {
	const n = 6
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	items, waiters := root+"/queues/jobs/items", root+"/queues/jobs/waiters"
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	var (
		sessions []*cluster.Session
		qs       []*workqueue.Queue
		events   []*atomic.Int64
	)
	for i := range n {
		s := dial(t, zkc.Addrs(), 4*time.Second)
		sessions = append(sessions, s)
		qs = append(qs, open(t, s, root, "jobs", fmt.Sprint("taker", i)))
		events = append(events, countItemsEvents(t, s, items))
	}
	tks := line(t, c, waiters, qs...)
	for round := range 2 {
		var before []int64
		for _, s := range sessions {
			before = append(before, plumbing.Requests(s))
		}
		put(t, producer, fmt.Sprint("job", round), "do it")
		i, it := gotOne(t, tks)
		if i != round {
			t.Fatalf("round %d: Take %d got the item, want %d (the first in line)", round, i, round)
		}
		if it.Key != fmt.Sprint("job", round) {
			t.Fatalf("round %d: took %s", round, it.ID)
		}
		zktest.Eventually(t, 10*time.Second, func() error {
			if p := workqueue.Place(qs[round+1]); p != "first" {
				return fmt.Errorf("the next in line waits %q, not first yet", p)
			}
			return nil
		})
		var woken int64
		for j, s := range sessions {
			roundTrip(t, s) // a session sees a watch event before the reply to a later request
			if j >= round {
				woken += events[j].Load()
			}
			events[j].Store(0)
		}
		if woken != 1 {
			t.Fatalf("round %d: %d items/ notifications to the %d waiting handles for one Put, want 1", round, woken, n-round)
		}
		for j, s := range sessions {
			r := plumbing.Requests(s) - before[j] - 1 // roundTrip
			switch {
			case j == round && r > 6: // list items and claims, read, claim, leave the line
				t.Fatalf("round %d: the taker made %d requests, want at most 6", round, r)
			case j == round+1 && r > 3: // list the line, list items
				t.Fatalf("round %d: the next in line made %d requests, want at most 3", round, r)
			case j > round+1 && r != 0:
				t.Fatalf("round %d: handle %d, waiting behind the next in line, made %d requests, want 0", round, j, r)
			}
		}
	}
}

// roundTrip makes one request on s.
func roundTrip(t *testing.T, s *cluster.Session) {
	t.Helper()
	if err := s.Do(ctxT(t), cluster.Op{Name: "exists", Path: "/"}, func(c *zk.Conn) error {
		_, _, err := c.Exists("/")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// lineOfThree lines up A (through a proxy, with a short session), B and C
// on an empty queue, in that order, and returns a plain client, the
// proxy, A's session and the Takes.
func lineOfThree(t *testing.T) (c *zk.Conn, root string, proxy *zktest.Proxy, sa *cluster.Session, producer *workqueue.Queue, qs []*workqueue.Queue, tks []*taking) {
	zkc := zktest.Shared(t)
	root = zktest.Root(t)
	c = zkc.Connect(t)
	proxy = zktest.NewProxy(t, zkc.Addrs()[0])
	sa = dial(t, []string{proxy.Addr()}, time.Second)
	producer = open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	qs = []*workqueue.Queue{
		open(t, sa, root, "jobs", "a"),
		open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b"),
		open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "c"),
	}
	tks = line(t, c, root+"/queues/jobs/waiters", qs...)
	if p := workqueue.Place(qs[0]); p != "first" {
		t.Fatalf("A waits %q, want first", p)
	}
	return c, root, proxy, sa, producer, qs, tks
}

// The first waiter's session expires: its waiter znode goes with it, B
// moves up and takes the item put after the expiry; A queues up again, at
// the back, on its new session, and C does not move.
func TestLineFirstWaiterExpires(t *testing.T) {
	c, root, proxy, sa, producer, qs, tks := lineOfThree(t)
	zktest.Shared(t).ExpireSession(t, proxy, sa.ID())
	put(t, producer, "job", "do it")
	if i, it := gotOne(t, tks); i != 1 || it.Key != "job" {
		t.Fatalf("Take %d got %s, want B (next in line after A's session expired)", i, it.ID)
	}
	// A waits again, behind C.
	eventuallyChildren(t, c, root+"/queues/jobs/waiters", 2)
	zktest.Eventually(t, 20*time.Second, func() error {
		if p, q := workqueue.Place(qs[0]), workqueue.Place(qs[2]); p != "behind" || q != "first" {
			return fmt.Errorf("A waits %q, C %q: want behind and first", p, q)
		}
		return nil
	})
	put(t, producer, "job2", "do it too")
	if i, it := gotOne(t, []*taking{tks[0], tks[2]}); i != 1 || it.Key != "job2" {
		t.Fatalf("Take %d of A, C got %s, want C", i, it.ID)
	}
}

// The first waiter is cut off (its connection dropped and refused; its
// session lives until it expires): an item put meanwhile is not stranded.
// Once A's session has expired, B is first and takes it.
func TestLineFirstWaiterCutOff(t *testing.T) {
	_, _, proxy, _, producer, _, tks := lineOfThree(t)
	proxy.Cut()
	put(t, producer, "job", "do it")
	if i, it := gotOne(t, tks); i != 1 || it.Key != "job" {
		t.Fatalf("Take %d got %s, want B (A is cut off)", i, it.ID)
	}
	proxy.Restore()
}

// Somebody deletes B's waiter znode: C, which watched it, moves up behind
// A. When A stops waiting (its Take gives up), C is first; B, which
// learns it left the line when the waiter before it goes, queues up again.
// Two items put then are taken by B and C: none is stranded.
func TestLineWaiterDeletedBySomeoneElse(t *testing.T) {
	c, root, _, _, producer, qs, tks := lineOfThree(t)
	waiters := root + "/queues/jobs/waiters"
	names := eventuallyChildren(t, c, waiters, 3)
	line := slices.Clone(names)
	slices.SortFunc(line, func(a, b string) int { return strings.Compare(a[len(a)-10:], b[len(b)-10:]) }) // by sequence number
	if err := c.Delete(waiters+"/"+line[1], -1); err != nil {
		t.Fatal(err)
	}
	tks[0].cancel()
	if it := <-tks[0].got; it != nil {
		t.Fatalf("A's cancelled Take got %s", it.ID)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if p, q := workqueue.Place(qs[1]), workqueue.Place(qs[2]); p != "behind" || q != "first" {
			return fmt.Errorf("B waits %q, C %q: want behind and first", p, q)
		}
		return nil
	})
	eventuallyChildren(t, c, waiters, 2)
	put(t, producer, "job1", "one")
	put(t, producer, "job2", "two")
	got := map[string]bool{}
	for _, tk := range tks[1:] {
		select {
		case it := <-tk.got:
			if it == nil {
				t.Fatal("a Take ended without an item")
			}
			got[it.Key] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("an item is stranded: taken so far %v", got)
		}
	}
	if !got["job1"] || !got["job2"] {
		t.Fatalf("took %v, want job1 and job2", got)
	}
}

// A waiter that stops waiting (its ctx ends) leaves the line at once: the
// one behind it is first and takes the next item.
func TestLineWaiterStops(t *testing.T) {
	c, root, _, _, producer, _, tks := lineOfThree(t)
	tks[0].cancel()
	if it := <-tks[0].got; it != nil {
		t.Fatalf("A's cancelled Take got %s", it.ID)
	}
	eventuallyChildren(t, c, root+"/queues/jobs/waiters", 2)
	put(t, producer, "job", "do it")
	if i, it := gotOne(t, tks[1:]); i != 0 || it.Key != "job" {
		t.Fatalf("Take %d of B, C got %s, want B", i, it.ID)
	}
}

// A Take gives up while its waiter's create is in flight, and the create
// lands (the server's reply is lost): the waiter, which no Take stands
// behind, is deleted once the outcome is known, so that it does not head
// the line for as long as its session lives while nobody watches the
// items. B, waiting behind it, then takes the next item.
func TestLineLateWaiterIsRemoved(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sa := dial(t, []string{proxy.Addr()}, 4*time.Second)
	qa := open(t, sa, root, "jobs", "a")
	qb := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b")
	session := sa.ID()
	// The line's directory exists (A's create is then one request, which
	// the server applies while its reply is dropped).
	if _, err := c.Create(waiters, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	defer workqueue.SetTestHookBeforeJoin(func() { once.Do(proxy.DropFromTarget) })()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaveUp := make(chan error, 1)
	go func() {
		_, err := qa.Take(ctx)
		gaveUp <- err
	}()
	eventuallyChildren(t, c, waiters, 1) // A's create landed; its reply is dropped
	tb := startTake(t, qb)
	eventuallyChildren(t, c, waiters, 2)
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("A's Take got an item")
	}
	proxy.Restore()
	eventuallyChildren(t, c, waiters, 1) // B's
	if sa.ID() != session {
		t.Fatalf("A's session changed (%#x, was %#x): its waiter went with the session, not by the late delete", sa.ID(), session)
	}
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	put(t, producer, "job", "do it")
	if i, it := gotOne(t, []*taking{tb}); i != 0 || it.Key != "job" {
		t.Fatalf("B got %v", it)
	}
}

// A lone waiter's session expires: it queues up again on its new session,
// first again, with its watches set anew, and takes the next item.
func TestLineLoneWaiterExpires(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sa := dial(t, []string{proxy.Addr()}, time.Second)
	qa := open(t, sa, root, "jobs", "a")
	tks := line(t, c, root+"/queues/jobs/waiters", qa)
	old := sa.ID()
	zkc.ExpireSession(t, proxy, old)
	zktest.Eventually(t, 20*time.Second, func() error {
		names, _, err := c.Children(root + "/queues/jobs/waiters")
		if err != nil || len(names) != 1 {
			return fmt.Errorf("waiters %v, %v: want A's, on its new session", names, err)
		}
		_, stat, err := c.Get(root + "/queues/jobs/waiters/" + names[0])
		if err != nil || stat.EphemeralOwner == old || workqueue.Place(qa) != "first" {
			return fmt.Errorf("A's waiter is not on its new session, first, yet (%v)", err)
		}
		return nil
	})
	put(t, open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer"), "job", "do it")
	if _, it := gotOne(t, tks); it.Key != "job" {
		t.Fatalf("A took %s", it.ID)
	}
}
