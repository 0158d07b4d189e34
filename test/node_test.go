package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// wait bounds every wait for something to propagate through ZooKeeper.
const wait = 10 * time.Second

// testLogger logs to stderr when ZKACTOR_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// bootstrap starts the test process's one node (see isolate_test.go for
// why there is only one) and stops it when the test ends.
//
// Tests start their child nodes first, so that this node, stopped by a
// later-registered cleanup, stops while the children still run. The other
// way round, protoactor races with itself: a peer's disconnect makes an
// endpoint writer goroutine read endpointManager.connections, which
// Remote.Shutdown then sets to nil with no happens-before edge between them.
func bootstrap(t testing.TB, cfg zka.Config) *zka.Node {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n, err := zka.Bootstrap(ctx, cfg)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop node: %v", err)
		}
	})
	return n
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// recorder returns props of an echo actor that adds "got <service>
// <text>" to log for every Job it receives.
func recorder(service string, log *lineLog) *actor.Props {
	return echoProps(service, log.add)
}

// capable waits until n's GetCapable(name) is exactly want ("address/id"
// list as pidList renders it).
func capable(t testing.TB, n *zka.Node, name, want string) {
	t.Helper()
	zktest.Eventually(t, wait, func() error {
		pids, err := n.GetCapable(context.Background(), name)
		if err != nil {
			return err
		}
		if got := pidList(pids); got != want {
			return fmt.Errorf("GetCapable(%q) = [%s], want [%s]", name, got, want)
		}
		return nil
	})
}

// childCapable waits until the child's GetCapable(name) is exactly want.
func childCapable(t testing.TB, c *child, name, want string) {
	t.Helper()
	zktest.Eventually(t, wait, func() error {
		if got := c.do("capable", name); got != want {
			return fmt.Errorf("child's GetCapable(%q) = [%s], want [%s]", name, got, want)
		}
		return nil
	})
}

func pidString(pid *actor.PID) string { return pid.Address + "/" + pid.Id }

func joinSorted(s ...string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, " ")
}

// TestSpawnNamedIsFoundEverywhere: a locally named actor is registered by
// SpawnNamed, found with GetCapable at once on its own node and, through
// ZooKeeper, on a node in another process; and the other way round.
func TestSpawnNamedIsFoundEverywhere(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	c := startChild(t, childOpts{servers: servers(t), root: root})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root})
	ctx := ctxT(t)

	pid, err := n.SpawnNamed(recorder("echo", newLineLog()), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if pid.Address != n.Address() || pid.Id != "echo" {
		t.Fatalf("SpawnNamed PID = %v, want %s/echo", pid, n.Address())
	}
	// Read-your-writes: no waiting on the registering node.
	pids, err := n.GetCapable(ctx, "echo")
	if err != nil || pidList(pids) != pidString(pid) {
		t.Fatalf("GetCapable right after SpawnNamed = %v, %v; want [%v]", pids, err, pid)
	}

	childCapable(t, c, "echo", pidString(pid))

	// The other way round: the child's actor, found from here. This node
	// looks first, so that only the watch can tell it about the child's.
	if pids, err := n.GetCapable(ctx, "worker"); err != nil || len(pids) != 0 {
		t.Fatalf("GetCapable(worker) before the child registered = %v, %v; want none", pids, err)
	}
	id := c.do("spawn", "worker")
	capable(t, n, "worker", c.Addr+"/"+id)
}

