package barrier_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// dial opens a session on servers that is closed when the test ends.
func dial(t testing.TB, servers []string, timeout time.Duration) *cluster.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: timeout, Logger: testnode.Logger()})
	if err != nil {
		t.Fatalf("dial %v: %v", servers, err)
	}
	t.Cleanup(s.Close)
	return s
}

func newBarrier(t testing.TB, s *cluster.Session, root, name string, size int) *barrier.Barrier {
	t.Helper()
	b, err := barrier.New(s, root, name, size, barrier.Options{Logger: testnode.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// participants returns the participant znodes of a barrier as a separate
// client sees them.
func participants(t testing.TB, raw *zk.Conn, dir string) []string {
	t.Helper()
	kids, _, err := raw.Children(dir)
	if err == zk.ErrNoNode {
		return nil
	}
	if err != nil {
		t.Fatalf("children of %s: %v", dir, err)
	}
	var out []string
	for _, k := range kids {
		if strings.HasPrefix(k, "_c_") && strings.Contains(k, "-p-") {
			out = append(out, k)
		}
	}
	return out
}

// waitParticipants waits until the barrier has exactly n participant znodes.
func waitParticipants(t testing.TB, raw *zk.Conn, dir string, n int) {
	t.Helper()
	zktest.Eventually(t, 15*time.Second, func() error {
		if got := participants(t, raw, dir); len(got) != n {
			return fmt.Errorf("%d participants under %s, want %d: %v", len(got), dir, n, got)
		}
		return nil
	})
}

func readyExists(t testing.TB, raw *zk.Conn, dir string) bool {
	t.Helper()
	ok, _, err := raw.Exists(dir + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// call runs f in its own goroutine and reports its error and when it
// returned.
type returned struct {
	err error
	at  time.Time
}

func async(f func() error) <-chan returned {
	ch := make(chan returned, 1)
	go func() {
		err := f()
		ch <- returned{err, time.Now()}
	}()
	return ch
}

func await(t testing.TB, ch <-chan returned, timeout time.Duration) returned {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("no return within %v", timeout)
		return returned{}
	}
}

// makeDir creates dir and its parents as persistent znodes, so that a test
// can make the recipe's first create the one under test (a container
// parent could be reaped between two steps).
func makeDir(t testing.TB, raw *zk.Conn, dir string) {
	t.Helper()
	p := ""
	for _, c := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		p += "/" + c
		if _, err := raw.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
}
