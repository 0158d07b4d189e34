package subscription_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/zktest"
)

// Attack review of the stream on its zkwatch connection.

// The persistent recursive watch of a directory stayed on the connection
// when its last subscription ended (zkwatch had no removeWatches): a node
// that subscribes to short-lived services one after the other collected
// one watch per service on the server, and every later change of each
// came to it as an event, for the life of the connection. Now the last
// subscription of a directory removes its watch. The test also shows
// that two subscriptions of one directory share the watch (ending one
// keeps the other's), and that a directory whose name extends another's
// ("a" and "ab") is not followed through it.
func TestAttackLastSubscriptionOfADirectoryRemovesItsWatch(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	raw := zkc.Connect(t)
	subs := subscriptions(t, b, subscription.Options{})
	kindsAre := func(r *recorder, want string) {
		t.Helper()
		zktest.Eventually(t, 10*time.Second, func() error {
			if got := kinds(r.messages()); got != want {
				return fmt.Errorf("receiver has %q, want %q", got, want)
			}
			return nil
		})
	}
	// Both directories exist before the count below starts.
	for _, name := range []string{"a", "ab"} {
		if err := a.Registry.Register(ctx, name, a.Spawn(t), nil); err != nil {
			t.Fatal(err)
		}
	}

	first, pid1 := newRecorder(b)
	cancel1, err := subs.Subscribe(ctx, "a", pid1)
	if err != nil {
		t.Fatal(err)
	}
	second, pid2 := newRecorder(b)
	cancel2, err := subs.Subscribe(ctx, "a", pid2)
	if err != nil {
		t.Fatal(err)
	}
	other, pid3 := newRecorder(b)
	cancel3, err := subs.Subscribe(ctx, "ab", pid3)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel3()
	kindsAre(first, "S1")
	kindsAre(second, "S1")
	kindsAre(other, "S1")

	// One of two subscriptions of "a" ends: the other still follows it.
	cancel1()
	if err := a.Registry.Register(ctx, "a", a.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	kindsAre(second, "S1 J")
	kindsAre(other, "S1")

	// What one registration in "ab" costs in events.
	_, before := subscription.WatchCounts(subs)
	if err := a.Registry.Register(ctx, "ab", a.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	kindsAre(other, "S1 J")
	_, after := subscription.WatchCounts(subs)
	perRegistration := after - before

	// The last subscription of "a" ends; a child created in "a", then a
	// registration in "ab": the connection gets the events of "ab" only.
	// Wire order: an event of "a" would have come before those of "ab",
	// so once the join of "ab" is here, the count is final.
	cancel2()
	// A barrier: the listing of a new subscription goes out on the
	// connection after the removal, so once its snapshot is here the
	// server has removed the watch.
	barrier, pid4 := newRecorder(b)
	cancel4, err := subs.Subscribe(ctx, "ab", pid4)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel4()
	kindsAre(barrier, "S2")
	_, before = subscription.WatchCounts(subs)
	if _, err := raw.Create(a.Registry.Layout().ServicePath("a")+"/stray", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := a.Registry.Register(ctx, "ab", a.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	kindsAre(other, "S1 J J")
	kindsAre(barrier, "S2 J")
	_, after = subscription.WatchCounts(subs)
	if got := after - before; got != perRegistration {
		t.Errorf("%d watch events for a child of an unfollowed directory and a registration elsewhere, want %d (the registration's): the watch of the unfollowed directory is still set", got, perRegistration)
	}
	kindsAre(first, "S1")
	kindsAre(second, "S1 J")
}

// A child deleted and created again under its name before the read of
// its first life was answered: the read (sent after both) returns the
// second life, which must not be reported as the first; the first life
// is reported neither way and the second once, with its own creation
// zxid, after what came before it.
func TestAttackChildReplacedBeforeItsReadIsOneJoinOfTheNewLife(t *testing.T) {
	conn, dir, data, rec := orderFixture(t, 1)
	acl := zk.WorldACL(zk.PermAll)
	hook := &once{}
	subscription.SetTestHookListed(t, hook.run)
	hook.arm(func() { // X's first creation has arrived; its read is not sent yet
		if err := conn.Delete(dir+"/X", -1); err != nil {
			t.Error(err)
		}
		if _, err := conn.Create(dir+"/X", data, 0, acl); err != nil {
			t.Error(err)
		}
		if err := conn.Delete(dir+"/s0", -1); err != nil {
			t.Error(err)
		}
	})
	if _, err := conn.Create(dir+"/X", data, 0, acl); err != nil {
		t.Fatal(err)
	}
	hook.wait(t)
	rec.await(t, 3)
	converges(t, rec, conn, dir, isRegistration)
	if got, want := changes(rec.messages()), "J X, L s0"; got != want {
		t.Errorf("messages %q, want %q", got, want)
	}
	_, st, err := conn.Exists(dir + "/X")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rec.messages() {
		if j, ok := m.(*subv1.Joined); ok && j.Member.Czxid != st.Czxid {
			t.Errorf("join of X with czxid %d, its second life's is %d", j.Member.Czxid, st.Czxid)
		}
	}
	rec.check(t)
}

// Close called twice at once (a deferred Close and a shutdown hook): each
// returns only once the goroutines have ended, as Close promises. Before,
// the second call returned at once, while the stream still ran.
func TestAttackConcurrentCloseWaitsForTheGoroutines(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 0)
	subs := subscriptions(t, n, subscription.Options{})
	_, pid := newRecorder(n)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	early := make(chan string, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs.Close()
			if !subscription.StreamExited(subs) {
				early <- fmt.Sprintf("Close %d returned while the stream still ran", i)
			}
		}()
	}
	wg.Wait()
	close(early)
	for e := range early {
		t.Error(e)
	}
}

// Subscriptions that start while another client creates and deletes
// members as fast as it can: changes land between a new subscription's
// addWatch reply and its listing's reply (shown by the listing, so their
// events must be skipped), and right after the listing (events to
// apply). A change applied twice is a join of a member held or a leave
// of one not held (the recorder notes both); one lost, a receiver that
// does not converge.
func TestAttackSubscribingDuringChurn(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	churner := zkc.Connect(t)
	data := registrationData(t, a, conn, "src")
	dir := a.Registry.Layout().ServicePath("svc")
	acl := zk.WorldACL(zk.PermAll)
	if _, err := zkutil.CreateWithParents(conn, root, dir+"/seed", data, 0, acl); err != nil {
		t.Fatal(err)
	}
	subs := subscriptions(t, b, subscription.Options{})

	stop := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				churned <- nil
				return
			default:
			}
			if _, err := churner.Create(fmt.Sprintf("%s/c%d", dir, i), data, 0, acl); err != nil {
				churned <- err
				return
			}
			if i >= 3 {
				if err := churner.Delete(fmt.Sprintf("%s/c%d", dir, i-3), -1); err != nil {
					churned <- err
					return
				}
			}
		}
	}()
	var recs []*recorder
	for range 8 {
		rec, pid := newRecorder(b)
		if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	close(stop)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		converges(t, rec, conn, dir, isRegistration)
	}
}