// TestRegisterPrefix: with Config.RegisterPrefix, SpawnNamed registers
// only the names with the prefix; the others are plain local actors.
func TestRegisterPrefix(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root, RegisterPrefix: "svc-"})
	ctx := ctxT(t)
	raw := connect(t)
	layout := n.Registry().Layout()

	got := newLineLog()
	registered, err := n.SpawnNamed(recorder("svc-a", got), "svc-a")
	if err != nil {
		t.Fatal(err)
	}
	local, err := n.SpawnNamed(recorder("local-b", got), "local-b")
	if err != nil {
		t.Fatal(err)
	}
	// SpawnNamed returns after ZooKeeper has the registration, so another
	// client sees the result at once.
	if kids, _, err := raw.Children(layout.ServicePath("svc-a")); err != nil || len(kids) != 1 {
		t.Errorf("children of %s = %v, %v; want one registration", layout.ServicePath("svc-a"), kids, err)
	}
	if ok, _, err := raw.Exists(layout.ServicePath("local-b")); err != nil || ok {
		t.Errorf("%s exists = %v, %v; want no znode for an unprefixed name", layout.ServicePath("local-b"), ok, err)
	}
	if pids, err := n.GetCapable(ctx, "svc-a"); err != nil || pidList(pids) != pidString(registered) {
		t.Errorf("GetCapable(svc-a) = %v, %v; want [%v]", pids, err, registered)
	}
	if pids, err := n.GetCapable(ctx, "local-b"); err != nil || len(pids) != 0 {
		t.Errorf("GetCapable(local-b) = %v, %v; want none", pids, err)
	}
	// The unregistered actor is alive and reachable by its local name.
	n.System().Root.Send(local, &bossv1.Job{Text: "hi"})
	got.waitLine(t, wait, "got local-b hi")
}

// TestNSendCapableReachesEveryPIDOnce: NSendCapable delivers to every PID
// registered under the name, on this node and on a node in another
// process, each exactly once; and the same from the other node.
func TestNSendCapableReachesEveryPIDOnce(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	c := startChild(t, childOpts{servers: servers(t), root: root})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root})
	ctx := ctxT(t)

	// Two PIDs here (one by SpawnNamed, one by Register), one in the child.
	got := newLineLog()
	p1, err := n.SpawnNamed(recorder("echo-1", got), "echo")
	if err != nil {
		t.Fatal(err)
	}
	p2 := n.System().Root.Spawn(recorder("echo-2", got))
	if err := n.Register(ctx, "echo", p2); err != nil {
		t.Fatal(err)
	}
	childID := c.do("spawn", "echo")
	p3 := actor.NewPID(c.Addr, childID)
	all := joinSorted(pidString(p1), pidString(p2), pidString(p3))
	capable(t, n, "echo", all)
	childCapable(t, c, "echo", all)

	if err := n.NSendCapable(ctx, "echo", &bossv1.Job{Id: "1", Text: "from-parent"}); err != nil {
		t.Fatal(err)
	}
	// A fence behind it to each PID: messages from one sender to one
	// receiver arrive in order, so once the fence is in, any duplicate
	// of the broadcast would be too.
	for _, p := range []*actor.PID{p1, p2, p3} {
		n.System().Root.Send(p, &bossv1.Job{Text: "fence"})
	}
	got.waitLine(t, wait, "got echo-1 fence")
	got.waitLine(t, wait, "got echo-2 fence")
	c.out.waitLine(t, wait, "got echo fence")
	for _, want := range []struct {
		log  *lineLog
		line string
	}{{got, "got echo-1 from-parent"}, {got, "got echo-2 from-parent"}, {c.out, "got echo from-parent"}} {
		if k := want.log.count(want.line); k != 1 {
			t.Errorf("%q received %d times, want once", want.line, k)
		}
	}

	// And from the child: its NSendCapable reaches this node's two PIDs.
	c.do("nsend-capable", "echo", "from-child")
	c.do("send", p1.Address, p1.Id, "fence-child")
	c.do("send", p2.Address, p2.Id, "fence-child")
	got.waitLine(t, wait, "got echo-1 fence-child")
	got.waitLine(t, wait, "got echo-2 fence-child")
	c.out.waitLine(t, wait, "got echo from-child")
	for _, line := range []string{"got echo-1 from-child", "got echo-2 from-child"} {
		if k := got.count(line); k != 1 {
			t.Errorf("%q received %d times, want once", line, k)
		}
	}
}

