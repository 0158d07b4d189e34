package global_test

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// Another client deletes a persistent znode of the candidate shape and
// creates an ephemeral one under the same name, in one transaction: the
// name did not change, but the znode now takes part. ObserveQueue counted
// it as it was when first seen (its memo held a name's verdict for the
// directory's life), so its size stayed one short of the queue for as
// long as the znode lived.
func TestAttackObserveQueueSeesANameReused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	monitor := newNode(t, zkc.Addrs(), root, 4*time.Second)
	conn := zkc.Connect(t)
	dir := monitor.Registry.Layout().GlobalPath("boss")
	acl := zk.WorldACL(zk.PermAll)
	reused := dir + "/_c_0123456789abcdef0123456789abcdef-c-0000000005"

	sizes := monitor.Elections.ObserveQueue(ctx, "boss")
	size(t, sizes, 0)
	if _, err := zkutil.CreateWithParents(conn, root, reused, nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(dir+"/_c_fedcba9876543210fedcba9876543210-c-", nil, zk.FlagEphemeral|zk.FlagSequence, acl); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 1) // the listing that counts it has seen the persistent one too
	if _, err := conn.Multi(&zk.DeleteRequest{Path: reused, Version: -1},
		&zk.CreateRequest{Path: reused, Acl: acl, Flags: zk.FlagEphemeral}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(dir+"/_c_fedcba9876543210fedcba9876543210-c-", nil, zk.FlagEphemeral|zk.FlagSequence, acl); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 3)
	if q, err := monitor.Elections.Queue(ctx, "boss"); err != nil || len(q) != 3 {
		t.Fatalf("queue %+v, %v: want 3", q, err)
	}
}

// Another client's ephemeral candidate whose ACL does not let this node
// read its data holds its place like one with garbage data (no PID).
// Queue and Place failed with NoAuth while it lived: a monitor saw no
// queue at all. (It queues behind a candidate of ours: ahead of one,
// RegisterCandidate's own read of the leader fails, which is global's
// election code, not the queue's.)
func TestAttackQueueWithAnUnreadableCandidate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	monitor := newNode(t, zkc.Addrs(), root, 4*time.Second)
	n := newNode(t, zkc.Addrs(), root, 4*time.Second)
	owner := zkc.Connect(t)
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	dir := monitor.Registry.Layout().GlobalPath("boss")
	sizes := monitor.Elections.ObserveQueue(ctx, "boss")
	size(t, sizes, 0)
	if _, err := n.Elections.RegisterCandidate(ctx, "boss", idle()); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 1)
	if _, err := owner.Create(dir+"/_c_fedcba9876543210fedcba9876543210-c-", []byte("x"),
		zk.FlagEphemeral|zk.FlagSequence, zk.DigestACL(zk.PermAll, "owner", "secret")); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 2)
	q, err := monitor.Elections.Queue(ctx, "boss")
	if err != nil {
		t.Fatalf("Queue with an unreadable candidate: %v", err)
	}
	if len(q) != 2 || q[0].NodeID != n.Registry.NodeID() || q[1].PID != nil || q[1].Session != owner.SessionID() || q[1].Position != 1 {
		t.Fatalf("queue %+v: want %s's candidate, then the unreadable one (no PID)", q, n.Registry.NodeID())
	}
	if p, err := n.Elections.Place(ctx, "boss"); err != nil || p != 0 {
		t.Fatalf("Place = %d, %v; want 0", p, err)
	}
}
