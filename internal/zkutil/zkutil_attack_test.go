package zkutil_test

import (
	"slices"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// Property: under a missing, deep root, EnsureParent (then the create) and
// CreateWithParents make every level bottom up: those above root with an
// open ACL, root and below with the caller's, and the leaf.
func TestAttackParentsAndACLsUnderMissingRoot(t *testing.T) {
	zkc := zktest.Shared(t)
	base := zktest.Root(t)
	c := zkc.Connect(t)
	if err := c.AddAuth("digest", []byte("u:p")); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, "u", "p")
	for _, fn := range []struct {
		name   string
		create func(*zk.Conn, string, string, []byte, int32, []zk.ACL) (string, error)
	}{{"with-parents", zkutil.CreateWithParents}, {"parent-first", createParentFirst}} {
		root := base + "/" + fn.name + "/x/root"
		leaf := root + "/services/svc/reg"
		if got, err := fn.create(c, root, leaf, []byte("d"), zk.FlagEphemeral, acl); err != nil || got != leaf {
			t.Fatalf("%s: %q, %v", fn.name, got, err)
		}
		// Root's direct child as leaf: root exists now, the parent is root.
		if _, err := fn.create(c, root, root+"/direct", nil, zk.FlagEphemeral, acl); err != nil {
			t.Fatalf("%s: leaf under root: %v", fn.name, err)
		}
		for _, p := range []string{base + "/" + fn.name, base + "/" + fn.name + "/x"} {
			got, _, err := c.GetACL(p)
			if err != nil || !slices.Equal(got, zk.WorldACL(zk.PermAll)) {
				t.Errorf("%s: above root %s has ACL %v (%v), want world", fn.name, p, got, err)
			}
		}
		for _, p := range []string{root, root + "/services", root + "/services/svc"} {
			got, _, err := c.GetACL(p)
			if err != nil || len(got) != 1 || got[0].Scheme != "digest" {
				t.Errorf("%s: %s has ACL %v (%v), want the caller's digest", fn.name, p, got, err)
			}
		}
		// Existing chain: one more leaf under the same parent.
		if _, err := fn.create(c, root, root+"/services/svc/reg2", nil, zk.FlagEphemeral, acl); err != nil {
			t.Fatalf("%s: second leaf: %v", fn.name, err)
		}
	}
}
