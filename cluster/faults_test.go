package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

// waitGone waits until path no longer exists, as a separate client sees it.
func waitGone(t testing.TB, raw *zk.Conn, path string, timeout time.Duration) {
	t.Helper()
	zktest.Eventually(t, timeout, func() error {
		ok, _, err := raw.Exists(path)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%s still exists", path)
		}
		return nil
	})
}

// waitExists waits until path exists, as a separate client sees it.
func waitExists(t testing.TB, raw *zk.Conn, path string, timeout time.Duration) *zk.Stat {
	t.Helper()
	var stat *zk.Stat
	zktest.Eventually(t, timeout, func() error {
		ok, s, err := raw.Exists(path)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s does not exist", path)
		}
		stat = s
		return nil
	})
	return stat
}

func registrationPath(t testing.TB, raw *zk.Conn, n *node, name string) string {
	t.Helper()
	dir := n.Registry.Layout().ServicePath(name)
	var path string
	zktest.Eventually(t, 5*time.Second, func() error {
		kids, _, err := raw.Children(dir)
		if err != nil || len(kids) != 1 {
			return fmt.Errorf("children of %s = %v, %v; want one", dir, kids, err)
		}
		path = dir + "/" + kids[0]
		return nil
	})
	return path
}

func TestSessionExpiryIsSurvived(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: root, timeout: time.Second})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	raw := zkc.Connect(t)
	ctx := ctxT(t)

	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "survivor", pid, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "survivor", pid)
	// A caches a lookup of B's service, which changes while A is away.
	bpid := b.Spawn(t)
	if err := b.Registry.Register(ctx, "b-svc", bpid, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, a, "b-svc", bpid)
	regPath := registrationPath(t, raw, a, "survivor")
	nodePath := a.Registry.Layout().NodePath(a.Registry.NodeID())
	oldSession := a.Session.ID()

	expired := make(chan struct{}, 1)
	stop := a.Session.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired {
			select {
			case expired <- struct{}{}:
			default:
			}
		}
	})
	defer stop()

	// Silence A past its session timeout: the servers expire the session
	// and delete its ephemerals.
	proxy.Blackhole()
	waitGone(t, raw, regPath, 10*time.Second)
	waitGone(t, raw, nodePath, time.Second)
	if err := b.Registry.Unregister(ctx, "b-svc", bpid); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()

	select {
	case <-expired:
	case <-time.After(10 * time.Second):
		t.Fatal("A was not told that its session expired")
	}
	// A re-creates its node and its registration on the new session, by itself.
	stat := waitExists(t, raw, regPath, 10*time.Second)
	waitExists(t, raw, nodePath, 5*time.Second)
	if stat.EphemeralOwner == oldSession || stat.EphemeralOwner != a.Session.ID() {
		t.Errorf("registration owned by %#x; want A's new session %#x (old %#x)", stat.EphemeralOwner, a.Session.ID(), oldSession)
	}
	capable(t, b, "survivor", pid)
	// A's cache was swept: it no longer offers B's removed service.
	capable(t, a, "b-svc")
	// And A works as before.
	p2 := a.Spawn(t)
	if err := a.Registry.Register(ctx, "survivor", p2, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "survivor", pid, p2)
}

func TestConnectionCutKeepsSession(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: root, timeout: 4 * time.Second})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	raw := zkc.Connect(t)
	ctx := ctxT(t)

	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "steady", pid, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, a, "other")
	session := a.Session.ID()

	proxy.Cut()
	zktest.Eventually(t, 5*time.Second, func() error {
		if a.Session.Connected() {
			return errors.New("A still believes it is connected")
		}
		return nil
	})
	// While A is away, B registers: A's watch must deliver it after the cut.
	bpid := b.Spawn(t)
	if err := b.Registry.Register(ctx, "other", bpid, nil); err != nil {
		t.Fatal(err)
	}
	// Calls on A wait within their ctx and fail clearly.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := a.Registry.Register(short, "while-cut", a.Spawn(t), nil)
	cancel()
	if !errors.Is(err, cluster.ErrNotConnected) {
		t.Errorf("Register while cut = %v, want ErrNotConnected", err)
	}
	proxy.Restore()

	capable(t, a, "other", bpid)
	if a.Session.ID() != session {
		t.Errorf("session changed across a short cut: %#x → %#x", session, a.Session.ID())
	}
	capable(t, b, "steady", pid)
	// The abandoned create left nothing behind.
	zktest.Eventually(t, 5*time.Second, func() error {
		kids, _, err := raw.Children(a.Registry.Layout().ServicePath("while-cut"))
		if err == nil && len(kids) > 0 {
			return fmt.Errorf("orphan registration left: %v", kids)
		}
		return nil
	})
}

