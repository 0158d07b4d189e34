package lock_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/lock"
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

func newMutex(t testing.TB, s *cluster.Session, root, name string) *lock.Mutex {
	t.Helper()
	m, err := lock.New(s, root, name, lock.Options{NodeID: fmt.Sprintf("%#x", s.ID()), Logger: testnode.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waiters returns the waiter znodes of a lock as a separate client sees
// them, in queue order (the sequence is the name's tail).
func waiters(t testing.TB, raw *zk.Conn, dir string) []string {
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
		if strings.HasPrefix(k, "_c_") && strings.Contains(k, "-l-") {
			out = append(out, k)
		}
	}
	sortBySeq(out)
	return out
}

func sortBySeq(names []string) {
	seq := func(n string) string { return n[strings.LastIndex(n, "-")+1:] }
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && seq(names[j]) < seq(names[j-1]); j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
}

// waitWaiters waits until the lock has exactly n waiter znodes.
func waitWaiters(t testing.TB, raw *zk.Conn, dir string, n int) []string {
	t.Helper()
	var got []string
	zktest.Eventually(t, 15*time.Second, func() error {
		got = waiters(t, raw, dir)
		if len(got) != n {
			return fmt.Errorf("%d waiter znodes under %s, want %d: %v", len(got), dir, n, got)
		}
		return nil
	})
	return got
}

// result is what a Lock call running in its own goroutine returned, and when.
type result struct {
	held *lock.Held
	err  error
	at   time.Time
}

func lockAsync(ctx context.Context, m *lock.Mutex) <-chan result {
	ch := make(chan result, 1)
	go func() {
		h, err := m.Lock(ctx)
		ch <- result{h, err, time.Now()}
	}()
	return ch
}

func await(t testing.TB, ch <-chan result, timeout time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("Lock did not return within %v", timeout)
		return result{}
	}
}

// lostAt records when h's Lost closes: the returned function reports the
// moment, or the zero time while it has not closed.
func lostAt(t testing.TB, h *lock.Held) func() time.Time {
	var (
		mu sync.Mutex
		at time.Time
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-h.Lost():
			mu.Lock()
			at = time.Now()
			mu.Unlock()
		case <-stop:
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return at
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
