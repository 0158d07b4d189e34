package workqueue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// At least once: a taker whose session expires while it holds an item
// loses its claim, and another taker gets the item (attempt 2). The first
// taker's late Ack fails with ErrNotHeld; the second's succeeds.
func TestExpiredTakerItemIsTakenAgain(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sa := dial(t, []string{proxy.Addr()}, time.Second)
	qa := open(t, sa, root, "jobs", "a")
	qb := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "b")
	put(t, qb, "work", "do it")
	held := take(t, qa)

	got := make(chan *workqueue.Item, 1)
	go func() {
		it, err := qb.Take(ctxT(t))
		if err != nil {
			t.Errorf("B's Take: %v", err)
		}
		got <- it
	}()
	old := sa.ID()
	zkc.ExpireSession(t, proxy, old)
	var again *workqueue.Item
	select {
	case again = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("B did not get the item after A's session expired")
	}
	if again == nil || again.ID != held.ID || again.Attempts != 2 {
		t.Fatalf("B took %+v, want %s on attempt 2", again, held.ID)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if id := sa.ID(); id == old || id == 0 || !sa.Connected() {
			return errors.New("A has no new session yet")
		}
		return nil
	})
	if err := qa.Ack(ctxT(t), held); !errors.Is(err, workqueue.ErrNotHeld) {
		t.Fatalf("A's Ack after its session expired and B took the item: %v, want ErrNotHeld", err)
	}
	if err := qb.Ack(ctxT(t), again); err != nil {
		t.Fatalf("B's Ack: %v", err)
	}
	empty(t, qa)
}

// A taker whose session ended while nobody took its item since may still
// acknowledge it: the item's version is still its take's.
func TestAckAfterExpiryWhenNobodyTookIt(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sa := dial(t, []string{proxy.Addr()}, time.Second)
	qa := open(t, sa, root, "jobs", "a")
	put(t, qa, "work", "do it")
	held := take(t, qa)
	zkc.ExpireSession(t, proxy, sa.ID())
	if err := qa.Ack(ctxT(t), held); err != nil {
		t.Fatalf("Ack after expiry, nobody else took it: %v", err)
	}
	c := zkc.Connect(t)
	for _, dir := range []string{"items", "claims", "keys"} {
		eventuallyChildren(t, c, root+"/queues/jobs/"+dir, 0)
	}
}

// A Put whose multi is applied but whose reply is lost is retried once
// the connection is back, and finds its item: exactly one.
func TestPutRepliesLostMakeOneItem(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	q := open(t, dial(t, []string{proxy.Addr()}, 4*time.Second), root, "jobs", "p")
	c := zkc.Connect(t)
	dir := root + "/queues/jobs/items"

	proxy.DropFromTarget()
	done := make(chan error, 1)
	var id string
	go func() {
		var err error
		id, err = q.Put(ctxT(t), "once", []byte("only once"))
		done <- err
	}()
	applied := eventuallyChildren(t, c, dir, 1) // the server has it; the reply is lost
	proxy.Restore()
	if err := <-done; err != nil {
		t.Fatalf("Put across lost replies: %v", err)
	}
	if id != applied[0] {
		t.Errorf("Put returned %q, the server has %q", id, applied[0])
	}
	if got := children(t, c, dir); len(got) != 1 {
		t.Fatalf("items: %v, want exactly one", got)
	}
}

// FIFO per producer under retries: the producer's first Put gives up while
// its reply is lost (but the server applied it); the producer puts the
// same key again, then the next item. The retry finds the first item in
// its place, and the items are taken in the producer's order, once each.
func TestProducerOrderHoldsAcrossRetries(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	q := open(t, dial(t, []string{proxy.Addr()}, 4*time.Second), root, "jobs", "p")
	other := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "other")
	c := zkc.Connect(t)
	dir := root + "/queues/jobs/items"

	proxy.DropFromTarget()
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := q.Put(short, "first", []byte("1"))
	cancel()
	if err == nil {
		t.Fatal("Put succeeded although its reply was dropped")
	}
	applied := eventuallyChildren(t, c, dir, 1)
	put(t, other, "between", "another producer's") // may come between: only a producer's own order is kept
	proxy.Restore()
	if id := put(t, q, "first", "1"); id != applied[0] {
		t.Fatalf("the retried Put returned %q, want the applied %q", id, applied[0])
	}
	put(t, q, "second", "2")
	var mine []string
	for range 3 {
		it := take(t, other)
		if it.Producer == "p" {
			mine = append(mine, string(it.Payload))
		}
		if err := other.Ack(ctxT(t), it); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(mine) != "[1 2]" {
		t.Errorf("the producer's items were taken as %v, want [1 2]", mine)
	}
	empty(t, other)
}

// An Ack whose reply is lost is retried and reports success: the item,
// claim and key are gone, once.
func TestAckRepliesLost(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	q := open(t, dial(t, []string{proxy.Addr()}, 4*time.Second), root, "jobs", "p")
	c := zkc.Connect(t)
	put(t, q, "work", "do it")
	it := take(t, q)
	proxy.DropFromTarget()
	done := make(chan error, 1)
	go func() { done <- q.Ack(ctxT(t), it) }()
	eventuallyChildren(t, c, root+"/queues/jobs/items", 0) // applied; the reply is lost
	proxy.Cut()                                            // and the connection with it
	proxy.Restore()
	if err := <-done; err != nil {
		t.Fatalf("Ack across a lost reply: %v", err)
	}
	for _, dir := range []string{"claims", "keys"} {
		if got := children(t, c, root+"/queues/jobs/"+dir); len(got) != 0 {
			t.Errorf("%s after the Ack: %v", dir, got)
		}
	}
}

