package zkutil_test

import (
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

func TestCreateWithParents(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)

	leaf := root + "/services/worker/reg"
	got, err := zkutil.CreateWithParents(c, root, leaf, []byte("x"), zk.FlagEphemeral, acl)
	if err != nil || got != leaf {
		t.Fatalf("CreateWithParents = %q, %v", got, err)
	}
	// The parents exist and are not ephemeral. (That the immediate one is
	// a container shows only when the server reaps it, after a minute by
	// default; go-zookeeper's Stat does not say.)
	for _, path := range []string{root + "/services/worker", root + "/services", root} {
		_, stat, err := c.Get(path)
		if err != nil {
			t.Fatalf("get %s: %v", path, err)
		}
		if stat.EphemeralOwner != 0 {
			t.Errorf("%s is ephemeral", path)
		}
	}
	if err := zkutil.Delete(c, leaf, -1); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Deleting what is gone is success; a wrong version is not.
	if err := zkutil.Delete(c, leaf, -1); err != nil {
		t.Fatalf("Delete of a missing znode = %v, want nil", err)
	}
	// A sequential create one level below root: its parent is persistent.
	seq, err := zkutil.CreateWithParents(c, root, root+"/jobs/j-", nil, zk.FlagSequence, acl)
	if err != nil || len(seq) <= len(root+"/jobs/j-") {
		t.Fatalf("sequential CreateWithParents = %q, %v", seq, err)
	}
	if err := zkutil.Delete(c, seq, 42); err != zk.ErrBadVersion {
		t.Fatalf("Delete with a wrong version = %v, want ErrBadVersion", err)
	}
	if err := zkutil.Delete(c, seq, -1); err != nil {
		t.Fatal(err)
	}
	// The jobs parent (one level below root) is persistent: it stays.
	if ok, _, err := c.Exists(root + "/jobs"); err != nil || !ok {
		t.Fatalf("persistent parent %s/jobs gone: %v, %v", root, ok, err)
	}
}

// EnsureParent then CreateWithParents makes the whole chain under a fresh root, and works as
// well when the parent exists already.
func TestEnsureParent(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	c := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	for _, leaf := range []string{root + "/services/a/r1", root + "/services/a/r2", root + "/services/b/r1"} {
		got, err := createParentFirst(c, root, leaf, []byte("x"), zk.FlagEphemeral, acl)
		if err != nil || got != leaf {
			t.Fatalf("createParentFirst(%s) = %q, %v", leaf, got, err)
		}
		data, stat, err := c.Get(leaf)
		if err != nil || string(data) != "x" || stat.EphemeralOwner != c.SessionID() {
			t.Fatalf("get %s: %q %+v %v", leaf, data, stat, err)
		}
	}
	// A leaf whose parent is "/": nothing to make.
	if _, err := createParentFirst(c, root, root+"-top", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
}

// createParentFirst is EnsureParent, then CreateWithParents: how the keeper
// makes the first registration of a name.
func createParentFirst(c *zk.Conn, root, path string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	if err := zkutil.EnsureParent(c, root, path, acl); err != nil {
		return "", err
	}
	return zkutil.CreateWithParents(c, root, path, data, flags, acl)
}
