package global_test

import (
	"context"
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
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("ZKACTOR_GLOBAL_CHILD"); role != "" {
		os.Exit(childMain(role))
	}
	zktest.Main(m)
}

func testLogger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var nodeSeq atomic.Int64

// node is a test cluster member without a protoactor remote (see
// cluster/main_test.go for why): an actor system with an address of its
// own, a session, a registry and elections.
type node struct {
	system    *actor.ActorSystem
	session   *cluster.Session
	registry  *cluster.Registry
	elections *global.Elections
	stopOnce  sync.Once
}

func startNode(servers []string, root string, timeout time.Duration) (*node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	system.ProcessRegistry.Address = fmt.Sprintf("gnode-%d-%d.test:1", os.Getpid(), nodeSeq.Add(1))
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: timeout, Logger: testLogger()})
	if err != nil {
		system.Shutdown()
		return nil, err
	}
	reg, err := cluster.New(ctx, system, s, cluster.Options{Root: root})
	if err != nil {
		s.Close()
		system.Shutdown()
		return nil, err
	}
	return &node{system: system, session: s, registry: reg, elections: global.New(system, reg, global.Options{Logger: testLogger()})}, nil
}

func newNode(t testing.TB, servers []string, root string, timeout time.Duration) *node {
	t.Helper()
	n, err := startNode(servers, root, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

// stop stops the node; it may be called more than once.
func (n *node) stop() { n.stopOnce.Do(n.stopNow) }

func (n *node) stopNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.elections.Close(ctx)
	_ = n.registry.Close(ctx)
	n.session.Close()
	n.system.Shutdown()
}

// journal records the terms of globals: who ran, with which epoch, from
// when to when, and what each handled.
type journal struct {
	mu    sync.Mutex
	terms []*termRecord
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
			case *actor.Stopping:
				rec.stop = time.Now()
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
		got, err := n.elections.WhereisGlobal(context.Background(), name)
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