// holds is the test's record of who holds which item, kept so that a
// violation can only be the queue's: an entry is removed before the
// holder acknowledges, releases or loses its session.
type holds struct {
	mu    sync.Mutex
	by    map[string]string // item → taker
	acked map[string]int    // item → Acks that succeeded
	fails []string
}

func (h *holds) take(id, who string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if other, ok := h.by[id]; ok {
		h.fails = append(h.fails, fmt.Sprintf("%s took %s while %s held it", who, id, other))
	}
	h.by[id] = who
}

func (h *holds) drop(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.by, id)
}

func (h *holds) dropAll(who string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, w := range h.by {
		if w == who {
			delete(h.by, id)
		}
	}
}

// Churn: four takers on four sessions (two behind proxies whose
// connections are cut now and then, one closed without cleanup half way)
// take, acknowledge and release 60 items of two producers. No item is ever
// held by two takers at once, every item is acknowledged, and the queue
// ends empty.
func TestChurnClaimsAreExclusive(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const n = 60
	p1 := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "p1")
	p2 := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "p2")
	h := &holds{by: map[string]string{}, acked: map[string]int{}}
	type taker struct {
		name  string
		s     *cluster.Session
		q     *workqueue.Queue
		proxy *zktest.Proxy
	}
	var takers []*taker
	for i := range 4 {
		tk := &taker{name: fmt.Sprint("t", i)}
		servers := zkc.Addrs()
		if i < 2 {
			tk.proxy = zktest.NewProxy(t, zkc.Addrs()[0])
			servers = []string{tk.proxy.Addr()}
		}
		tk.s = dial(t, servers, 4*time.Second)
		tk.q = open(t, tk.s, root, "jobs", tk.name)
		takers = append(takers, tk)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, tk := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for took := 0; ctx.Err() == nil; took++ {
				if i == 3 && took == 5 {
					h.dropAll(tk.name) // its claims go with the session
					tk.s.Close()
					return
				}
				it, err := tk.q.Take(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("%s: Take: %v", tk.name, err)
					}
					return
				}
				h.take(it.ID, tk.name)
				if tk.proxy != nil && r.IntN(5) == 0 {
					tk.proxy.Cut() // the connection drops; the session lives
					tk.proxy.Restore()
				}
				switch x := r.IntN(10); {
				case i == 3:
					// keeps what it takes, until its session closes
				case x < 2:
					h.drop(it.ID)
					if err := tk.q.Release(ctx, it); err != nil && ctx.Err() == nil {
						t.Errorf("%s: Release: %v", tk.name, err)
					}
				default:
					h.drop(it.ID)
					err := tk.q.Ack(ctx, it)
					if err != nil && ctx.Err() == nil {
						t.Errorf("%s: Ack: %v", tk.name, err)
					}
					if err == nil {
						h.mu.Lock()
						h.acked[it.Key]++
						h.mu.Unlock()
					}
				}
			}
		}()
	}
	for i := range n {
		q := p1
		if i%2 == 1 {
			q = p2
		}
		put(t, q, fmt.Sprint("item-", i), fmt.Sprint(i))
	}
	zktest.Eventually(t, 60*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.acked) < n {
			return fmt.Errorf("%d of %d items acknowledged", len(h.acked), n)
		}
		return nil
	})
	cancel()
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.fails {
		t.Error(f)
	}
	for key, acks := range h.acked {
		if acks != 1 {
			t.Errorf("%s acknowledged %d times", key, acks)
		}
	}
	c := zkc.Connect(t)
	for _, dir := range []string{"items", "claims", "keys"} {
		if got := children(t, c, root+"/queues/jobs/"+dir); len(got) != 0 {
			t.Errorf("%s at the end: %v", dir, got)
		}
	}
}

// A Take that gives up while its claim is in flight (the reply comes after
// its ctx ended) may leave a claim of its own session behind, which would
// hide the item from everyone until the session ends. The handle's next
// Take removes it and takes the item again.
func TestTakeGivenUpLeavesNoClaim(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	q := open(t, dial(t, []string{proxy.Addr()}, 4*time.Second), root, "jobs", "p")
	c := zkc.Connect(t)
	claims := root + "/queues/jobs/claims"
	put(t, q, "k", "the item")
	proxy.Delay(150 * time.Millisecond) // every reply late: a Take is four round trips
	stray := false
	for wait := 100 * time.Millisecond; wait < 3*time.Second && !stray; wait += 40 * time.Millisecond {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		it, err := q.Take(ctx)
		cancel()
		if err == nil {
			if err := q.Release(ctxT(t), it); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Did the claim land after the Take gave up? The claim's create is
		// the Take's last request: its fate is known a round trip later.
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) && !stray {
			names, _, err := c.Children(claims)
			if err != nil {
				t.Fatal(err)
			}
			stray = len(names) == 1
			time.Sleep(5 * time.Millisecond) // polling a state that may never come, not synchronising
		}
	}
	if !stray {
		t.Fatal("no Take gave up with its claim in flight; the test did not reach its case")
	}
	proxy.Delay(0)
	it := take(t, q)
	if it.Key != "k" {
		t.Fatalf("took %s", it.ID)
	}
	if err := q.Ack(ctxT(t), it); err != nil {
		t.Fatal(err)
	}
	eventuallyChildren(t, c, claims, 0)
}