// TestNSendPeersReachesEveryNode: NSendPeers sends to the process of that
// name on every node, this one included, whether registered or not.
func TestNSendPeersReachesEveryNode(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	// The prefix keeps "inbox" out of the registry: NSendPeers must find
	// it by node address and name alone.
	c := startChild(t, childOpts{servers: servers(t), root: root})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root, RegisterPrefix: "svc-"})
	ctx := ctxT(t)

	got := newLineLog()
	if _, err := n.SpawnNamed(recorder("inbox", got), "inbox"); err != nil {
		t.Fatal(err)
	}
	c.do("spawn", "inbox")
	zktest.Eventually(t, wait, func() error {
		peers, err := n.GetPeers(ctx)
		if err != nil {
			return err
		}
		if len(peers) != 2 {
			return fmt.Errorf("GetPeers = %v, want 2 nodes", peers)
		}
		return nil
	})
	if err := n.NSendPeers(ctx, "inbox", &bossv1.Job{Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	got.waitLine(t, wait, "got inbox hello")
	c.out.waitLine(t, wait, "got inbox hello")

	c.do("nsend-peers", "inbox", "back")
	got.waitLine(t, wait, "got inbox back")
	c.out.waitLine(t, wait, "got inbox back")
}

// TestCacheClearedWhenServiceExits: when the child's registered actor
// stops, this node's GetCapable no longer returns it (its cache is swept
// by the watch, not left stale).
func TestCacheClearedWhenServiceExits(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	c := startChild(t, childOpts{servers: servers(t), root: root})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root})

	stays := c.do("spawn", "keep")
	goes := c.do("spawn", "echo")
	capable(t, n, "echo", c.Addr+"/"+goes)
	capable(t, n, "keep", c.Addr+"/"+stays)
	// The second lookup is a cache hit: nothing but the watch can clear it.
	// (The keeper's checks are the session's requests too: let them end.)
	zktest.Eventually(t, 5*time.Second, func() error {
		if !plumbing.Settled(n.Registry()) {
			return errors.New("the keeper still has work to do")
		}
		return nil
	})
	requests := plumbing.Requests(n.Session())
	capable(t, n, "echo", c.Addr+"/"+goes)
	if d := plumbing.Requests(n.Session()) - requests; d != 0 {
		t.Fatalf("a cached GetCapable issued %d ZooKeeper requests", d)
	}

	c.do("stop", "echo")
	capable(t, n, "echo", "")
	childCapable(t, c, "echo", "")
	capable(t, n, "keep", c.Addr+"/"+stays) // the other service is untouched
}

// TestKilledNodeVanishesAfterSessionTimeout: a node killed with SIGKILL
// cannot unregister; its registrations and its node znode go when
// ZooKeeper expires its session (1 s here), and the others' caches follow.
func TestKilledNodeVanishesAfterSessionTimeout(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	c := startChild(t, childOpts{servers: servers(t), root: root, sessionTimeout: time.Second})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root})

	id := c.do("spawn", "echo")
	capable(t, n, "echo", c.Addr+"/"+id)
	zktest.Eventually(t, wait, func() error {
		peers, err := n.GetPeers(context.Background())
		if err != nil || !slices.Contains(peers, c.Addr) {
			return fmt.Errorf("GetPeers = %v, %v; want the child's %s in it", peers, err, c.Addr)
		}
		return nil
	})

	killed := time.Now()
	c.kill()
	capable(t, n, "echo", "")
	zktest.Eventually(t, wait, func() error {
		peers, err := n.GetPeers(context.Background())
		if err != nil || !slices.Equal(peers, []string{n.Address()}) {
			return fmt.Errorf("GetPeers = %v, %v; want only this node", peers, err)
		}
		return nil
	})
	t.Logf("the killed node's registration was gone %v after SIGKILL (session timeout 1s)", time.Since(killed).Round(time.Millisecond))
}

