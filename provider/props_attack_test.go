package provider_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/provider"
	"github.com/zkactor/zkactor/test/zktest"
)

// Properties that held under attack.

// TestAttackClientCreatesNothing: a client (StartClient) on a root where
// no member ever ran, asked for identities and members, creates no znode
// at all: not even the root.
func TestAttackClientCreatesNothing(t *testing.T) {
	root := zktest.Root(t)
	client := startChild(t, childOpts{role: "client", servers: servers(t), root: root})
	for i := range 3 {
		if _, err := client.try("lookup", fmt.Sprintf("nobody-%d", i), "counter"); err == nil ||
			!strings.Contains(err.Error(), provider.ErrNoMember.Error()) {
			t.Fatalf("lookup without members: %v, want ErrNoMember", err)
		}
	}
	if got := client.do("members"); got != "" {
		t.Fatalf("client sees members [%s]", got)
	}
	if _, err := client.try("singleton", "ledger"); err == nil || !strings.Contains(err.Error(), provider.ErrNotMember.Error()) {
		t.Fatalf("client's singleton: %v, want ErrNotMember", err)
	}
	conn := zktest.Shared(t).Connect(t)
	if ok, _, err := conn.Exists(root); err != nil || ok {
		t.Fatalf("%s exists = %v, %v after a client's lookups: it created znodes", root, ok, err)
	}
}

// TestAttackNamesSlashUnicodeAndLength: identities that ZooKeeper accepts
// as one path component (unicode, 255 bytes) are activated at exactly
// their own znode; '/', U+FFFD, characters beyond U+FFFF and 256 bytes are
// refused with cluster.ErrBadName, and leave no znode.
func TestAttackNamesSlashUnicodeAndLength(t *testing.T) {
	root := zktest.Root(t)
	a := startChild(t, childOpts{servers: servers(t), root: root})
	waitMembers(t, ids(a), a)
	conn := zktest.Shared(t).Connect(t)
	long := strings.Repeat("é", 127) + "x" // 255 bytes
	for _, id := range []string{"ünï-日本", long, "a$1", "zkactor-activator"} {
		res, err := a.try("lookup", id, "counter")
		if err != nil {
			t.Fatalf("lookup %q: %v", id, err)
		}
		path := provider.ActivationPath(cluster.Layout{Root: root}, "counter", id)
		if ok, _, err := conn.Exists(path); err != nil || !ok {
			t.Fatalf("%q activated (%s) but %s exists = %v, %v", id, res, path, ok, err)
		}
	}
	for _, id := range []string{"a/b", "x\ufffd", "x😀", long + "y", "..", "/"} {
		if _, err := a.try("lookup", id, "counter"); err == nil || !strings.Contains(err.Error(), cluster.ErrBadName.Error()) {
			t.Errorf("lookup %q: %v, want ErrBadName", id, err)
		}
	}
	kids, _, err := conn.Children(root + "/activations/counter")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 4 {
		t.Errorf("activations: %q, want the 4 good names only", kids)
	}
}

// TestAttackGarbageFromOtherClients: znodes that other clients put under
// <root>/nodes (unreadable data, a node without kinds, a member record with
// a bad address) are not members, and an unreadable activation record
// blocks only its own identity (with an error, no crash); every other
// identity is answered, and the member list stays right.
func TestAttackGarbageFromOtherClients(t *testing.T) {
	root := zktest.Root(t)
	conn := zktest.Shared(t).Connect(t)
	mk := func(path string, data []byte, flags int32) {
		t.Helper()
		parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
		for i := 1; i < len(parts); i++ {
			if _, err := conn.Create("/"+strings.Join(parts[:i], "/"), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatal(err)
			}
		}
		if _, err := conn.Create(path, data, flags, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mk(root+"/nodes/garbage", []byte("\xff\x00not a record"), zk.FlagEphemeral)
	mk(root+"/nodes/plain", marshal(&zkactorv1.Node{Id: "plain", Address: "127.0.0.1:1"}), zk.FlagEphemeral)
	mk(root+"/nodes/badaddr", marshal(&zkactorv1.Node{Id: "badaddr", Address: "nowhere", Kinds: []string{"counter"}}), zk.FlagEphemeral)
	mk(root+"/activations/counter/junk", []byte("junk"), zk.FlagEphemeral)

	a := startChild(t, childOpts{servers: servers(t), root: root})
	b := startChild(t, childOpts{servers: servers(t), root: root})
	waitMembers(t, ids(a, b), a, b)
	// More garbage while they run.
	mk(root+"/nodes/late-garbage", []byte{0x0a, 0xff}, zk.FlagEphemeral)
	mk(root+"/activations/counter/late-junk", marshal(&zkactorv1.Activation{Kind: "counter"}), zk.FlagEphemeral)
	for i := range 6 {
		requestEventually(t, a, fmt.Sprintf("clean-%d", i), "incr")
	}
	for _, id := range []string{"junk", "late-junk"} {
		if _, err := b.try("lookup", id, "counter"); err == nil {
			t.Errorf("lookup of %s, whose znode holds garbage: no error", id)
		}
	}
	waitMembers(t, ids(a, b), a, b)
}
