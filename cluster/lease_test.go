package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

func dialT(t *testing.T, servers []string, timeout time.Duration) *cluster.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: timeout, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// The handshake anchors the lease; without holders it runs out within the
// session timeout; held, probes keep it ahead of the clock.
func TestLeaseFromHandshakeAndProbes(t *testing.T) {
	zkc := zktest.Shared(t)
	const timeout = time.Second
	s := dialT(t, zkc.Addrs(), timeout)
	if !time.Now().Before(s.SafeUntil()) {
		t.Fatal("no lease right after the session was established")
	}
	if until := s.SafeUntil(); until.After(time.Now().Add(timeout)) {
		t.Errorf("lease ends %v from now, beyond the session timeout", time.Until(until))
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		if time.Now().Before(s.SafeUntil()) {
			return errors.New("the lease outlives its anchor without probes")
		}
		return nil
	})
	release := s.HoldLease()
	defer release()
	zktest.Eventually(t, 5*time.Second, func() error {
		if !time.Now().Before(s.SafeUntil()) {
			return errors.New("probes have not renewed the lease yet")
		}
		return nil
	})
	// Held for three session timeouts, the lease never lapses.
	deadline := time.Now().Add(3 * timeout)
	for time.Now().Before(deadline) {
		if !time.Now().Before(s.SafeUntil()) {
			t.Fatal("the held lease lapsed on a healthy connection")
		}
		time.Sleep(10 * time.Millisecond) // sampling the clock, not synchronising
	}
}

// A partitioned session's lease runs out, and a new session's lease never
// vouches for the old one (package global's follower-isolation test shows
// that traffic from a server cut off from its quorum does not renew it).
func TestLeaseIsPerSession(t *testing.T) {
	zkc := zktest.Shared(t)
	const timeout = time.Second
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s := dialT(t, []string{proxy.Addr()}, timeout)
	release := s.HoldLease()
	defer release()
	old := s.ID()
	proxy.Blackhole()
	zktest.Eventually(t, 5*time.Second, func() error {
		if time.Now().Before(s.SafeUntilFor(old)) {
			return errors.New("the lease outlives the partition")
		}
		return nil
	})
	zkc.ExpireSession(t, proxy, old)
	newSession(t, s, old)
	if !time.Now().Before(s.SafeUntil()) {
		t.Error("the new session has no lease")
	}
	if !s.SafeUntilFor(old).IsZero() {
		t.Error("the new session's lease vouches for the old session")
	}
}

// Close returns promptly while the client is stuck reconnecting to a
// server that went silent (it waited for go-zookeeper's handshake timeout,
// ten read timeouts).
func TestCloseWhileTheServerIsSilent(t *testing.T) {
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	s, err := cluster.Dial(context.Background(), cluster.Config{Servers: []string{proxy.Addr()}, SessionTimeout: 2 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole()
	zktest.Eventually(t, 10*time.Second, func() error {
		if s.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second): // a hang detector: it took ~13 s
		t.Fatal("Close hangs while the server is silent")
	}
}

// A registration deleted by someone else (an operator, a cleanup script)
// while its actor lives is re-created: the chaos checker found lookups
// missing a live PID for good.
func TestDeletedRegistrationIsRecreated(t *testing.T) {
	zkc := zktest.Shared(t)
	raw := zkc.Connect(t)
	n := newNode(t, nodeOpts{servers: zkc.Addrs(), root: zktest.Root(t)})
	pid := n.Spawn(t)
	if err := n.Registry.Register(ctxT(t), "svc", pid, nil); err != nil {
		t.Fatal(err)
	}
	p := registrationPath(t, raw, n, "svc")
	if err := raw.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	waitExists(t, raw, p, 10*time.Second)
	capable(t, n, "svc", pid)
}
