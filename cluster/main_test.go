package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

func testLogger() *slog.Logger { return testnode.Logger() }

// node is one in-process member of a cluster (test/testnode).
type node = testnode.Node

type nodeOpts struct {
	servers []string
	root    string
	timeout time.Duration
	auth    *cluster.DigestAuth
	nodeID  string // "" = a random one
}

func (o nodeOpts) options() testnode.Options {
	return testnode.Options{Servers: o.servers, Root: o.root, SessionTimeout: o.timeout, Auth: o.auth, NodeID: o.nodeID}
}

func newNode(t testing.TB, o nodeOpts) *node { t.Helper(); return testnode.New(t, o.options()) }

func startNode(o nodeOpts) (*node, error) { return testnode.Start(o.options()) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// capable waits until n's GetCapable(name) returns exactly want (in any order).
func capable(t testing.TB, n *node, name string, want ...*actor.PID) {
	t.Helper()
	zktest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Registry.GetCapable(context.Background(), name)
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

// newSession waits until s is connected on a session other than old, and
// returns it.
func newSession(t testing.TB, s *cluster.Session, old int64) int64 {
	t.Helper()
	var id int64
	zktest.Eventually(t, 20*time.Second, func() error {
		if id = s.ID(); id == old || id == 0 || !s.Connected() {
			return fmt.Errorf("no new session yet (session 0x%x, connected %v)", id, s.Connected())
		}
		return nil
	})
	return id
}

// followerProxy routes the follower connections of the keepers started
// from now on in the test through a proxy of their own, to zkc's first
// server, so that the test can cut them alone.
func followerProxy(t testing.TB, zkc *zktest.Cluster) *zktest.Proxy {
	fp := zktest.NewProxy(t, zkc.Addrs()[0])
	cluster.SetFollowerServers(t, []string{fp.Addr()})
	return fp
}

// leaderAndOthers returns the index of zkc's quorum leader and those of
// the other servers.
func leaderAndOthers(t testing.TB, zkc *zktest.Cluster) (leader int, others []int) {
	t.Helper()
	leader = zkc.Leader(t)
	for i := range zkc.Addrs() {
		if i != leader {
			others = append(others, i)
		}
	}
	return leader, others
}
