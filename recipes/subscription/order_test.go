package subscription_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/zktest"
)

// changes summarises the messages after the snapshot as "L A, J C, ...".
func changes(msgs []any) string {
	var parts []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *subv1.Joined:
			parts = append(parts, "J "+m.Member.Id)
		case *subv1.Left:
			parts = append(parts, "L "+m.Member.Id)
		}
	}
	return strings.Join(parts, ", ")
}

// orderFixture is a service directory with raw members s0..s{n-1} (valid
// Registration data), and a subscriber that has its snapshot.
func orderFixture(t *testing.T, n int) (conn *zk.Conn, dir string, data []byte, rec *recorder) {
	t.Helper()
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	conn = zkc.Connect(t)
	data = registrationData(t, a, conn, "src")
	dir = a.Registry.Layout().ServicePath("svc")
	for i := range n {
		if _, err := zkutil.CreateWithParents(conn, root, fmt.Sprintf("%s/s%d", dir, i), data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 1)
	if got := len(rec.messages()[0].(*subv1.Snapshot).Members); got != n {
		t.Fatalf("snapshot of %d members, want %d", got, n)
	}
	return conn, dir, data, rec
}

// One transaction that deletes and creates members in turn: ZooKeeper
// applies (and reports) its operations in their order, and so must the
// subscription. Before (children watches and listings), a listing put
// the leaves first: "L s0, L s1, J c0, J c1".
func TestOrderOfAMultiIsZooKeepers(t *testing.T) {
	conn, dir, data, rec := orderFixture(t, 2)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := conn.Multi(
		&zk.DeleteRequest{Path: dir + "/s0", Version: -1},
		&zk.CreateRequest{Path: dir + "/c0", Data: data, Acl: acl},
		&zk.DeleteRequest{Path: dir + "/s1", Version: -1},
		&zk.CreateRequest{Path: dir + "/c1", Data: data, Acl: acl},
	); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 5)
	converges(t, rec, conn, dir, isRegistration)
	if got, want := changes(rec.messages()), "L s0, J c0, L s1, J c1"; got != want {
		t.Errorf("messages %q, want %q (ZooKeeper's order)", got, want)
	}
}

// Joins and leaves from another client, one transaction each, as fast as
// it can: the subscriber's messages are those changes, one by one, in the
// order they were applied, each join with the member's own creation zxid.
// Before, the changes between two listings were coalesced, leaves first.
func TestOrderOfATightLoopIsZooKeepers(t *testing.T) {
	const n = 40
	conn, dir, data, rec := orderFixture(t, n)
	acl := zk.WorldACL(zk.PermAll)
	var want []string
	czxids := map[string]int64{}
	for i := range n {
		c := fmt.Sprintf("c%d", i)
		if _, err := conn.Create(dir+"/"+c, data, 0, acl); err != nil {
			t.Fatal(err)
		}
		if err := conn.Delete(fmt.Sprintf("%s/s%d", dir, i), -1); err != nil {
			t.Fatal(err)
		}
		want = append(want, "J "+c, fmt.Sprintf("L s%d", i))
	}
	for i := range n {
		c := fmt.Sprintf("c%d", i)
		_, st, err := conn.Exists(dir + "/" + c)
		if err != nil {
			t.Fatal(err)
		}
		czxids[c] = st.Czxid
	}
	rec.await(t, 1+2*n)
	converges(t, rec, conn, dir, isRegistration)
	msgs := rec.messages()
	if got := changes(msgs); got != strings.Join(want, ", ") {
		t.Fatalf("messages\n%s\nwant ZooKeeper's order\n%s", got, strings.Join(want, ", "))
	}
	for _, m := range msgs {
		if j, ok := m.(*subv1.Joined); ok && j.Member.Czxid != czxids[j.Member.Id] {
			t.Errorf("join of %s with czxid %d, its znode's is %d", j.Member.Id, j.Member.Czxid, czxids[j.Member.Id])
		}
	}
}

