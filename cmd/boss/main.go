// Command boss is zkactor's port of the "boss" example of Cloud Haskell's
// distributed-process-zookeeper: one global boss delegates the jobs that
// transient requestors submit to a pool of workers, which are also the
// candidates to take over when the boss fails.
//
//	boss [flags]                 persistent node: boss candidate, worker otherwise
//	boss [flags] job words...    requestor: submit one job and exit
//
// Jobs are put on zkactor's durable work queue (recipes/workqueue, under
// <root>/queues/jobs) before the boss acknowledges them, held by the boss
// while it delegates them, and acknowledged to the queue when a worker
// reports them done, so an accepted job runs at least once whatever fails;
// it may run more than once (a failover, a worker's death or an assignment
// timeout delegates it again). The requestor names its job with a token,
// the item's idempotency key, so a resubmission after an unknown outcome
// records it at most once. See boss -h.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/recipes/workqueue"
)

const (
	joinTimeout = 15 * time.Second // to reach ZooKeeper and join the cluster
	stopTimeout = 3 * time.Second  // to unregister and leave on the way out
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type options struct {
	servers        string
	root           string
	listen         string
	sessionTimeout time.Duration
	assignTimeout  time.Duration
	token          string
	verbose        bool
	metrics        string
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("boss", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.servers, "zk", envOr("ZK_SERVERS", "localhost:2181"), "ZooKeeper servers, `host:port[,host:port...]` (env ZK_SERVERS)")
	fs.StringVar(&o.root, "root", envOr("ZKACTOR_ROOT", "/zkactor"), "znode `path` under which the cluster lives (env ZKACTOR_ROOT)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "`host:port` of this node's actor remote (port 0: any free port)")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", 4*time.Second, "ZooKeeper session `timeout`: how soon a dead node's boss or worker role passes on")
	fs.DurationVar(&o.assignTimeout, "assign-timeout", 2*time.Minute, "how long a worker may hold a task before the boss delegates it again (to the next worker): jobs run at least once")
	fs.StringVar(&o.token, "token", "", "job `token` (requestor): the job's identity, 1-64 letters, digits, '-' or '_'; submitting again with the same token records the job at most once (default: random)")
	fs.BoolVar(&o.verbose, "v", false, "debug logs on stderr (default: warnings and errors only)")
	fs.StringVar(&o.metrics, "metrics", "", "serve the zkactor_ metrics for Prometheus at http://`host:port`/metrics (default: no metrics)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  boss [flags]                 start a persistent node: it stands for the global "boss"
                               and, unless elected at once, works as a "worker".
                               Enter on stdin, SIGINT or SIGTERM stops it.
  boss [flags] job words...    submit one job to the boss; exit 0 once it is accepted.
                               A word "sleep:DURATION" (e.g. sleep:2s) makes the job take that long.
                               Jobs run at least once, and may run more than once.

Flags (before the job words):
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}

	if o.assignTimeout <= 0 {
		fmt.Fprintf(stderr, "boss: -assign-timeout %v: want a positive duration\n", o.assignTimeout)
		return 2
	}
	if o.token == "" {
		o.token = newToken()
	}
	text := strings.Join(fs.Args(), " ")
	if fs.NArg() > 0 {
		// Before joining: a job the boss would refuse is refused here, at once.
		if err := checkJob(o.token, text); err != nil {
			fmt.Fprintf(stderr, "boss: %v\n", err)
			return 1
		}
	}

	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	host, portText, err := net.SplitHostPort(o.listen)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil {
		fmt.Fprintf(stderr, "boss: -listen %q: want host:port\n", o.listen)
		return 2
	}
	var servers []string
	for _, s := range strings.Split(o.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			servers = append(servers, s)
		}
	}
	where := fmt.Sprintf("ZooKeeper %s, root %s", strings.Join(servers, ","), o.root)
	if o.metrics != "" {
		addr, stop, err := serveMetrics(o.metrics, log)
		if err != nil {
			fmt.Fprintf(stderr, "boss: -metrics %q: %v\n", o.metrics, err)
			return 2
		}
		defer stop()
		log.Info("serving metrics", "url", "http://"+addr+"/metrics")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	joinCtx, cancel := context.WithTimeout(ctx, joinTimeout)
	node, err := zka.Bootstrap(joinCtx, zka.Config{
		Servers:        servers,
		Root:           o.root,
		Host:           host,
		Port:           port,
		SessionTimeout: o.sessionTimeout,
		Logger:         log,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "boss: cannot join the cluster (%s): %v\n", where, err)
		return 1
	}
	defer leave(node, log)

	out := &printer{w: stdout}
	if fs.NArg() > 0 {
		return submit(ctx, node, o.token, text, out, stderr, where)
	}
	return persist(ctx, node, o, out, stdin, stderr, log)
}

// persist runs a persistent node until Enter on stdin or a signal (ctx).
func persist(ctx context.Context, node *zka.Node, o options, out *printer, stdin io.Reader, stderr io.Writer, log *slog.Logger) int {
	out.say("Starting persistent process - press <Enter> to exit.")
	worker, err := node.System().Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &workerActor{out: out}
	}), "worker")
	if err != nil {
		fmt.Fprintf(stderr, "boss: start worker: %v\n", err)
		return 1
	}
	jobs, err := workqueue.Open(ctx, node.Session(), queueName, workqueue.Options{Root: o.root, Producer: node.NodeID(), Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "boss: open the jobs queue: %v\n", err)
		return 1
	}
	defer jobs.Close()
	findWorkers := func(ctx context.Context) ([]*actor.PID, error) { return node.GetCapable(ctx, "worker") }
	cfg := bossConfig{deadGrace: 2*o.sessionTimeout + time.Second, assignTimeout: o.assignTimeout}
	bossProps := actor.PropsFromProducer(func() actor.Actor {
		return newBoss(findWorkers, jobs, out, log, cfg)
	})
	boss, err := node.RegisterCandidate(ctx, "boss", bossProps)
	if err != nil {
		fmt.Fprintf(stderr, "boss: stand for boss: %v\n", err)
		return 1
	}
	// As in the original, the first boss only delegates; every other node
	// works, and keeps working if it becomes the boss later.
	if boss == nil || boss.Address != node.Address() {
		if err := node.Register(ctx, "worker", worker); err != nil {
			fmt.Fprintf(stderr, "boss: register worker: %v\n", err)
			return 1
		}
		out.say("Worker waiting for task...")
	}

	// The stdin reader cannot be interrupted; it ends with the process.
	// End of input (e.g. stdin is /dev/null in the background) is not Enter.
	enter := make(chan struct{})
	go func() {
		if _, err := bufio.NewReader(stdin).ReadString('\n'); err == nil {
			close(enter)
		}
	}()
	select {
	case <-enter:
	case <-ctx.Done():
	}
	out.say("Stopping.")
	return 0
}

// leave stops the node, waiting at most stopTimeout. Node.Stop closes the
// ZooKeeper session first (so the node's registrations and candidacy go at
// once) and then protoactor's remote, whose shutdown waits for endpoint
// writers still retrying a dead peer (e.g. a killed boss a Done was sent
// to) for up to about 10 s; the process need not wait for that.
func leave(node *zka.Node, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- node.Stop(ctx) }() // ends with the process if it outlasts ctx
	select {
	case err := <-stopped:
		if err != nil {
			log.Warn("leaving the cluster", "err", err)
		}
	case <-ctx.Done():
		log.Warn("leaving the cluster: node stop took too long; exiting anyway", "timeout", stopTimeout)
	}
}

// printer writes the program's output lines, whole, from any goroutine.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
