package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// testLogger logs to stderr when ZKACTOR_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var nodeSeq atomic.Int64

// node is one test member of a cluster: an actor system with its remote,
// a session and a registry.
type node struct {
	system   *actor.ActorSystem
	session  *cluster.Session
	registry *cluster.Registry
}

type nodeOpts struct {
	servers []string
	root    string
	timeout time.Duration
	auth    *cluster.DigestAuth
	nodeID  string // "" = a random one
}

func newNode(t testing.TB, o nodeOpts) *node {
	t.Helper()
	n, err := startNode(o)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.stop() })
	return n
}

func startNode(o nodeOpts) (*node, error) {
	if o.timeout == 0 {
		o.timeout = 4 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	// Each node gets an address of its own without a remote: protoactor's
	// remote.Start writes grpc's global logger, which the race detector
	// flags as soon as two remotes run in one process. The registry only
	// needs the address to name PIDs; messaging across nodes is tested
	// with real remotes in separate processes (package test).
	system.ProcessRegistry.Address = fmt.Sprintf("node-%d.test:1", nodeSeq.Add(1))
	s, err := cluster.Dial(ctx, cluster.Config{Servers: o.servers, SessionTimeout: o.timeout, Auth: o.auth, Logger: testLogger()})
	if err != nil {
		system.Shutdown()
		return nil, err
	}
	reg, err := cluster.New(ctx, system, s, cluster.Options{Root: o.root, NodeID: o.nodeID})
	if err != nil {
		s.Close()
		system.Shutdown()
		return nil, err
	}
	n := &node{system: system, session: s, registry: reg}
	return n, nil
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.registry.Close(ctx)
	n.session.Close()
	n.system.Shutdown()
}

// spawn starts an actor that does nothing.
func (n *node) spawn(t testing.TB) *actor.PID {
	t.Helper()
	return n.system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// capable waits until n's GetCapable(name) returns exactly want (in any order).
func capable(t testing.TB, n *node, name string, want ...*actor.PID) {
	t.Helper()
	zktest.Eventually(t, 10*time.Second, func() error {
		got, err := n.registry.GetCapable(context.Background(), name)
		if err != nil {
			return err
		}
		if !samePIDs(got, want) {
			return fmt.Errorf("GetCapable(%q) = %v, want %v", name, got, want)
		}
		return nil
	})
}

func samePIDs(a, b []*actor.PID) bool {
	key := func(ps []*actor.PID) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Address+"/"+p.Id)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}