// TestPeersAndMetadata: GetPeers lists both nodes; Register with
// WithMetadata is visible through Lookup on both nodes; registering again
// with other metadata replaces it; Unregister removes it everywhere.
func TestPeersAndMetadata(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	c := startChild(t, childOpts{servers: servers(t), root: root})
	n := bootstrap(t, zka.Config{Servers: servers(t), Root: root})
	ctx := ctxT(t)

	both := joinSorted(n.Address(), c.Addr)
	zktest.Eventually(t, wait, func() error {
		peers, err := n.GetPeers(ctx)
		slices.Sort(peers)
		if err != nil || strings.Join(peers, " ") != both {
			return fmt.Errorf("GetPeers = %v, %v; want [%s]", peers, err, both)
		}
		return nil
	})
	zktest.Eventually(t, wait, func() error {
		if got := c.do("peers"); got != both {
			return fmt.Errorf("child's GetPeers = [%s], want [%s]", got, both)
		}
		return nil
	})

	pid := n.System().Root.Spawn(recorder("db", newLineLog()))
	if err := n.Register(ctx, "db", pid, zka.WithMetadata(map[string]string{"zone": "a", "role": "primary"})); err != nil {
		t.Fatal(err)
	}
	recs, err := n.Registry().Lookup(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Metadata["zone"] != "a" || recs[0].Metadata["role"] != "primary" ||
		recs[0].NodeId != n.NodeID() || recs[0].Pid.Id != pid.Id || recs[0].Pid.Address != pid.Address {
		t.Fatalf("Lookup(db) = %v; want one record of %v on node %s with zone=a role=primary", recs, pid, n.NodeID())
	}
	lookedUp := func(want string) {
		t.Helper()
		zktest.Eventually(t, wait, func() error {
			if got := c.do("lookup", "db"); got != want {
				return fmt.Errorf("child's Lookup(db) = %s, want %s", got, want)
			}
			return nil
		})
	}
	lookedUp(pidString(pid) + "{role=primary,zone=a}")

	// Registering again with other metadata replaces it.
	if err := n.Register(ctx, "db", pid, zka.WithMetadata(map[string]string{"zone": "b"})); err != nil {
		t.Fatal(err)
	}
	if recs, err := n.Registry().Lookup(ctx, "db"); err != nil || len(recs) != 1 || recs[0].Metadata["zone"] != "b" {
		t.Fatalf("Lookup(db) after re-registering = %v, %v; want one record with zone=b", recs, err)
	}
	lookedUp(pidString(pid) + "{zone=b}")

	if err := n.Unregister(ctx, "db", pid); err != nil {
		t.Fatal(err)
	}
	if pids, err := n.GetCapable(ctx, "db"); err != nil || len(pids) != 0 {
		t.Fatalf("GetCapable(db) right after Unregister = %v, %v; want none", pids, err)
	}
	lookedUp("")
}

// TestStopRemovesRegistrationsAtOnce: when Stop returns, another client
// already sees this node's znodes gone (no waiting for a session to
// expire); Stop is idempotent and the node refuses work afterwards.
func TestStopRemovesRegistrationsAtOnce(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	root := zktest.Root(t)
	raw := connect(t)
	ctx := ctxT(t)
	n, err := zka.Bootstrap(ctx, zka.Config{Servers: servers(t), Root: root, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = n.Stop(context.Background())
		}
	})
	layout := n.Registry().Layout()
	if _, err := n.SpawnNamed(recorder("a", newLineLog()), "a"); err != nil {
		t.Fatal(err)
	}
	pid := n.System().Root.Spawn(recorder("b", newLineLog()))
	for _, name := range []string{"b", "c"} {
		if err := n.Register(ctx, name, pid); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{layout.NodePath(n.NodeID())}
	for _, name := range []string{"a", "b", "c"} {
		kids, _, err := raw.Children(layout.ServicePath(name))
		if err != nil || len(kids) != 1 {
			t.Fatalf("children of %s = %v, %v; want one registration", layout.ServicePath(name), kids, err)
		}
		paths = append(paths, layout.ServicePath(name)+"/"+kids[0])
	}
	for _, p := range paths {
		if ok, _, err := raw.Exists(p); err != nil || !ok {
			t.Fatalf("before Stop: %s exists = %v, %v", p, ok, err)
		}
	}

	if err := n.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	for _, p := range paths {
		if ok, _, err := raw.Exists(p); err != nil || ok {
			t.Errorf("right after Stop: %s exists = %v, %v; want gone", p, ok, err)
		}
	}
	if err := n.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v, want nil (idempotent)", err)
	}
	if err := n.Register(ctx, "d", pid); !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Register after Stop = %v, want ErrClosed", err)
	}
}

