package subscription_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

// registrationData registers one actor of n under name and returns the
// bytes of its znode: a valid Registration record for raw children.
func registrationData(t *testing.T, n *node, conn *zk.Conn, name string) []byte {
	t.Helper()
	if err := n.Registry.Register(ctxT(t), name, n.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	dir := n.Registry.Layout().ServicePath(name)
	names, _, err := conn.Children(dir)
	if err != nil || len(names) == 0 {
		t.Fatalf("children of %s: %v %v", dir, names, err)
	}
	data, _, err := conn.Get(dir + "/" + names[0])
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// once arms a listing hook: the next listing after arm runs f, once;
// ran is closed when it has.
type once struct {
	mu    sync.Mutex
	armed func()
	ran   chan struct{}
}

func (o *once) arm(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.armed, o.ran = f, make(chan struct{})
}

func (o *once) run() {
	o.mu.Lock()
	f, ran := o.armed, o.ran
	o.armed = nil
	o.mu.Unlock()
	if f != nil {
		f()
		close(ran)
	}
}

// wait waits until the armed hook has run.
func (o *once) wait(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	ran := o.ran
	o.mu.Unlock()
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("no listing ran the hook within 20s")
	}
}

// A Subscribe whose ctx ends while its listing is on the wire (the
// connection has gone silent): the listing's results, which the request
// may still write, must not be read. With -race this failed (list
// returned the closure's variables next to the error).
func TestAttackCtxEndingMidListingIsNoRace(t *testing.T) {
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sub := newNode(t, []string{proxy.Addr()}, zktest.Root(t), 2*time.Second)
	subs := subscriptions(t, sub, subscription.Options{})
	_, pid := newRecorder(sub)
	proxy.Blackhole() // still connected as far as the client knows
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	if _, err := subs.Subscribe(ctx, "svc", pid); err == nil {
		t.Fatal("Subscribe through a silent connection succeeded")
	}
	// go-zookeeper gives up on the silent connection by itself and fails
	// the abandoned request: nothing this goroutine does after Subscribe
	// may lead to that, or -race would see the request's writes as
	// ordered after Subscribe's reads. So the wait polls go-zookeeper's
	// state (an atomic load), not Session.Connected (a mutex that
	// go-zookeeper's event callback takes before it fails requests).
	// Closing the session then waits for the request's goroutine.
	zktest.Eventually(t, 20*time.Second, func() error {
		if st := sub.Session.Conn().State(); st == zk.StateHasSession {
			return fmt.Errorf("go-zookeeper still has its session")
		}
		return nil
	})
	sub.Session.Close()
}

// A child whose ACL refuses this client a read (another client's znode)
// is not a usable record: it is skipped like garbage. Before, its get
// failed with NoAuth, which failed Subscribe and, for a child that
// appeared later, made every listing fail so that no member was ever
// reported again.
func TestAttackUnreadableChildIsSkipped(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	owner := zkc.Connect(t)
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	dir := a.Registry.Layout().ServicePath("svc")
	data := registrationData(t, a, conn, "svc")
	locked := func(name string) {
		t.Helper()
		if _, err := owner.Create(dir+"/"+name, data, 0, zk.DigestACL(zk.PermAll, "owner", "secret")); err != nil {
			t.Fatal(err)
		}
	}
	locked("locked-1")
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatalf("Subscribe with an unreadable child: %v", err)
	}
	locked("locked-2")
	if err := a.Registry.Register(ctxT(t), "svc", a.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if n := len(rec.held()); n != 2 {
			return fmt.Errorf("receiver holds %d members, want the 2 registrations", n)
		}
		return nil
	})
	rec.check(t)
}

// reportedAfter fails the test if a message reports a change that
// happened after its listing: a join whose creation zxid is above the
// listing's zxid (the directory's pzxid, which every child creation
// raises).
func joinsWithinTheirListing(t *testing.T, msgs []any) {
	t.Helper()
	var last int64
	for _, m := range msgs {
		j, ok := m.(*subv1.Joined)
		if !ok {
			continue
		}
		if j.Member.Czxid > j.Zxid {
			t.Errorf("join of %s (czxid %d) in the listing of zxid %d: a change after its listing", j.Member.Id, j.Member.Czxid, j.Zxid)
		}
		if j.Member.Czxid < last {
			t.Errorf("join of %s (czxid %d) after a join of czxid %d: joins out of ZooKeeper's order", j.Member.Id, j.Member.Czxid, last)
		}
		last = max(last, j.Member.Czxid)
	}
}

