package workqueue_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

func testLogger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial opens a session on servers that is closed when the test ends.
func dial(t testing.TB, servers []string, timeout time.Duration) *cluster.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: timeout, Logger: testLogger()})
	if err != nil {
		t.Fatalf("dial %v: %v", servers, err)
	}
	t.Cleanup(s.Close)
	return s
}

// open opens the queue name under root on s, closed when the test ends.
func open(t testing.TB, s *cluster.Session, root, name, producer string) *workqueue.Queue {
	t.Helper()
	q, err := workqueue.Open(ctxT(t), s, name, workqueue.Options{Root: root, Producer: producer, Logger: testLogger()})
	if err != nil {
		t.Fatalf("open %q: %v", name, err)
	}
	t.Cleanup(q.Close)
	return q
}

func put(t testing.TB, q *workqueue.Queue, key, payload string) string {
	t.Helper()
	id, err := q.Put(ctxT(t), key, []byte(payload))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return id
}

func take(t testing.TB, q *workqueue.Queue) *workqueue.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	it, err := q.Take(ctx)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return it
}

// empty asserts that a Take finds nothing within a short while.
func empty(t testing.TB, q *workqueue.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if it, err := q.Take(ctx); err == nil {
		t.Fatalf("Take from a queue that should be empty: %s %q", it.ID, it.Payload)
	}
}

// children lists dir through a plain client.
func children(t testing.TB, c *zk.Conn, dir string) []string {
	t.Helper()
	names, _, err := c.Children(dir)
	if err != nil {
		t.Fatalf("children of %s: %v", dir, err)
	}
	slices.Sort(names)
	return names
}

// eventuallyChildren waits until dir has n children.
func eventuallyChildren(t testing.TB, c *zk.Conn, dir string, n int) []string {
	t.Helper()
	var names []string
	zktest.Eventually(t, 15*time.Second, func() error {
		var err error
		names, _, err = c.Children(dir)
		if err != nil {
			return err
		}
		if len(names) != n {
			return fmt.Errorf("%s has %d children %v, want %d", dir, len(names), names, n)
		}
		return nil
	})
	slices.Sort(names)
	return names
}
