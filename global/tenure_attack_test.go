package global_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// A tenure's znode is replaced by another of the same session (another
// application on the node took the freed role, as package rolematch
// does): its path is shared, and the session alone does not tell the two
// apart. Set, delete and create again in one transaction fire the
// tenure's watch once, for the set; the tenure must then see that the
// znode is not the one whose epoch its actor runs with, stop the actor,
// end as lost, and leave the new znode alone. Before the fix it took the
// new znode for its own and its actor ran on beside the new holder.
func TestAttackTenureZnodeReplacedBySameSession(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 4*time.Second)
	other := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := other.Create(root, nil, 0, acl); err != nil && err != zk.ErrNodeExists {
		t.Fatal(err)
	}
	var j journal
	tenure, err := n.Elections.NewTenure("job", "job")
	if err != nil {
		t.Fatal(err)
	}
	p := root + "/job"
	if _, err := n.Session.Conn().Create(p, []byte("ours"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	tenure.Start(p, n.Session.ID(), j.props("job"))
	zktest.Eventually(t, 10*time.Second, func() error {
		if r := j.running(); len(r) != 1 || r[0].epoch == 0 {
			return fmt.Errorf("%d running", len(r))
		}
		return nil
	})
	if _, err := n.Session.Conn().Multi(
		&zk.SetDataRequest{Path: p, Data: []byte("changed"), Version: -1},
		&zk.DeleteRequest{Path: p, Version: -1},
		&zk.CreateRequest{Path: p, Data: []byte("theirs"), Acl: acl, Flags: zk.FlagEphemeral},
	); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tenure.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the tenure did not end: its znode was replaced (%d actors run)", len(j.running()))
	}
	if !tenure.Lost() {
		t.Error("Lost() = false, want true")
	}
	if n := len(j.running()); n != 0 {
		t.Errorf("%d actors still run", n)
	}
	if data, _, err := other.Get(p); err != nil || string(data) != "theirs" {
		t.Errorf("the new znode: %q, %v; want it left alone", data, err)
	}
}

// A tenure prepared but not started yet (its creator waits for a create
// that ZooKeeper has not answered) when the Elections close: Close must
// not wait for it (it would until ctx ends, reporting a busy global), and
// a Start after that does nothing.
func TestAttackCloseWithAnUnstartedTenure(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 4*time.Second)
	tenure, err := n.Elections.NewTenure("job", "job")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Elections.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-tenure.Done():
	default:
		t.Fatal("the unstarted tenure did not end with the Elections")
	}
	var j journal
	tenure.Start(root+"/job", n.Session.ID(), j.props("job")) // nothing runs
	if _, ok := n.System.ProcessRegistry.GetLocal(tenure.PID().Id); ok {
		t.Error("something is registered under the tenure's PID")
	}
}