// The subscriptions' connection cut again and again while another client
// creates, deletes and re-creates members (same ids, new lives) as fast
// as it can: each reconnect sets the watch again, lists, and sends the
// difference while changes keep landing around the listing. No change
// may be applied twice (the recorder's breaches), none lost (the
// receiver converges on ZooKeeper's members, lives included).
func TestAttackRepeatedGapsDuringChurn(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, zkc.Addrs(), root, 0)
	sub := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	conn := zkc.Connect(t)
	churner := zkc.Connect(t)
	data := registrationData(t, a, conn, "src")
	dir := a.Registry.Layout().ServicePath("svc")
	acl := zk.WorldACL(zk.PermAll)
	if _, err := zkutil.CreateWithParents(conn, root, dir+"/seed", data, 0, acl); err != nil {
		t.Fatal(err)
	}
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	churned := make(chan error, 1)
	var rounds atomic.Int64
	go func() {
		for i := 0; ; i++ {
			rounds.Store(int64(i))
			select {
			case <-stop:
				churned <- nil
				return
			default:
			}
			// Ten ids, each deleted and created again in turn: a
			// re-creation under a known id is a new life.
			p := fmt.Sprintf("%s/m%d", dir, i%10)
			if err := churner.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				churned <- err
				return
			}
			if i%3 != 0 {
				if _, err := churner.Create(p, data, 0, acl); err != nil {
					churned <- err
					return
				}
			}
		}
	}()
	gap := func() {
		t.Helper()
		proxy.Cut()
		zktest.Eventually(t, 10*time.Second, func() error {
			if s := subscription.WatchServer(subs); s != "" {
				return fmt.Errorf("still connected to %s", s)
			}
			return nil
		})
	}
	reconnect := func() {
		t.Helper()
		proxy.Restore()
		zktest.Eventually(t, 20*time.Second, func() error {
			if subscription.WatchServer(subs) == "" {
				return errors.New("not connected again")
			}
			return nil
		})
	}
	// churnOn waits until every id has been deleted and created again
	// (or not) a few times since it was called.
	churnOn := func() {
		t.Helper()
		from := rounds.Load()
		zktest.Eventually(t, 20*time.Second, func() error {
			if rounds.Load() < from+60 {
				return errors.New("the churn has not gone round every id yet")
			}
			return nil
		})
	}
	// The receiver holds members of the churn (known lives, which the
	// next difference must check).
	holdsChurn := func() {
		t.Helper()
		zktest.Eventually(t, 20*time.Second, func() error {
			if n := len(rec.held()); n < 4 {
				return fmt.Errorf("the receiver holds %d members", n)
			}
			return nil
		})
	}
	for range 3 {
		churnOn()
		holdsChurn()
		gap()
		churnOn()
		reconnect()
	}
	// The last gap: the churn goes on in it and ends before the
	// reconnect, so that only the difference can tell the receiver of
	// the ids that were deleted and created again.
	churnOn()
	holdsChurn()
	gap()
	churnOn()
	close(stop)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
	reconnect()
	converges(t, rec, conn, dir, isRegistration)
}

