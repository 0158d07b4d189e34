package global_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/global"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("ZKACTOR_GLOBAL_CHILD"); role != "" {
		os.Exit(childMain(role))
	}
	zktest.Main(m)
}

func testLogger() *slog.Logger { return testnode.Logger() }

// node is one in-process member of a cluster (test/testnode).
type node = testnode.Node

func startNode(servers []string, root string, timeout time.Duration) (*node, error) {
	return testnode.Start(testnode.Options{Servers: servers, Root: root, SessionTimeout: timeout})
}

func newNode(t testing.TB, servers []string, root string, timeout time.Duration) *node {
	t.Helper()
	n := testnode.New(t, testnode.Options{Servers: servers, Root: root, SessionTimeout: timeout})
	if t, ok := t.(*testing.T); ok {
		t.Cleanup(func() { noStrays(t, n) }) // before the node stops (cleanups run last first)
	}
	return n
}

// noStrays fails t if any candidate znode of n's session belongs to no
// live candidacy of n, or is a second one of a candidacy, once a deadline
// has passed: a stopped, resigned or abandoned candidacy leaves nothing
// behind. Every test's nodes are checked so as the test ends, before they
// stop. A node that cannot reach ZooKeeper by then (a test ending in a
// fault) is not judged, and the log says so.
func noStrays(t *testing.T, n *node) {
	t.Helper()
	if t.Failed() {
		return // the test's own failure says more
	}
	var strays []string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		strays, err = global.Strays(ctx, n.Elections)
		cancel()
		if err == nil && len(strays) == 0 {
			return
		}
		if err == nil {
			<-time.After(10 * time.Millisecond) // a poll inside a deadline
		}
	}
	if err != nil {
		t.Logf("candidate znodes of %s not checked: %v", n.Registry.NodeID(), err)
		return
	}
	t.Errorf("candidate znodes of %s that no live candidacy owns: %v", n.Registry.NodeID(), strays)
}

// journal records the terms of globals: who ran, with which epoch, from
// when to when, and what each handled.
type journal struct {
	mu    sync.Mutex
	terms []*termRecord
	// changed is closed (and forgotten) when a term starts or stops, so a
	// benchmark can wait for a leader change without spinning.
	changed chan struct{}
}

// changes returns a channel closed at the next start or stop of a term.
func (j *journal) changes() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.changed == nil {
		j.changed = make(chan struct{})
	}
	return j.changed
}

// signalLocked wakes the waiters of changes.
func (j *journal) signalLocked() {
	if j.changed != nil {
		close(j.changed)
		j.changed = nil
	}
}

type termRecord struct {
	node    string
	pid     *actor.PID
	epoch   int64
	start   time.Time
	stop    time.Time
	handled []string
	first   any // the first message after Started
}

func (j *journal) props(nodeName string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		rec := &termRecord{node: nodeName}
		return actor.ReceiveFunc(func(c actor.Context) {
			j.mu.Lock()
			defer j.mu.Unlock()
			switch m := c.Message().(type) {
			case *actor.Started:
				rec.pid = c.Self()
				rec.start = time.Now()
				j.terms = append(j.terms, rec)
				j.signalLocked()
			case *actor.Stopping:
				rec.stop = time.Now()
				j.signalLocked()
			case *actor.Stopped, *actor.Restarting:
			case *pb.Elected:
				if rec.first == nil {
					rec.first = m
				}
				rec.epoch = m.Epoch
			case *pb.PID:
				if rec.first == nil {
					rec.first = m
				}
				rec.handled = append(rec.handled, m.Id)
			}
		})
	})
}

// running returns copies of the terms that have started and not stopped.
func (j *journal) running() []termRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []termRecord
	for _, r := range j.terms {
		if r.stop.IsZero() {
			out = append(out, *r)
		}
	}
	return out
}

func (j *journal) all() []termRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]termRecord, len(j.terms))
	for i, r := range j.terms {
		out[i] = *r
	}
	return out
}

// oneRunning waits until exactly one global runs and returns it.
func (j *journal) oneRunning(t testing.TB) termRecord {
	t.Helper()
	var got termRecord
	zktest.Eventually(t, 15*time.Second, func() error {
		r := j.running()
		if len(r) != 1 {
			return fmt.Errorf("%d globals running, want 1", len(r))
		}
		got = r[0]
		if got.epoch == 0 {
			return fmt.Errorf("the global has not had its Elected yet")
		}
		return nil
	})
	return got
}

// noOverlap checks that no two terms ran at the same time.
func (j *journal) noOverlap(t testing.TB) {
	t.Helper()
	terms := j.all()
	for i := range terms {
		for k := range terms {
			if i == k {
				continue
			}
			a, b := terms[i], terms[k]
			aEnd, bEnd := a.stop, b.stop
			if aEnd.IsZero() {
				aEnd = time.Now()
			}
			if bEnd.IsZero() {
				bEnd = time.Now()
			}
			if a.start.Before(bEnd) && b.start.Before(aEnd) {
				t.Errorf("terms overlap: %s (epoch %d) %v–%v and %s (epoch %d) %v–%v",
					a.node, a.epoch, a.start.Format("15:04:05.000"), a.stop.Format("15:04:05.000"),
					b.node, b.epoch, b.start.Format("15:04:05.000"), b.stop.Format("15:04:05.000"))
			}
		}
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// whereis waits until n's WhereisGlobal(name) returns want.
func whereis(t testing.TB, n *node, name string, want *actor.PID) {
	t.Helper()
	zktest.Eventually(t, 10*time.Second, func() error {
		got, err := n.Elections.WhereisGlobal(context.Background(), name)
		if want == nil {
			if err == nil {
				return fmt.Errorf("WhereisGlobal = %v, want ErrNotFound", got)
			}
			return nil
		}
		if err != nil || !got.Equal(want) {
			return fmt.Errorf("WhereisGlobal = %v, %v; want %v", got, err, want)
		}
		return nil
	})
}

// awaitOther waits, without spinning, until exactly one global runs and it
// is not old, and returns it.
func (j *journal) awaitOther(t testing.TB, old *actor.PID, deadline time.Time) termRecord {
	t.Helper()
	for {
		changed := j.changes()
		if r := j.running(); len(r) == 1 && !r[0].pid.Equal(old) {
			return r[0]
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
			t.Fatal("no leader change before the deadline")
		}
	}
}
