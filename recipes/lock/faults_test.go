package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	lockv1 "github.com/zkactor/zkactor/proto/recipes/lock/v1"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/test/zktest"
)

// watchers reads the server's watches by path (wchp) and returns how many
// sessions watch each znode under dir.
func watchers(t testing.TB, zkc *zktest.Cluster, dir string) map[string]int {
	t.Helper()
	out, err := zkc.FourLetterWord(0, "wchp")
	if err != nil {
		t.Fatalf("wchp: %v", err)
	}
	got := map[string]int{}
	var cur string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "/"):
			cur = strings.TrimSpace(line)
		case strings.HasPrefix(strings.TrimSpace(line), "0x") && strings.HasPrefix(cur, dir+"/"):
			got[cur[len(dir)+1:]]++
		}
	}
	return got
}

// TestUnlockWakesOneWaiter: with 20 waiters queued (each on its own
// session), an unlock fires one watch among them, and the waiter it wakes
// takes the lock with one request. The herd of the naive recipe (everyone
// watching the directory) would fire 20.
func TestUnlockWakesOneWaiter(t *testing.T) {
	const n = 20
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "herd")
	holder := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "herd")
	h, err := holder.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		sessions []*cluster.Session
		events   atomic.Int64
		results  = make(chan result, n)
	)
	for range n {
		s := dial(t, zkc.Addrs(), 4*time.Second)
		sessions = append(sessions, s)
		stop := s.OnWatchEvent(func(ev zk.Event) {
			if ev.Type != zk.EventSession {
				events.Add(1)
			}
		})
		t.Cleanup(stop)
		m := newMutex(t, s, root, "herd")
		go func() {
			h, err := m.Lock(ctx)
			results <- result{h, err, time.Now()}
		}()
	}
	// Every waiter is queued and watches its predecessor (and its own
	// znode): each znode but the last has two watching sessions.
	zktest.Eventually(t, 15*time.Second, func() error {
		q := waiters(t, raw, dir)
		if len(q) != n+1 {
			return fmt.Errorf("%d waiters, want %d", len(q), n+1)
		}
		w := watchers(t, zkc, dir)
		for i, name := range q[:n] {
			if w[name] < 2 {
				return fmt.Errorf("waiter %d (%s) has %d watching sessions, want 2", i, name, w[name])
			}
		}
		return nil
	})
	requests := func() (sum int64) {
		for _, s := range sessions {
			sum += plumbing.Requests(s)
		}
		return sum
	}
	before, beforeEvents := requests(), events.Load()
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r := await(t, results, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	spent := requests() - before
	// A round trip on every waiter's session: watch events are delivered
	// before the reply of a later request, so every event the delete
	// caused has arrived once these return.
	for _, s := range sessions {
		if err := s.Do(ctx, cluster.Op{Name: "exists", Path: dir}, func(c *zk.Conn) error {
			_, _, err := c.Exists(dir)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	woken := events.Load() - beforeEvents
	t.Logf("an unlock with %d waiters: %d watch events among the waiters, %d requests by the one that took over", n, woken, spent)
	if woken != 1 {
		t.Errorf("the unlock fired %d watch events among %d waiters, want 1", woken, n)
	}
	if spent > 2 {
		t.Errorf("the waiter that took over spent %d requests, want at most 2", spent)
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// The rest take it in turn.
	for i := 1; i < n; i++ {
		r := await(t, results, 10*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if err := r.held.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitWaiters(t, raw, dir, 0)
}

// TestSessionExpiryLosesLock: the holder's session expires; its Lost
// closes before the waiter gets the lock, and tokens grow. Back on a new
// session, the old holder queues again like anyone.
func TestSessionExpiryLosesLock(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	as := dial(t, []string{proxy.Addr()}, time.Second)
	a := newMutex(t, as, root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := lostAt(t, h)
	bres := lockAsync(ctx, b)
	waitWaiters(t, zkc.Connect(t), lock.Path(root, "res"), 2)
	old := as.ID()
	zkc.ExpireSession(t, proxy, old)
	r := await(t, bres, 15*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if lost().IsZero() || !lost().Before(r.at) {
		t.Fatalf("A's Lost at %v, B acquired at %v: want A's loss first", lost(), r.at)
	}
	t.Logf("A lost the lock %v before B took it", r.at.Sub(lost()).Round(time.Millisecond))
	if !errors.Is(h.Err(), lock.ErrLost) {
		t.Errorf("A's Err = %v, want ErrLost", h.Err())
	}
	if r.held.Token() <= h.Token() {
		t.Errorf("tokens %d then %d", h.Token(), r.held.Token())
	}
	if err := h.Unlock(ctx); err != nil {
		t.Errorf("Unlock after a loss = %v, want nil", err)
	}
	// A, on its new session, waits behind B and gets the lock after it.
	zktest.Eventually(t, 10*time.Second, func() error {
		if id := as.ID(); id == 0 || id == old {
			return errors.New("A has no new session yet")
		}
		return nil
	})
	ares := lockAsync(ctx, a)
	waitWaiters(t, zkc.Connect(t), lock.Path(root, "res"), 2)
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	ra := await(t, ares, 10*time.Second)
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	if ra.held.Token() <= r.held.Token() {
		t.Errorf("tokens %d then %d", r.held.Token(), ra.held.Token())
	}
	if err := ra.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionedHolderLosesFirst: the holder is cut off (blackhole, no
// byte passes); its Lost closes on its lease, before the servers expire its
// session (as a third client sees its znode go) and hand the lock on.
// Measured on the monotonic clock.
func TestPartitionedHolderLosesFirst(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMutex(t, dial(t, []string{proxy.Addr()}, time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := lostAt(t, h)
	bres := lockAsync(ctx, b)
	raw := zkc.Connect(t)
	waitWaiters(t, raw, lock.Path(root, "res"), 2)
	// A third client sees A's znode go when the servers expire A's session.
	_, _, gone, err := raw.ExistsW(h.Path())
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	proxy.Blackhole()
	var expired time.Time
	select {
	case <-gone:
		expired = time.Now()
	case <-time.After(15 * time.Second):
		t.Fatal("A's znode still there 15s after the cut")
	}
	r := await(t, bres, 15*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if lost().IsZero() || !lost().Before(expired) || !lost().Before(r.at) {
		t.Fatalf("A's Lost at %v, its session expired at %v, B acquired at %v: want A's loss first", lost(), expired, r.at)
	}
	t.Logf("after the cut: A lost the lock at %v, its znode went at %v, B took it at %v",
		lost().Sub(cut).Round(time.Millisecond), expired.Sub(cut).Round(time.Millisecond), r.at.Sub(cut).Round(time.Millisecond))
	if err := h.Err(); !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "lease") {
		t.Errorf("A's Err = %v, want ErrLost by the lease", err)
	}
	if r.held.Token() <= h.Token() {
		t.Errorf("tokens %d then %d", h.Token(), r.held.Token())
	}
	proxy.Restore()
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedZnodeLosesLock: someone else deletes the held znode; the
// holder's Lost closes, and the next waiter takes the lock.
func TestDeletedZnodeLosesLock(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	a := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	b := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	h, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bres := lockAsync(ctx, b)
	waitWaiters(t, raw, lock.Path(root, "res"), 2)
	if err := raw.Delete(h.Path(), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost did not close after the znode was deleted")
	}
	if err := h.Err(); !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("Err = %v, want ErrLost naming the delete", err)
	}
	r := await(t, bres, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLostDuringCreate: the create reaches the server but its
// reply is lost and the connection drops. Within its ctx, Lock finds its own
// znode by its GUID (no second one); a Lock that gave up leaves no orphan.
func TestConnectionLostDuringCreate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := lock.Path(root, "res")
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, 4*time.Second)
	m := newMutex(t, s, root, "res")
	makeDir(t, raw, dir) // so that the create under test is the waiter's

	// 1. Lock is still within its ctx when the connection comes back.
	proxy.DropFromTarget()
	res := lockAsync(ctx, m)
	applied := waitWaiters(t, raw, dir, 1) // applied by the server, reply lost
	proxy.Restore()                        // the connection drops; same session after
	r := await(t, res, 15*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := waiters(t, raw, dir); len(got) != 1 || dir+"/"+got[0] != r.held.Path() || got[0] != applied[0] {
		t.Fatalf("waiters %v, held %s: want exactly the znode the lost create made", got, r.held.Path())
	}
	if err := r.held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, raw, dir, 0)

	// 2. Lock gives up before the reply: the znode it made is deleted
	// once the session learns it may exist.
	proxy.DropFromTarget()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	res = lockAsync(short, m)
	waitWaiters(t, raw, dir, 1)
	if r := await(t, res, 10*time.Second); r.err == nil {
		cancel()
		t.Fatalf("Lock with its replies lost returned %v", r.held.Path())
	}
	cancel()
	proxy.Restore()
	waitWaiters(t, raw, dir, 0)
}

// TestFollowActor: a lock tied to an actor is released when the actor
// stops, and the actor is told with a LockLost when the lock is lost.
func TestFollowActor(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	m := newMutex(t, dial(t, zkc.Addrs(), 4*time.Second), root, "res")
	dir := lock.Path(root, "res")

	// 1. The actor stops: the lock is released.
	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	h, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Follow(system, pid)
	system.Root.Stop(pid)
	waitWaiters(t, raw, dir, 0)

	// 2. The lock is lost: the actor receives LockLost.
	got := make(chan *lockv1.LockLost, 1)
	pid = system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*lockv1.LockLost); ok {
			got <- m
		}
	}))
	h, err = m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Follow(system, pid)
	if err := raw.Delete(h.Path(), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Name != "res" || m.Token != h.Token() || m.Reason != "deleted" {
			t.Errorf("LockLost = %v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the actor was not told that the lock was lost")
	}
	system.Root.Stop(pid)
}

// TestChurnNeverTwoHolders: several sessions (two behind proxies that are
// partitioned now and then, past their session timeout) lock and unlock
// at random for a while. No two tenures overlap, counting a tenure until
// Unlock is called or Lost closes, and tokens grow in tenure order.
func TestChurnNeverTwoHolders(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var proxies []*zktest.Proxy
	var ms []*lock.Mutex
	for i := range 4 {
		servers := zkc.Addrs()
		if i < 2 {
			p := zktest.NewProxy(t, zkc.Addrs()[0])
			proxies = append(proxies, p)
			servers = []string{p.Addr()}
		}
		ms = append(ms, newMutex(t, dial(t, servers, time.Second), root, "churn"))
	}
	type tenure struct {
		token      int64
		start, end time.Time
		lost       bool
	}
	var (
		mu      sync.Mutex
		tenures []tenure
		wg      sync.WaitGroup
		holder  atomic.Int64 // 1 + the index of the session that holds the lock now, 0 = none
		cutOff  [2]atomic.Bool
	)
	deadline := time.Now().Add(8 * time.Second)
	for i, m := range ms {
		for k := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(k)))
				for time.Now().Before(deadline) && ctx.Err() == nil {
					lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
					h, err := m.Lock(lctx)
					lcancel()
					if err != nil {
						continue // cut off, or timed out in the queue
					}
					tn := tenure{token: h.Token(), start: time.Now()}
					holder.Store(int64(i + 1))
					hold := time.NewTimer(time.Duration(rng.IntN(50)) * time.Millisecond)
					select {
					case <-h.Lost():
						tn.lost = true
					case <-hold.C:
						if i < len(cutOff) && cutOff[i].Load() {
							// Partitioned while holding: hold on, as a
							// slow holder would, until the lock is lost.
							hold.Reset(5 * time.Second)
							select {
							case <-h.Lost():
								tn.lost = true
							case <-hold.C:
							}
						}
					}
					hold.Stop()
					tn.end = time.Now()
					holder.CompareAndSwap(int64(i+1), 0)
					uctx, ucancel := context.WithTimeout(ctx, 2*time.Second)
					_ = h.Unlock(uctx)
					ucancel()
					mu.Lock()
					tenures = append(tenures, tn)
					mu.Unlock()
				}
			}()
		}
	}
	// Faults: partition a proxied session while it holds the lock, past
	// its session timeout, then heal.
	rng := rand.New(rand.NewPCG(7, 7))
	for time.Now().Add(2500 * time.Millisecond).Before(deadline) {
		cut := -1
		for cut < 0 && time.Now().Before(deadline) {
			if i := int(holder.Load() - 1); i >= 0 && i < len(proxies) {
				cut = i
				break
			}
			runtime.Gosched()
		}
		if cut < 0 {
			break
		}
		p := proxies[cut]
		cutOff[cut].Store(true)
		p.Blackhole()
		wait := time.NewTimer(time.Duration(500+rng.IntN(1500)) * time.Millisecond) // the fault's length, not synchronisation
		<-wait.C
		p.Restore()
		cutOff[cut].Store(false)
		wait.Reset(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		<-wait.C
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	losses := 0
	for i := range tenures {
		if tenures[i].lost {
			losses++
		}
		for k := range tenures {
			a, b := tenures[i], tenures[k]
			if i == k {
				continue
			}
			if a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("tenures overlap: token %d %v–%v and token %d %v–%v", a.token,
					a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"), b.token,
					b.start.Format("15:04:05.000"), b.end.Format("15:04:05.000"))
			}
			if a.start.Before(b.start) && a.token >= b.token {
				t.Errorf("token %d held before token %d", a.token, b.token)
			}
		}
	}
	t.Logf("%d tenures, %d ended by a loss", len(tenures), losses)
	if losses == 0 {
		t.Error("no tenure ended by a loss: the faults missed the holders")
	}
	if len(tenures) < 20 {
		t.Errorf("only %d tenures: the churn did not churn", len(tenures))
	}
}

// Err is the check a holder makes before it acts, and it must not lag the
// lease: a process thawed after a freeze runs its own code before (or
// after) the goroutine that closes Lost, in any order. So the instant the
// session's lease has run out, Err reports the loss, whether or not Lost
// is closed yet. (Before, Err only returned what that goroutine had
// recorded: nil for up to a millisecond past the lease, or longer on a
// starved machine.)
func TestErrReportsTheLeaseTheInstantItEnds(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dial(t, []string{proxy.Addr()}, time.Second)
	m := newMutex(t, s, root, "res")
	h, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	session := s.ID()
	proxy.Blackhole() // no probe confirms the lease any more: it runs out
	defer proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		until := s.SafeUntilFor(session)
		now := time.Now()
		if !now.Before(until) {
			if err := h.Err(); !errors.Is(err, lock.ErrLost) {
				t.Fatalf("at %v past the lease's end, Err = %v; want ErrLost", now.Sub(until), err)
			}
			break
		}
		if now.After(deadline) {
			t.Fatal("the lease did not run out within 10s of the blackhole")
		}
		// Wake just at the lease's end, as a thawed process would.
		time.Sleep(time.Until(until))
	}
	select {
	case <-h.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed 5s after the lease ran out")
	}
}