func TestConnectionLossDuringCreate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: root, timeout: 4 * time.Second})
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	dir := a.Registry.Layout().ServicePath("flaky")

	// 1. The connection drops while Register waits; Register is still
	// within its ctx when it comes back: exactly one znode.
	pid := a.Spawn(t)
	proxy.Blackhole()
	done := make(chan error, 1)
	go func() { done <- a.Registry.Register(ctx, "flaky", pid, nil) }()
	zktest.Eventually(t, 5*time.Second, func() error {
		if a.Session.Connected() {
			return errors.New("A still connected")
		}
		return nil
	})
	proxy.Restore()
	if err := <-done; err != nil {
		t.Fatalf("Register across a lost connection: %v", err)
	}
	kids, _, err := raw.Children(dir)
	if err != nil || len(kids) != 1 {
		t.Fatalf("children of %s = %v, %v; want exactly one", dir, kids, err)
	}

	// 2. The late create: the create reaches the server and is applied,
	// but its reply is lost, and the caller gives up. The znode exists,
	// owned by our session, while Register has returned an error: the
	// keeper must delete it once it learns the outcome. Nothing is orphaned.
	p2 := a.Spawn(t)
	proxy.DropFromTarget()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = a.Registry.Register(short, "flaky", p2, nil)
	cancel()
	if err == nil {
		t.Fatal("Register succeeded although its reply was dropped")
	}
	// The server did apply it: a second registration is there for now.
	zktest.Eventually(t, 5*time.Second, func() error {
		kids, _, err := raw.Children(dir)
		if err != nil || len(kids) != 2 {
			return fmt.Errorf("children of %s = %v, %v; want the late create applied beside the first", dir, kids, err)
		}
		return nil
	})
	proxy.Restore()
	zktest.Eventually(t, 10*time.Second, func() error {
		kids, _, err := raw.Children(dir)
		if err != nil || len(kids) != 1 {
			return fmt.Errorf("children of %s = %v, %v; want only the first registration", dir, kids, err)
		}
		return nil
	})
	capable(t, a, "flaky", pid)
	settled(t, a)
}

func TestServerRestart(t *testing.T) {
	zkc := zktest.Start(t)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, timeout: 4 * time.Second})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "restart", pid, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, a, "restart", pid)

	zkc.Kill(0)
	zktest.Eventually(t, 5*time.Second, func() error {
		if a.Session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	zkc.Restart(0)

	// The session outlives the restart (it is in the server's log) or is
	// replaced; either way the registration is there and new ones work.
	// A ctx of its own: the one above has paid for the kill and the
	// restart, which on a loaded machine take most of its ten seconds.
	after, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p2 := a.Spawn(t)
	if err := a.Registry.Register(after, "restart", p2, nil); err != nil {
		t.Fatalf("Register after restart: %v", err)
	}
	raw := zkc.Connect(t)
	zktest.Eventually(t, 10*time.Second, func() error {
		kids, _, err := raw.Children(a.Registry.Layout().ServicePath("restart"))
		if err != nil || len(kids) != 2 {
			return fmt.Errorf("registrations after restart: %v, %v; want 2", kids, err)
		}
		return nil
	})
	capable(t, a, "restart", pid, p2)
}

func TestEnsembleLeaderKilled(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3)
	root := zktest.Root(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, timeout: 4 * time.Second})
	b := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root, timeout: 4 * time.Second})
	ctx := ctxT(t)
	pid := a.Spawn(t)
	if err := a.Registry.Register(ctx, "ha", pid, nil); err != nil {
		t.Fatal(err)
	}
	capable(t, b, "ha", pid)
	session := a.Session.ID()

	zkc.Kill(zkc.Leader(t))
	p2 := b.Spawn(t)
	start := time.Now()
	if err := b.Registry.Register(ctx, "ha", p2, nil); err != nil {
		t.Fatalf("Register after the leader died: %v", err)
	}
	t.Logf("first write after killing the leader took %v", time.Since(start))
	capable(t, a, "ha", pid, p2)
	capable(t, b, "ha", pid, p2)
	if a.Session.ID() != session {
		t.Errorf("A's session changed: the leader's death must not expire sessions")
	}
}
