package cluster_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

// These need no ZooKeeper server.

func TestValidateName(t *testing.T) {
	bad := []string{
		"", "a/b", "/", ".", "..", "tab\there", "nul\x00", "bell\a", "del\x7f", "c1\u0085",
		"\xff\xfe", "half\xe2\x82", strings.Repeat("x", cluster.MaxNameLength+1),
		"rep\ufffd", "obj\ufffc", "spec\ufff0", "max\uffff", "pua\ue000", "pua\uf8ff", "goz\uf000",
		"emoji\U0001F600", "astral\U00010000",
	}
	for _, name := range bad {
		if err := cluster.ValidateName(name); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("ValidateName(%q) = %v, want ErrBadName", name, err)
		}
	}
	good := []string{
		"worker", "a b", "ünïcødé", "x.y-z_1", ".hidden", "...", "a..b", "zookeeper",
		"nbsp\u00a0", "cjk\u4e2d", "before-surrogates\ud7ff", "after-pua\uf900", "\uffef",
		strings.Repeat("x", cluster.MaxNameLength), strings.Repeat("é", cluster.MaxNameLength/2),
	}
	for _, name := range good {
		if err := cluster.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
}

// zkCheck is go-zookeeper's own path validation, reached through a closed
// connection: Create validates the path before it queues the request, so a
// closed connection answers ErrInvalidPath for a bad path and
// ErrConnectionClosed for a good one. go-zookeeper exports no checker.
var zkCheck = sync.OnceValue(func() *zk.Conn {
	c, events, err := zk.Connect([]string{"127.0.0.1:1"}, time.Second,
		zk.WithLogger(discardZKLogger{}),
		zk.WithDialer(func(string, string, time.Duration) (netConn, error) { return nil, errors.New("no dialing") }))
	if err != nil {
		panic(err)
	}
	c.Close()
	for range events { // closed once go-zookeeper's goroutines are done
	}
	return c
})

func goZKAccepts(t testing.TB, path string) bool {
	_, err := zkCheck().Create(path, nil, 0, zk.WorldACL(zk.PermAll))
	switch {
	case errors.Is(err, zk.ErrInvalidPath):
		return false
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrClosing):
		return true
	}
	t.Fatalf("create %q on a closed connection: unexpected %v", path, err)
	return false
}

func TestGoZookeeperAgrees(t *testing.T) {
	for _, name := range []string{"ok", "a\ufffd", "a\x00", ".", "..", "a\uf000", "\xff"} {
		want := cluster.ValidateName(name) == nil
		if got := goZKAccepts(t, "/r/"+name); want && !got {
			t.Errorf("ValidateName accepts %q, go-zookeeper refuses it", name)
		}
	}
}

// FuzzValidateName: whatever ValidateName accepts, go-zookeeper accepts as
// a path component; and ValidateName never panics.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"worker", "a b", ".", "..", "a/b", "\ufffd", "\ufffc", "\uffff", "\U0001F600", "\ud7ff", "\ue000", "\x7f", "é", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := cluster.ValidateName(name)
		if err != nil {
			if !errors.Is(err, cluster.ErrBadName) {
				t.Fatalf("ValidateName(%q) = %v, not ErrBadName", name, err)
			}
			return
		}
		if !utf8.ValidString(name) || len(name) > cluster.MaxNameLength {
			t.Fatalf("ValidateName accepted %q", name)
		}
		if !goZKAccepts(t, "/r/"+name) {
			t.Fatalf("ValidateName accepts %q, go-zookeeper refuses /r/%s", name, name)
		}
	})
}

// TestValidateNameMatchesServer creates a znode for a name on each side of
// every boundary of ValidateName's rule: ValidateName accepts exactly the
// names the server (and go-zookeeper) accept.
func TestValidateNameMatchesServer(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	if _, err := zkutil.CreateWithParents(raw, root, root+"/probe", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	runes := []rune{
		0x01, 0x1f, 0x20, 0x7e, 0x7f, 0x9f, 0xa0, 0xd7ff, 0xe000, 0xefff, 0xf000, 0xf8ff, 0xf900,
		0xffef, 0xfff0, 0xfffc, 0xfffd, 0xfffe, 0xffff, 0x10000, 0x1f600, 0x10ffff,
	}
	var names []string
	for _, r := range runes {
		names = append(names, fmt.Sprintf("n%c", r))
	}
	names = append(names, ".", "..", "...", ".x", "zookeeper")
	for _, name := range names {
		path := root + "/" + name
		_, err := raw.Create(path, nil, 0, zk.WorldACL(zk.PermAll))
		accepted := err == nil
		if err != nil && !errors.Is(err, zk.ErrInvalidPath) && !errors.Is(err, zk.ErrBadArguments) {
			t.Fatalf("create %q: %v", path, err)
		}
		valid := cluster.ValidateName(name) == nil
		if accepted != valid {
			t.Errorf("name %q (%U): ZooKeeper accepts: %v (%v), ValidateName accepts: %v", name, []rune(name), accepted, err, valid)
		}
	}
}

type netConn = net.Conn

type discardZKLogger struct{}

func (discardZKLogger) Printf(string, ...any) {}
