package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// wait bounds every wait for the boss.
const wait = 10 * time.Second

// lines collects text lines (the program's output, or log records) and
// lets a test wait, with a deadline, until they satisfy a condition.
type lines struct {
	mu      sync.Mutex
	all     []string
	changed chan struct{} // closed and replaced on every new line
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, s)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Write makes lines the writer of a printer: one line per say.
func (l *lines) Write(p []byte) (int, error) {
	l.add(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (l *lines) snapshot() ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...), l.changed
}

// count counts the lines that contain s.
func (l *lines) count(s string) int {
	all, _ := l.snapshot()
	n := 0
	for _, line := range all {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitFor waits until n lines contain s.
func (l *lines) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		all, changed := l.snapshot()
		c := 0
		for _, line := range all {
			if strings.Contains(line, s) {
				c++
			}
		}
		if c >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("not within %v: %d line(s) with %q; got:\n%s", wait, n, s, strings.Join(all, "\n"))
		}
	}
}

// logLines is a slog handler that adds each record to lines as
// "LEVEL msg key=value...", and also to stderr when BOSS_TEST_LOG is set.
type logLines struct {
	l     *lines
	attrs []slog.Attr
}

func (h logLines) Enabled(context.Context, slog.Level) bool { return true }

func (h logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s", a)
		return true
	})
	if os.Getenv("BOSS_TEST_LOG") != "" {
		fmt.Fprintln(os.Stderr, b.String())
	}
	h.l.add(b.String())
	return nil
}

func (h logLines) WithAttrs(as []slog.Attr) slog.Handler {
	return logLines{h.l, append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h logLines) WithGroup(string) slog.Handler { return h }

// harness runs one boss actor in an actor system of its own (no remote:
// everything here is local), on a real ZooKeeper session, with test
// actors as its workers. It sends the boss its Elected, as the global
// machinery does (the end-to-end tests in test/boss cover that part).
type harness struct {
	t       *testing.T
	root    string
	system  *actor.ActorSystem
	session *cluster.Session
	jobs    *workqueue.Queue
	out     *lines // what the program prints
	logs    *lines // its log records
	boss    *actor.PID

	mu      sync.Mutex
	workers []*actor.PID
}

// newHarness dials ZooKeeper at servers (the shared server when none).
func newHarness(t *testing.T, servers ...string) *harness {
	t.Helper()
	if len(servers) == 0 {
		servers = zktest.Shared(t).Addrs()
	}
	h := &harness{t: t, root: zktest.Root(t), out: newLines(), logs: newLines()}
	log := slog.New(logLines{l: h.logs})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: 4 * time.Second, Logger: log})
	if err != nil {
		t.Fatalf("dial ZooKeeper: %v", err)
	}
	h.session = s
	h.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }),
		// The outcome of a request still in flight when the boss stops is a
		// dead letter; protoactor's throttle for their logs runs a goroutine
		// for this long after each, which the leak check would see.
		actor.WithDeadLetterThrottleInterval(time.Millisecond),
	)
	t.Cleanup(func() {
		if h.boss != nil {
			_ = h.system.Root.StopFuture(h.boss).Wait()
		}
		h.system.Shutdown()
		s.Close()
	})
	q, err := workqueue.Open(ctx, s, queueName, workqueue.Options{Root: h.root, Producer: "harness", Logger: log})
	if err != nil {
		t.Fatalf("open the jobs queue: %v", err)
	}
	// After the boss stops (cleanups run last first): its feeder is gone.
	t.Cleanup(q.Close)
	h.jobs = q
	return h
}

// start starts the boss and elects it with epoch.
func (h *harness) start(cfg bossConfig, epoch int64) {
	h.t.Helper()
	if cfg.deadGrace == 0 {
		cfg.deadGrace = time.Second
	}
	if cfg.assignTimeout == 0 {
		cfg.assignTimeout = time.Minute
	}
	find := func(context.Context) ([]*actor.PID, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]*actor.PID(nil), h.workers...), nil
	}
	props := actor.PropsFromProducer(func() actor.Actor {
		return newBoss(find, h.jobs, &printer{w: h.out}, slog.New(logLines{l: h.logs}), cfg)
	})
	pid, err := h.system.Root.SpawnNamed(props, "boss")
	if err != nil {
		h.t.Fatal(err)
	}
	h.boss = pid
	h.system.Root.Send(pid, &zkactorv1.Elected{Name: "boss", Epoch: epoch})
}

// worker adds a worker that does each Work handle says it should (Done),
// and reports every Work it gets on the returned channel.
func (h *harness) worker(do func(*bossv1.Work) bool) <-chan *bossv1.Work {
	got := make(chan *bossv1.Work, 100)
	pid := h.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*bossv1.Work); ok {
			got <- m
			if do(m) {
				c.Send(actor.NewPID(m.Boss.Address, m.Boss.Id), &bossv1.Done{JobId: m.Job.Id, Worker: pidString(c.Self())})
			}
		}
	}))
	h.mu.Lock()
	h.workers = append(h.workers, pid)
	h.mu.Unlock()
	return got
}

func always(*bossv1.Work) bool { return true }

// submit sends Submit and returns the boss's answer, waiting at most d.
func (h *harness) submit(token, text string, d time.Duration) (any, error) {
	return h.system.Root.RequestFuture(h.boss, &bossv1.Submit{Token: token, Text: text}, d).Result()
}

// mustAccept submits a job that must be accepted under id job-<token>.
func (h *harness) mustAccept(token, text string) {
	h.t.Helper()
	res, err := h.submit(token, text, wait)
	if err != nil {
		h.t.Fatalf("submit %q: %v", text, err)
	}
	a, ok := res.(*bossv1.Accepted)
	if !ok {
		h.t.Fatalf("submit %q: answer %v, want Accepted", text, res)
	}
	if a.JobId != jobID(token) {
		h.t.Fatalf("submit %q: job id %q, want %q", text, a.JobId, jobID(token))
	}
}

// nextWork waits for the next Work on ch.
func nextWork(t *testing.T, ch <-chan *bossv1.Work) *bossv1.Work {
	t.Helper()
	select {
	case w := <-ch:
		return w
	case <-time.After(wait):
		t.Fatalf("no Work within %v", wait)
		return nil
	}
}

// foreign is another ZooKeeper client, as a test's stand-in for whoever
// else writes under the root.
func (h *harness) foreign() *zk.Conn {
	return zktest.Dial(h.t, zktest.Shared(h.t).Addrs(), 4*time.Second)
}

// create creates path with data (and its missing parents, open).
func create(t *testing.T, c *zk.Conn, path string, data []byte, acl []zk.ACL) {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := 1; i < len(parts); i++ {
		p := "/" + strings.Join(parts[:i], "/")
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	if _, err := c.Create(path, data, 0, acl); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

// putJob puts a job on the queue as the boss does.
func (h *harness) putJob(token, text string) {
	h.t.Helper()
	payload, err := jobPayload(text)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.jobs.Put(h.t.Context(), jobID(token), payload); err != nil {
		h.t.Fatalf("put job %s: %v", token, err)
	}
}