// A child deleted before its data could be read (the deletion comes
// before the read's reply): neither its join nor its leave is reported,
// and what follows is reported in order.
func TestChildDeletedBeforeItsReadIsNeverReported(t *testing.T) {
	conn, dir, data, rec := orderFixture(t, 1)
	acl := zk.WorldACL(zk.PermAll)
	hook := &once{}
	subscription.SetTestHookListed(t, hook.run)
	hook.arm(func() { // X's creation has arrived; its read is not sent yet
		if err := conn.Delete(dir+"/X", -1); err != nil {
			t.Error(err)
		}
		if _, err := conn.Create(dir+"/Y", data, 0, acl); err != nil {
			t.Error(err)
		}
	})
	if _, err := conn.Create(dir+"/X", data, 0, acl); err != nil {
		t.Fatal(err)
	}
	hook.wait(t)
	if err := conn.Delete(dir+"/s0", -1); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 3)
	converges(t, rec, conn, dir, isRegistration)
	if got, want := changes(rec.messages()), "J Y, L s0"; got != want {
		t.Errorf("messages %q, want %q", got, want)
	}
}

// A member's data changed in place by another client (zkactor itself
// re-registers with a delete and a create): the member stays as it
// joined, and nothing is sent.
func TestDataChangeOfAMemberIsNotAMessage(t *testing.T) {
	conn, dir, data, rec := orderFixture(t, 2)
	if _, err := conn.Set(dir+"/s0", []byte("not a registration any more"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(dir+"/after", data, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 2)
	if got, want := changes(rec.messages()), "J after"; got != want {
		t.Errorf("messages %q, want %q", got, want)
	}
	rec.check(t)
}

// The directory deleted (its members first) and created again with new
// members: leaves, then joins, in ZooKeeper's order; and after a gap the
// re-created directory is listed against what the subscriber holds.
func TestDirectoryDeletedAndCreatedAgain(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	conn := zkc.Connect(t)
	data := registrationData(t, a, conn, "src")
	dir := a.Registry.Layout().ServicePath("svc")
	acl := zk.WorldACL(zk.PermAll)
	for _, n := range []string{"a", "b"} {
		if _, err := zkutil.CreateWithParents(conn, root, dir+"/"+n, data, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	subs := subscriptions(t, b, subscription.Options{})
	rec, pid := newRecorder(b)
	if _, err := subs.Subscribe(ctxT(t), "svc", pid); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 1)
	if _, err := conn.Multi(
		&zk.DeleteRequest{Path: dir + "/b", Version: -1},
		&zk.DeleteRequest{Path: dir + "/a", Version: -1},
		&zk.DeleteRequest{Path: dir, Version: -1},
		&zk.CreateRequest{Path: dir, Acl: acl},
		&zk.CreateRequest{Path: dir + "/a", Data: data, Acl: acl},
	); err != nil {
		t.Fatal(err)
	}
	rec.await(t, 4)
	converges(t, rec, conn, dir, isRegistration)
	if got, want := changes(rec.messages()), "L b, L a, J a"; got != want {
		t.Errorf("messages %q, want %q", got, want)
	}

	// Cut off, the directory is replaced again with a member of the same
	// name: its children version alone would show no change.
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if s := subscription.WatchServer(subs); s != "" {
			return fmt.Errorf("the subscriptions are still connected to %s", s)
		}
		return nil
	})
	if _, err := conn.Multi(
		&zk.DeleteRequest{Path: dir + "/a", Version: -1},
		&zk.DeleteRequest{Path: dir, Version: -1},
		&zk.CreateRequest{Path: dir, Acl: acl},
		&zk.CreateRequest{Path: dir + "/a", Data: data, Acl: acl},
	); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	rec.await(t, 6)
	converges(t, rec, conn, dir, isRegistration)
	if got, want := changes(rec.messages()), "L b, L a, J a, L a, J a"; got != want {
		t.Errorf("messages %q, want %q", got, want)
	}
}
