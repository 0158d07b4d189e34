package workqueue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// Garbage in waiters/ named like a waiter, older than every real one (a
// znode another client made by hand): a persistent one, which no session
// takes along, and an ephemeral one of a live foreign session whose data
// is not a Waiter. Each would head the line for good: the real waiter
// behind it watched it, never became first, and nobody watched the items,
// so every item put was stranded while a Take waited. They are passed
// over: the waiting Take is first and takes the item.
func TestAttackLineGarbageWaitersStrandNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	qa := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	if _, err := c.Create(waiters, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// A real Waiter record, but persistent; then an ephemeral one of this
	// (live) plain client's session that is no Waiter.
	rec, err := proto.Marshal(&workqueuev1.Waiter{Taker: "by hand", Since: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(waiters+"/0000000000000000-0000000000", rec, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(waiters+"/0000000000000001-0000000001", []byte("junk"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	tks := []*taking{startTake(t, qa)}
	eventuallyChildren(t, c, waiters, 3)
	zktest.Eventually(t, 10*time.Second, func() error {
		if workqueue.Place(qa) == "" {
			return fmt.Errorf("A's Take does not wait in line yet")
		}
		return nil
	})
	put(t, producer, "job", "do it")
	if _, it := gotOne(t, tks); it.Key != "job" {
		t.Fatalf("A took %s", it.ID)
	}
}

// A waiter's predecessor leaves between the listing of the line and the
// watch set on it. An exists watch on a znode that is gone watches for its
// creation, which never comes (its name had a sequence number): go-
// zookeeper kept the channel, and the server the watch, for the session's
// life, one more each time the line moved under a waiter's feet. No watch
// may be left on the departed predecessor.
func TestAttackLineDepartedPredecessorLeavesNoWatch(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	sb := dial(t, zkc.Addrs(), 4*time.Second)
	qa := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	qb := open(t, sb, root, "jobs", "b")
	tks := line(t, c, waiters, qa)
	names := eventuallyChildren(t, c, waiters, 1)
	pred := waiters + "/" + names[0]
	var once sync.Once
	defer workqueue.SetTestHookBeforeWatchPred(func(p string) {
		if p == pred {
			once.Do(func() { tks[0].cancel(); eventuallyChildren(t, c, waiters, 1) })
		}
	})()
	tb := startTake(t, qb)
	zktest.Eventually(t, 20*time.Second, func() error {
		if p := workqueue.Place(qb); p != "first" {
			return fmt.Errorf("B waits %q, want first (A left)", p)
		}
		return nil
	})
	if n := workqueue.ClientWatches(sb.Conn(), pred); n != 0 {
		t.Fatalf("B holds %d watches on A's departed waiter %s, want 0", n, pred)
	}
	put(t, open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer"), "job", "do it")
	if _, it := gotOne(t, []*taking{tb}); it.Key != "job" {
		t.Fatalf("B took %s", it.ID)
	}
}

// A Take whose waiter create is applied but whose reply is lost, and whose
// look for the waiter afterwards fails too (ZooKeeper out of reach for
// longer than the RequestTimeout; the Take's ctx has no deadline, as a
// feeder's has not), returns an error while the session lives on. The
// waiter it made must not stay: at the head of the line, with no Take
// behind it, it would strand every item put for as long as the session
// lives (an actor.Node's: the process's life). It is deleted once
// ZooKeeper can be reached, and a Take waiting behind it gets the item.
func TestAttackLineJoinGivenUpLeavesNoWaiter(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	sa, err := cluster.Dial(ctx, cluster.Config{
		Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second,
		RequestTimeout: 3 * time.Second, Logger: testLogger(),
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sa.Close)
	session := sa.ID()
	qa := open(t, sa, root, "jobs", "a")
	if _, err := c.Create(waiters, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	defer workqueue.SetTestHookBeforeJoin(func() { once.Do(proxy.DropFromTarget) })()
	takeCtx, stop := context.WithCancel(context.Background()) // no deadline, as a feeder's
	defer stop()
	if it, err := qa.Take(takeCtx); err == nil {
		t.Fatalf("A's Take got %s through a one-way partition", it.ID)
	} else {
		t.Logf("A's Take: %v", err)
	}
	if takeCtx.Err() != nil {
		t.Fatal("the Take's ctx ended")
	}
	eventuallyChildren(t, c, waiters, 1) // A's create was applied
	proxy.Restore()
	qb := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b")
	tb := startTake(t, qb)
	zktest.Eventually(t, 20*time.Second, func() error {
		if workqueue.Place(qb) == "" {
			return fmt.Errorf("B's Take does not wait in line yet")
		}
		return nil
	})
	eventuallyChildren(t, c, waiters, 1) // B's only: A's is gone
	if sa.ID() != session {
		t.Fatalf("A's session changed (%#x, was %#x): its waiter went with the session, not by a delete", sa.ID(), session)
	}
	put(t, open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer"), "job", "do it")
	if _, it := gotOne(t, []*taking{tb}); it.Key != "job" {
		t.Fatalf("B took %s", it.ID)
	}
}

// Two handles of one process on one session (their watch events go to
// both): they line up one behind the other, and two items put are taken
// one by each, the second by the handle that was behind, once the first
// has left the line. Then the first handle, taking again, lines up at the
// back: behind the other.
func TestAttackLineTwoHandlesOnOneSession(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	s := dial(t, zkc.Addrs(), 4*time.Second)
	qx, qy := open(t, s, root, "jobs", "x"), open(t, s, root, "jobs", "y")
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	tks := line(t, c, waiters, qx, qy)
	if px, py := workqueue.Place(qx), workqueue.Place(qy); px != "first" || py != "behind" {
		t.Fatalf("x waits %q, y %q: want first and behind", px, py)
	}
	put(t, producer, "job1", "one")
	if i, it := gotOne(t, tks); i != 0 || it.Key != "job1" {
		t.Fatalf("Take %d got %s, want x with job1", i, it.ID)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if p := workqueue.Place(qy); p != "first" {
			return fmt.Errorf("y waits %q, want first", p)
		}
		return nil
	})
	tx := startTake(t, qx)
	eventuallyChildren(t, c, waiters, 2)
	zktest.Eventually(t, 10*time.Second, func() error {
		if p := workqueue.Place(qx); p != "behind" {
			return fmt.Errorf("x waits %q, want behind (at the back)", p)
		}
		return nil
	})
	put(t, producer, "job2", "two")
	if i, it := gotOne(t, []*taking{tks[1], tx}); i != 0 || it.Key != "job2" {
		t.Fatalf("Take %d of y, x got %s, want y with job2", i, it.ID)
	}
	put(t, producer, "job3", "three")
	if _, it := gotOne(t, []*taking{tx}); it.Key != "job3" {
		t.Fatalf("x got %s, want job3", it.ID)
	}
}

// Somebody deletes the first waiter's znode: the next one moves up, and
// the first, which does not look at the line while it is first, goes on
// watching the items beside it (as the package documentation says). No
// item is stranded: two items put are taken, one by each.
func TestAttackLineFirstWaiterDeletedBySomeoneElse(t *testing.T) {
	c, root, _, _, producer, qs, tks := lineOfThree(t)
	waiters := root + "/queues/jobs/waiters"
	names := eventuallyChildren(t, c, waiters, 3)
	first := names[0]
	for _, n := range names {
		if n[len(n)-10:] < first[len(first)-10:] {
			first = n
		}
	}
	if err := c.Delete(waiters+"/"+first, -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if pa, pb := workqueue.Place(qs[0]), workqueue.Place(qs[1]); pa != "first" || pb != "first" {
			return fmt.Errorf("A waits %q, B %q: want both first", pa, pb)
		}
		return nil
	})
	put(t, producer, "job1", "one")
	put(t, producer, "job2", "two")
	got := map[string]bool{}
	for range 2 {
		_, it := gotOne(t, tks)
		got[it.Key] = true
	}
	if !got["job1"] || !got["job2"] {
		t.Fatalf("took %v, want job1 and job2", got)
	}
}

// Takes given up at random points (a ctx of 1 to 30 ms: during the first
// look, the join, the listing of the line, the watch on the one before,
// the claim, or while waiting) on four handles, while items are put: every
// item is taken and acknowledged, and once the takers stop, the line is
// empty: no give-up leaves a waiter behind (one would head the line,
// unwatched, and strand the items put after it).
func TestAttackLineTakesGivenUpAtRandom(t *testing.T) {
	const (
		handles = 4
		items   = 30
	)
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	var (
		mu    sync.Mutex
		acked = map[string]int{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for h := range handles {
		q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", fmt.Sprint("taker", h))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+(i*7+h*13)%30)*time.Millisecond)
				it, err := q.Take(ctx)
				cancel()
				if err != nil {
					continue
				}
				actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = q.Ack(actx, it)
				acancel()
				if err != nil {
					t.Errorf("Ack %s: %v", it.ID, err)
					continue
				}
				mu.Lock()
				acked[it.Key]++
				mu.Unlock()
			}
		}()
	}
	for i := range items {
		put(t, producer, fmt.Sprint("job", i), "do it")
	}
	zktest.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) != items {
			return fmt.Errorf("%d of %d items acknowledged", len(acked), items)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	eventuallyChildren(t, c, root+"/queues/jobs/waiters", 0)
	eventuallyChildren(t, c, root+"/queues/jobs/items", 0)
}

// Somebody deletes waiters/ while nobody waits (the only moment it can be
// deleted: it has no children), as ZooKeeper itself does with an empty
// container: the next Take that waits makes it again, and takes the item
// put then.
func TestAttackLineDirDeletedBySomeoneElse(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	waiters := root + "/queues/jobs/waiters"
	qa := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "a")
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	for round := range 2 {
		tks := line(t, c, waiters, qa)
		put(t, producer, fmt.Sprint("job", round), "do it")
		if _, it := gotOne(t, tks); it.Key != fmt.Sprint("job", round) {
			t.Fatalf("round %d: A took %s", round, it.ID)
		}
		eventuallyChildren(t, c, waiters, 0)
		if err := c.Delete(waiters, -1); err != nil {
			t.Fatal(err)
		}
	}
}