// TestBootstrapErrors: a Bootstrap that cannot succeed says why, quickly,
// and leaves nothing running (zktest.Main checks for goroutines). The
// unreachable ZooKeeper has a test of its own below.
func TestBootstrapErrors(t *testing.T) {
	if inOwnProcess(t) {
		return
	}

	for _, tc := range []struct {
		name    string
		cfg     zka.Config
		is      error  // the error wraps it, if set
		mention string // the message contains it
	}{
		{"no servers", zka.Config{}, nil, "Servers"},
		{"relative root", zka.Config{Servers: servers(t), Root: "zkactor"}, cluster.ErrBadName, `"zkactor"`},
		{"root with a trailing slash", zka.Config{Servers: servers(t), Root: "/zkactor/"}, cluster.ErrBadName, `"/zkactor/"`},
		{"root with a reserved name", zka.Config{Servers: servers(t), Root: "/a/../b"}, cluster.ErrBadName, `"/a/../b"`},
		{"listen address not on this machine", zka.Config{Servers: servers(t), Host: "192.0.2.1"}, nil, "actor remote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			n, err := zka.Bootstrap(ctx, tc.cfg)
			took := time.Since(start)
			if err == nil {
				_ = n.Stop(context.Background())
				t.Fatal("Bootstrap succeeded, want an error")
			}
			t.Logf("error after %v: %v", took.Round(time.Millisecond), err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
			if took > 3*time.Second {
				t.Errorf("Bootstrap took %v to fail, want about the 1s deadline at most", took)
			}
		})
	}
}

// TestBootstrapUnreachableZooKeeper: with no ZooKeeper listening (the
// connection is refused), Bootstrap gives up when its ctx ends, with an
// error wrapping ErrNotConnected that names the server, and cleans up.
//
// Bootstrap runs on a goroutine so that a hang fails the test at once
// instead of the whole run at its timeout.
func TestBootstrapUnreachableZooKeeper(t *testing.T) {
	if inOwnProcess(t) {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // a port nobody listens on once closed
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	type result struct {
		n   *zka.Node
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		n, err := zka.Bootstrap(ctx, zka.Config{Servers: []string{dead}, Logger: testLogger()})
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		took := time.Since(start)
		if r.err == nil {
			_ = r.n.Stop(context.Background())
			t.Fatal("Bootstrap succeeded, want an error")
		}
		t.Logf("error after %v: %v", took.Round(time.Millisecond), r.err)
		if !errors.Is(r.err, cluster.ErrNotConnected) || !strings.Contains(r.err.Error(), dead) {
			t.Errorf("error %q: want ErrNotConnected naming %s", r.err, dead)
		}
		if took > 3*time.Second {
			t.Errorf("Bootstrap took %v to fail, want about the 1s deadline", took)
		}
	case <-time.After(10 * time.Second):
		// The goroutine is left behind: the test has failed anyway, and
		// zktest.Main checks for leaks only after a passing run.
		t.Fatalf("Bootstrap with an unreachable ZooKeeper and a 1s deadline has not returned after 10s")
	}
}
