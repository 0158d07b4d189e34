package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/zkactor/zkactor/internal/metrics/metricstest"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestMetricsOfARegistration: with a meter provider installed, a node's
// session, its requests and a registration show in the zkactor_ metrics.
func TestMetricsOfARegistration(t *testing.T) {
	metricstest.Install() // before the node: the session counts as connected from the start
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	before := metricstest.Collect(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	ctx := ctxT(t)
	pid := n.Spawn(t)
	if err := n.Registry.Register(ctx, "worker", pid, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.Registry.Unregister(ctx, "worker", pid); err != nil {
		t.Fatal(err)
	}
	during := metricstest.Collect(t)
	n.Stop()
	after := metricstest.Collect(t)

	ok := attribute.String("result", "ok")
	grew := func(s metricstest.Snapshot, name string, attrs ...attribute.KeyValue) int64 {
		return s.Int(name, attrs...) - before.Int(name, attrs...)
	}
	if d := grew(during, "zkactor_registrations_total", ok); d != 1 {
		t.Errorf("zkactor_registrations_total{result=ok} grew by %d, want 1", d)
	}
	if d := grew(during, "zkactor_unregistrations_total", ok); d != 1 {
		t.Errorf("zkactor_unregistrations_total{result=ok} grew by %d, want 1", d)
	}
	if d := grew(during, "zkactor_session_connected"); d != 1 {
		t.Errorf("zkactor_session_connected grew by %d with the node's session up, want 1", d)
	}
	if d := grew(after, "zkactor_session_connected"); d != 0 {
		t.Errorf("zkactor_session_connected grew by %d once the node stopped, want 0", d)
	}
	// The node's znode and the registration: two creates at least, each
	// timed at under the 10 s request timeout.
	const h = "zkactor_zk_request_duration_seconds"
	create := attribute.String("op", "create")
	creates := during.Count(h, create, ok) - before.Count(h, create, ok)
	secs := during.Sum(h, create, ok) - before.Sum(h, create, ok)
	if creates < 2 || secs <= 0 || secs/float64(creates) > 10 {
		t.Errorf("%s{op=create,result=ok}: %d more requests taking %vs, want 2 or more, each under 10s", h, creates, secs)
	}
	if d := during.Count(h, attribute.String("op", "delete"), ok) - before.Count(h, attribute.String("op", "delete"), ok); d < 1 {
		t.Errorf("%s{op=delete,result=ok}: %d more requests, want the Unregister's", h, d)
	}
}

// TestMetricsOfASessionExpiry: an expired session is counted, and the
// session counts as connected again once it has a new one.
func TestMetricsOfASessionExpiry(t *testing.T) {
	metricstest.Install()
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	before := metricstest.Collect(t)
	n := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: zktest.Root(t), timeout: time.Second})
	old := n.Session.ID()
	zkc.ExpireSession(t, proxy, old)
	newSession(t, n.Session, old)
	zktest.Eventually(t, 10*time.Second, func() error {
		s := metricstest.Collect(t)
		if d := s.Int("zkactor_session_expiries_total") - before.Int("zkactor_session_expiries_total"); d != 1 {
			return fmt.Errorf("zkactor_session_expiries_total grew by %d, want 1", d)
		}
		if d := s.Int("zkactor_session_connected") - before.Int("zkactor_session_connected"); d != 1 {
			return fmt.Errorf("zkactor_session_connected grew by %d on a new session, want 1", d)
		}
		return nil
	})
	if d := metricstest.Collect(t).Int("zkactor_session_disconnects_total") - before.Int("zkactor_session_disconnects_total"); d < 1 {
		t.Errorf("zkactor_session_disconnects_total grew by %d, want the connection lost to the blackhole", d)
	}
}