// The server of the subscriptions' connection is cut off from its quorum
// (a partition between servers; its client port still serves), while
// members join and leave on the majority. As doc.go says, the connection
// stays up with nothing new until that server gives up, then comes the
// gap, and on another server the difference: never a change that the
// majority did not make, never one twice, and every one.
func TestAttackServerCutOffFromItsQuorum(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies())
	proxies, addrs := zktest.Proxies(t, zkc)
	root := zktest.Root(t)
	sub := newNode(t, addrs, root, 4*time.Second)
	conn := zkc.Connect(t)
	subs := subscriptions(t, sub, subscription.Options{})
	rec, pid := newRecorder(sub)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	used := slices.Index(addrs, subscription.WatchServer(subs))
	if used < 0 {
		t.Fatalf("the subscriptions' connection is to %q, not one of %v", subscription.WatchServer(subs), addrs)
	}
	var others []string
	for i, p := range proxies {
		if i != used {
			p.Cut() // the connection cannot move before the gap
			others = append(others, zkc.Addrs()[i])
		}
	}
	member := newNode(t, others, root, 0) // on the majority
	dir := member.Registry.Layout().ServicePath("svc")
	pids := registerN(t, member, "svc", 3)
	converges(t, rec, conn, dir, isRegistration)

	zkc.IsolateQuorum(used)
	unregister(t, member, "svc", pids[0])
	registerN(t, member, "svc", 2)
	zktest.Eventually(t, 30*time.Second, func() error {
		if s := subscription.WatchServer(subs); s != "" {
			return fmt.Errorf("still connected to %s", s)
		}
		return nil
	})
	for i, p := range proxies {
		if i != used {
			p.Restore()
		}
	}
	converges(t, rec, conn, dir, isRegistration)
	if got := kinds(rec.messages()); got != "S0 J J J L J J" {
		t.Errorf("messages %q, want \"S0 J J J L J J\"", got)
	}
}