// A child that joins, and is deleted and created again between the
// listing and the read of its data, while another child joins between
// the two: the read finds the newer life, which came after the other
// join. Before, it was reported in the first listing, so a join came
// before an earlier one, in a listing older than itself.
func TestAttackJoinReadAfterItsListingIsNotReportedEarly(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	dir := a.Registry.Layout().ServicePath("svc")
	data := registrationData(t, a, conn, "svc")
	acl := zk.WorldACL(zk.PermAll)

	hook := &once{}
	subscription.SetTestHookListed(t, hook.run)
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 1)
	hook.arm(func() { // after the listing that shows F, before F is read
		if _, err := conn.Create(dir+"/G", data, 0, acl); err != nil {
			t.Error(err)
		}
		if _, err := conn.Multi(&zk.DeleteRequest{Path: dir + "/F", Version: -1},
			&zk.CreateRequest{Path: dir + "/F", Data: data, Acl: acl}); err != nil {
			t.Error(err)
		}
	})
	if _, err := conn.Create(dir+"/F", data, 0, acl); err != nil {
		t.Fatal(err)
	}
	hook.wait(t)
	converges(t, rec, conn, dir, isRegistration)
	joinsWithinTheirListing(t, rec.messages())
}

// A kept child deleted between a listing and its check (exists), after
// another child joined: the leave came after that join. Before, the
// leave was reported with the listing, one listing before the join.
func TestAttackLeaveAfterTheListingIsNotReportedBeforeAnEarlierJoin(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	data := registrationData(t, a, conn, "src")
	dir := a.Registry.Layout().ServicePath("svc")
	acl := zk.WorldACL(zk.PermAll)
	if _, err := zkutil.CreateWithParents(conn, root, dir+"/X", data, 0, acl); err != nil {
		t.Fatal(err)
	}

	hook := &once{}
	subscription.SetTestHookListed(t, hook.run)
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 1)
	hook.arm(func() { // after the listing, before X is checked
		if _, err := conn.Create(dir+"/G", data, 0, acl); err != nil {
			t.Error(err)
		}
		if err := conn.Delete(dir+"/X", -1); err != nil {
			t.Error(err)
		}
	})
	// A child that comes and goes in one transaction: the names do not
	// change, the children version does, so X is checked.
	if _, err := conn.Multi(&zk.CreateRequest{Path: dir + "/Y", Data: data, Acl: acl},
		&zk.DeleteRequest{Path: dir + "/Y", Version: -1}); err != nil {
		t.Fatal(err)
	}
	hook.wait(t)
	converges(t, rec, conn, dir, isRegistration)
	var leftX, joinedG int64 = -1, -1
	for _, m := range rec.messages() {
		switch m := m.(type) {
		case *subv1.Left:
			if m.Member.Id == "X" {
				leftX = m.Zxid
			}
		case *subv1.Joined:
			if m.Member.Id == "G" {
				joinedG = m.Zxid
			}
		}
	}
	if leftX < 0 || joinedG < 0 {
		t.Fatalf("messages %q: no leave of X or no join of G", kinds(rec.messages()))
	}
	if leftX < joinedG {
		t.Errorf("X's leave in the listing of zxid %d, before G's join in that of %d: but X left after G joined", leftX, joinedG)
	}
}

// A subscriber that stopped before (or while) it subscribed: its
// subscription ends as one whose subscriber stops later does, instead of
// following a dead actor for ever.
func TestAttackSubscriberAlreadyStoppedEnds(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	subs := subscriptions(t, n, subscription.Options{})
	_, pid := newRecorder(n)
	if err := n.System.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.SubscribeNodes(ctxT(t), pid); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if a := subscription.Active(subs); a != 0 {
			return fmt.Errorf("%d subscriptions of a stopped actor still active", a)
		}
		return nil
	})
}

// Close while Subscribes are under way: every Subscribe returns, none
// leaves a subscription running, and Subscribe after Close fails.
func TestAttackCloseRacingSubscribe(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	registerN(t, n, "svc", 3)
	subs := subscriptions(t, n, subscription.Options{})
	_, pid := newRecorder(n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
					return
				}
			}
		}()
	}
	subs.Close()
	wg.Wait()
	if a := subscription.Active(subs); a != 0 {
		t.Errorf("%d subscriptions active after Close", a)
	}
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
}

// A node dialed with digest credentials: its subscriptions' connection
// authenticates with them too, so a child that only that identity may
// read is a member, while an anonymous node's subscription skips it.
func TestDigestAuthCarriesOverToTheSubscriptionsConnection(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	authed := testnode.New(t, testnode.Options{Servers: zkc.Addrs(), Root: root, Auth: &cluster.DigestAuth{User: "owner", Password: "secret"}})
	anonymous := newNode(t, zkc.Addrs(), root, 0)
	conn := zkc.Connect(t)
	owner := zkc.Connect(t)
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	dir := a.Registry.Layout().ServicePath("svc")
	data := registrationData(t, a, conn, "svc")
	if _, err := owner.Create(dir+"/locked", data, 0, zk.DigestACL(zk.PermAll, "owner", "secret")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    *node
		want int
	}{{authed, 2}, {anonymous, 1}} {
		subs := subscriptions(t, tc.n, subscription.Options{})
		rec, pid := newRecorder(tc.n)
		if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
			t.Fatal(err)
		}
		rec.await(t, 1)
		if got := len(rec.messages()[0].(*subv1.Snapshot).Members); got != tc.want {
			t.Errorf("snapshot of %d members, want %d", got, tc.want)
		}
	}
}
