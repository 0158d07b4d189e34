// Package testnode builds in-process zkactor nodes for tests: an actor
// system with an address of its own, a ZooKeeper session, a registry and
// elections. It is the one builder the cluster and global tests share.
//
// A node has no protoactor remote: remote.Start writes grpc's global
// logger, which the race detector flags as soon as two remotes run in one
// process. The registry only needs the address to name PIDs; messaging
// across nodes is tested with real remotes in separate processes (package
// test and the fault checker, test/chaos, which bootstrap actor.Node).
package testnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/test/zktest"
)

// Options configures a node.
type Options struct {
	Servers        []string
	Root           string
	SessionTimeout time.Duration // default 4 s
	Auth           *cluster.DigestAuth
	NodeID         string // "" = a random one
}

// Node is one in-process member of a cluster.
type Node struct {
	System    *actor.ActorSystem
	Session   *cluster.Session
	Registry  *cluster.Registry
	Elections *global.Elections

	stopOnce sync.Once
}

var seq atomic.Int64

// Logger logs to stderr at Debug when ZKACTOR_TEST_LOG is set, else nowhere.
func Logger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start starts a node; the caller stops it.
func Start(o Options) (*Node, error) {
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 4 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	system.ProcessRegistry.Address = fmt.Sprintf("node-%d-%d.test:1", os.Getpid(), seq.Add(1))
	s, err := cluster.Dial(ctx, cluster.Config{Servers: o.Servers, SessionTimeout: o.SessionTimeout, Auth: o.Auth, Logger: Logger()})
	if err != nil {
		system.Shutdown()
		return nil, err
	}
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: o.Root, NodeID: o.NodeID, Logger: Logger()})
	if err != nil {
		s.Close()
		system.Shutdown()
		return nil, err
	}
	return &Node{
		System:    system,
		Session:   s,
		Registry:  reg,
		Elections: global.NewElections(system, reg, global.Options{Logger: Logger()}),
	}, nil
}

// New starts a node that stops when the test ends, and fails the test if
// it cannot start.
func New(t testing.TB, o Options) *Node {
	t.Helper()
	n, err := Start(o)
	if err != nil {
		t.Fatalf("testnode: start a node on %v: %v", o.Servers, err)
	}
	t.Cleanup(n.Stop)
	return n
}

// Stop closes the elections, the registry, the session and the actor
// system, as actor.Node.Stop does. It may be called more than once.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Elections.Close(ctx)
		_ = n.Registry.Close(ctx)
		n.Session.Close()
		n.System.Shutdown()
	})
}

// Settle waits until the node's keeper has nothing left to do (see
// plumbing.Settled): a test that counts the session's requests calls it
// first, so that a directory check of the keeper's is not counted.
func (n *Node) Settle(t testing.TB) {
	t.Helper()
	zktest.Eventually(t, 5*time.Second, func() error {
		if !plumbing.Settled(n.Registry) {
			return errors.New("the keeper still has work to do")
		}
		return nil
	})
}

// Spawn starts an actor that does nothing.
func (n *Node) Spawn(t testing.TB) *actor.PID {
	t.Helper()
	return n.System.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
}
