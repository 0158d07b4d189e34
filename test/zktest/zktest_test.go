package zktest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createRoot creates /t and the test's root, returning the root's path.
func createRoot(t *testing.T, conn *zk.Conn) string {
	t.Helper()
	root := zktest.Root(t)
	if _, err := conn.Create("/t", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create /t: %v", err)
	}
	if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", root, err)
	}
	return root
}

func TestStandalone(t *testing.T) {
	c := zktest.Start(t)
	if c.Len() != 1 || len(c.Addrs()) != 1 || !strings.HasPrefix(c.Addrs()[0], "127.0.0.1:") {
		t.Fatalf("Len %d, Addrs %v: want one loopback server", c.Len(), c.Addrs())
	}
	if got := c.Leader(t); got != 0 {
		t.Fatalf("Leader = %d, want 0", got)
	}
	reply, err := c.Srvr(0)
	if err != nil || !strings.Contains(reply, "Mode: standalone") {
		t.Fatalf("Srvr(0) = %q, %v; want Mode: standalone", reply, err)
	}

	conn := c.Connect(t)
	root := createRoot(t, conn)
	if _, err := conn.Create(root+"/greeting", []byte("hello"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	data, _, err := conn.Get(root + "/greeting")
	if err != nil || string(data) != "hello" {
		t.Fatalf("get = %q, %v; want hello", data, err)
	}
}

func TestEnsembleFailover(t *testing.T) {
	begin := time.Now()
	c := zktest.StartEnsemble(t, 3)
	t.Logf("ensemble serving after %v", time.Since(begin))
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	conn := c.Connect(t)
	root := createRoot(t, conn)

	leader := c.Leader(t)
	killed := time.Now()
	c.Kill(leader)
	// The write may be applied even if its reply is lost in the failover, so "exists" counts.
	waitFor(t, 30*time.Second, "write after killing the leader", func() bool {
		_, err := conn.Create(root+"/after-failover", nil, 0, zk.WorldACL(zk.PermAll))
		return err == nil || errors.Is(err, zk.ErrNodeExists)
	})
	t.Logf("writes resumed %v after the leader was killed", time.Since(killed))
	if next := c.Leader(t); next == leader {
		t.Fatalf("Leader = %d after killing it", next)
	}
	if _, err := c.Srvr(leader); err == nil {
		t.Fatalf("killed server %d still answers srvr", leader)
	}

	c.Restart(leader)
	reply, err := c.Srvr(leader)
	if err != nil || !strings.Contains(reply, "Mode: follower") {
		t.Fatalf("restarted server: Srvr = %q, %v; want Mode: follower", reply, err)
	}

	// A graceful stop of a follower leaves the quorum intact.
	follower := (leader + 1) % c.Len()
	if follower == c.Leader(t) {
		follower = (follower + 1) % c.Len()
	}
	c.Stop(follower)
	if _, err := conn.Create(root+"/after-stop", nil, 0, zk.WorldACL(zk.PermAll)); err != nil &&
		!errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("create with one follower stopped: %v", err)
	}
	c.Restart(follower)
	c.WaitServing(t, follower)
	if _, _, err := conn.Get(root + "/after-failover"); err != nil {
		t.Fatalf("get after restarts: %v", err)
	}
}

func TestRoot(t *testing.T) {
	a, b := zktest.Root(t), zktest.Root(t)
	if a == b || !strings.HasPrefix(a, "/t/TestRoot-") {
		t.Fatalf("Root = %q and %q: want two distinct paths under /t/TestRoot-", a, b)
	}
	t.Run("sub/test name", func(t *testing.T) {
		if r := zktest.Root(t); !strings.HasPrefix(r, "/t/TestRoot_sub_test_name-") {
			t.Fatalf("Root = %q", r)
		}
	})
}

func TestShared(t *testing.T) {
	c := zktest.Shared(t)
	if c != zktest.Shared(t) {
		t.Fatal("Shared returned two clusters")
	}
	conn := c.Connect(t)
	root := createRoot(t, conn)
	if ok, _, err := conn.Exists(root); err != nil || !ok {
		t.Fatalf("exists %s = %v, %v", root, ok, err)
	}
}
