package zktest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout is the session timeout [Cluster.Connect] asks for. It is long enough to
// ride out a leader election; tests of session expiry should [Dial] with a shorter one.
const DefaultSessionTimeout = 10 * time.Second

// Connect returns a go-zookeeper client for all the cluster's servers once it has a session.
// It logs through t.Logf and is closed when the test ends.
func (c *Cluster) Connect(t testing.TB) *zk.Conn {
	t.Helper()
	return Dial(t, c.Addrs(), DefaultSessionTimeout)
}

// Dial returns a go-zookeeper client for addrs (servers or proxies) that asks for the given
// session timeout; the server clamps it to [2 ticks, 60s], that is [400ms, 60s] by default.
// Dial waits until the client has a session, fails the test if it gets none, and closes the
// client when the test ends, waiting until go-zookeeper's goroutines have stopped. The client
// logs through t.Logf; opts are applied after that, for instance zk.WithEventCallback to
// observe every state change of the connection.
//
// The options are go-zookeeper's (its option type is unexported; its With... functions return
// values assignable to func(*zk.Conn)).
func Dial(t testing.TB, addrs []string, sessionTimeout time.Duration, opts ...func(*zk.Conn)) *zk.Conn {
	t.Helper()
	applyOpts := func(c *zk.Conn) {
		for _, opt := range opts {
			opt(c)
		}
	}
	conn, events, err := zk.Connect(addrs, sessionTimeout, zk.WithLogger(Logger(t)), applyOpts)
	if err != nil {
		t.Fatalf("zktest: connect to %v: %v", addrs, err)
	}
	t.Cleanup(func() { closeConn(t, conn, events, sessionTimeout) })
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("zktest: client for %v closed before it had a session", addrs)
			}
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline.C:
			t.Fatalf("zktest: client for %v had no session within %v (state %v)", addrs, startTimeout, conn.State())
		}
	}
}

// closeConn closes conn and waits until go-zookeeper closes the event channel, which it does
// after its last goroutine has finished.
func closeConn(t testing.TB, conn *zk.Conn, events <-chan zk.Event, sessionTimeout time.Duration) {
	conn.Close()
	// A client whose server went silent notices only when a read times out: 2/3 of the session
	// timeout once it has a session, ten times that while it waits for one.
	wait := 5*time.Second + 7*sessionTimeout
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline.C:
			t.Errorf("zktest: go-zookeeper client still running %v after Close", wait)
			return
		}
	}
}

// Logger returns a go-zookeeper logger that writes through t.Logf while the test runs, including
// its cleanups, and drops what go-zookeeper logs after that.
func Logger(t testing.TB) zk.Logger {
	l := &testLogger{tb: t}
	t.Cleanup(l.stop) // registered before the client's Close, so it runs after it
	return l
}

type testLogger struct {
	mu      sync.Mutex
	tb      testing.TB
	stopped bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.tb.Logf("zk: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

// Root returns a znode path unique to this test run, such as "/t/TestElection_failover-3fa2c1d0",
// for a test to keep its znodes apart from those of other tests on a shared server. The znode is
// not created; create it (and /t) when needed, for instance with zk.Conn.CreateContainer or by
// creating each missing parent.
func Root(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		default:
			return '_'
		}
	}, t.Name())
	return fmt.Sprintf("/t/%s-%08x", name, rand.Uint32())
}
