package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/provider"
	"github.com/zkactor/zkactor/recipes/rolematch"
)

// The environment of a node process; see the package doc.
const (
	childEnv               = "ZKACTOR_CHAOS_CHILD" // set (to the node's label) in a node process
	childServersEnv        = "ZKACTOR_CHAOS_SERVERS"
	childRootEnv           = "ZKACTOR_CHAOS_ROOT"
	childSessionTimeoutEnv = "ZKACTOR_CHAOS_SESSION_TIMEOUT"
	childLogLevelEnv       = "ZKACTOR_CHAOS_LOG_LEVEL"
)

// Names every node process uses.
const (
	workerService = "worker" // the service every node's worker registers under
	bossName      = "boss"   // the global that runs the jobs
	jobsDir       = "jobs"   // <root>/jobs: the boss's job store
	commandWait   = 4 * time.Second
)

// IsChild reports whether this process is a node process started by the
// driver. TestMain calls RunChild instead of running the tests when it is.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// RunChild is the main of a node process: it bootstraps a node, reports
// "ready", serves the driver's commands from stdin until stdin closes, then
// stops the node and returns the exit code.
func RunChild() int {
	level := slog.LevelInfo
	if s := os.Getenv(childLogLevelEnv); s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	timeout, err := time.ParseDuration(os.Getenv(childSessionTimeoutEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos child: %s: %v\n", childSessionTimeoutEnv, err)
		return 2
	}
	root := os.Getenv(childRootEnv)
	out := &emitter{w: os.Stdout}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	node, err := zka.Bootstrap(ctx, zka.Config{
		Servers:        strings.Split(os.Getenv(childServersEnv), ","),
		Root:           root,
		SessionTimeout: timeout,
		Logger:         log,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos child: %v\n", err)
		return 1
	}
	c := &child{node: node, out: out, log: log, root: root, actors: map[string]*actor.PID{}}
	if os.Getenv(childGrainsEnv) != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.grains, err = startGrains(ctx, strings.Split(os.Getenv(childServersEnv), ","), root, timeout, log, out)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: grains member: %v\n", err)
			return 1
		}
	}
	stopNotify := node.Session().Notify(func(ev cluster.Event) {
		out.emit("session", ev.Kind, ev.SessionID, ev.NewSession)
	})
	if os.Getenv(childRolesEnv) != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.roles, err = startRoles(ctx, node, log, out)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: roles: %v\n", err)
			return 1
		}
	}
	if os.Getenv(childLocksEnv) != "" {
		if c.locker, err = startLocker(node, root, log, out); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: locker: %v\n", err)
			return 1
		}
	}
	if os.Getenv(childQueueEnv) != "" {
		if c.taker, err = startTaker(node, root, log, out); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: work queue: %v\n", err)
			return 1
		}
	}
	if os.Getenv(childConfigEnv) != "" {
		if c.config, err = startConfigPart(node, root, os.Getenv(childEnv), log, out); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: config: %v\n", err)
			return 1
		}
	}
	if s := os.Getenv(childBarrierEnv); s != "" {
		size, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: %s: %v\n", childBarrierEnv, err)
			return 2
		}
		c.barrier = startBarrierPart(node, root, size, log, out)
	}
	if svcs := os.Getenv(childSubscriptionsEnv); svcs != "" {
		if c.subscriber, err = startSubscriber(node, strings.Split(svcs, ","), out); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: subscriptions: %v\n", err)
			return 1
		}
	}
	out.emit("ready", node.Address(), node.NodeID(), node.Session().ID())

	var wg sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			continue
		}
		wg.Add(1)
		go func() { // commands run concurrently, as a node's callers would
			defer wg.Done()
			result, err := c.command(f[1], f[2:])
			if err != nil {
				out.emit("ans", f[0], "err", err)
			} else {
				out.emit("ans", f[0], "ok", result)
			}
		}()
	}
	wg.Wait()
	stopNotify()
	if c.locker != nil { // before the node's session
		c.locker.stop()
	}
	if c.taker != nil {
		c.taker.stop()
	}
	if c.subscriber != nil {
		c.subscriber.stop()
	}
	if c.barrier != nil {
		c.barrier.stop()
	}
	if c.config != nil {
		c.config.stop()
	}
	if c.roles != nil { // before the node's elections, which run the holders
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.roles.Close(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: roles close: %v\n", err)
		}
		cancel()
	}
	if c.grains != nil {
		if err := c.grains.Shutdown(true); err != nil {
			fmt.Fprintf(os.Stderr, "chaos child: grains shutdown: %v\n", err)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		// Stop may leave znodes to the session's expiry when ZooKeeper is
		// out of reach: no crash. no-ephemerals judges what is left.
		fmt.Fprintf(os.Stderr, "chaos child: stop: %v\n", err)
		out.emit("stopfail", err)
	}
	out.emit("bye")
	return 0
}

// emitter writes event lines. The timestamp is taken under the lock, so
// one process's lines are in time order.
type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *emitter) emit(kind string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintln(e.w, line(kind, args...))
}

// child is the state of a node process.
type child struct {
	node *zka.Node
	out  *emitter
	log  *slog.Logger
	root string

	grains *provider.Supervisor // with Config.Grains: this process's cluster member (grains.go)
	roles  *rolematch.Roles     // with Config.Roles: its application for the role set (roles.go)
	locker *locker              // with Config.Locks: its locking loop (locks.go)
	taker  *taker               // with Config.Queue: its work queue and taking loop (queue.go)
	// with Config.Subscriptions: its subscriptions (subscriptions.go)
	subscriber *subscriber
	barrier    *barrierPart // with Config.Barrier: its part in the rounds (barrier.go)
	config     *configPart  // with Config.Config: its subscription and writes (config.go)

	mu     sync.Mutex
	actors map[string]*actor.PID // service actors by id
}

func pidString(p *actor.PID) string { return p.Address + "/" + p.Id }

func (c *child) command(verb string, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch verb {
	case "worker": // worker: spawn and register this node's worker
		pid, err := c.node.System().Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
			return &workerActor{out: c.out}
		}), workerService)
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		c.actors[workerService] = pid
		c.mu.Unlock()
		return c.register(ctx, workerService, pid)
	case "spawn": // spawn <service> <id>: a service actor, registered
		pid, err := c.node.System().Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), arg(1))
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		c.actors[arg(1)] = pid
		c.mu.Unlock()
		res, err := c.register(ctx, arg(0), pid)
		if err != nil {
			// A failed registration must not linger: stop the actor, which
			// removes whatever the registry may still hold for it.
			c.stop(pid)
		}
		return res, err
	case "register": // register <service> <id>: one more Register of a running actor
		pid, err := c.actor(arg(1))
		if err != nil {
			return "", err
		}
		return c.register(ctx, arg(0), pid)
	case "unregister": // unregister <service> <id>
		pid, err := c.actor(arg(1))
		if err != nil {
			return "", err
		}
		if err := c.node.Unregister(ctx, arg(0), pid); err != nil {
			c.out.emit("unregfail", arg(0), pidString(pid), err)
			return "", err
		}
		c.out.emit("unreg", arg(0), pidString(pid))
		return pidString(pid), nil
	case "stop": // stop <id>
		pid, err := c.actor(arg(0))
		if err != nil {
			return "", err
		}
		c.stop(pid)
		return pidString(pid), nil
	case "grain": // grain <identity>: a request to the grain (grains.go)
		return requestGrain(c.grains, arg(0))
	case "bround": // bround <r> <k>: take part (the k-th time) in round r of the barrier (barrier.go)
		return c.barrier.round(arg(0), arg(1))
	case "bcancel": // bcancel <r> <k>: that participation gives up (barrier.go)
		return c.barrier.giveUpRound(arg(0), arg(1))
	case "cset": // cset: write the service's config record (config.go)
		return c.config.write(false)
	case "cover": // cover: write this process's override (config.go)
		return c.config.write(true)
	case "cheld": // cheld: what the config subscriber holds (config.go)
		return c.config.heldString()
	case "subset": // subset <service>: the subscribed set (subscriptions.go)
		return c.subscriber.set(arg(0))
	case "put": // put <key>: a work queue item (queue.go)
		id, err := c.taker.put(arg(0))
		if err != nil {
			c.out.emit("qput", arg(0), "err", err)
			return "", err
		}
		c.out.emit("qput", arg(0), "ok", id)
		return id, nil
	case "capable": // capable <service>
		pids, err := c.node.GetCapable(ctx, arg(0))
		if err != nil {
			c.out.emit("capable", arg(0), "err", err)
			return "", err
		}
		s := make([]string, 0, len(pids))
		for _, p := range pids {
			s = append(s, pidString(p))
		}
		slices.Sort(s)
		c.out.emit("capable", arg(0), "ok", strings.Join(s, ","))
		return strings.Join(s, ","), nil
	case "cand": // cand <name>
		_, err := c.node.RegisterCandidate(ctx, arg(0), globalProps(c, arg(0)))
		if err != nil {
			c.out.emit("cand", arg(0), "err", err)
			return "", err
		}
		c.out.emit("cand", arg(0), "ok")
		return "", nil
	case "resign": // resign <name>
		if err := c.node.Elections().Resign(ctx, arg(0)); err != nil {
			c.out.emit("resign", arg(0), "err", err)
			return "", err
		}
		c.out.emit("resign", arg(0), "ok")
		return "", nil
	case "submit": // submit <text>: a job, through the boss
		return c.submit(ctx, arg(0))
	}
	return "", fmt.Errorf("unknown verb %q", verb)
}

func (c *child) actor(id string) (*actor.PID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pid := c.actors[id]
	if pid == nil {
		return nil, fmt.Errorf("no actor %q", id)
	}
	return pid, nil
}

func (c *child) register(ctx context.Context, service string, pid *actor.PID) (string, error) {
	if err := c.node.Register(ctx, service, pid); err != nil {
		c.out.emit("regfail", service, pidString(pid), err)
		return "", err
	}
	c.out.emit("reg", service, pidString(pid))
	return pidString(pid), nil
}

func (c *child) stop(pid *actor.PID) {
	_ = c.node.System().Root.StopFuture(pid).Wait()
	c.mu.Lock()
	delete(c.actors, pid.Id)
	c.mu.Unlock()
	c.out.emit("stopped", pidString(pid))
}

// jobStore is <root>/jobs, one persistent sequential znode per unfinished
// job, written and read through the node's own session.
func (c *child) jobPath() string { return path.Join(c.root, jobsDir) }

func (c *child) jobsDo(ctx context.Context, op, p string, fn func(*zk.Conn) error) error {
	return c.node.Session().Do(ctx, cluster.Op{Name: op, Path: p, Idempotent: op != "create"}, fn)
}

// ignoreNoNode is for deletes of a job that may be gone already.
func ignoreNoNode(err error) error {
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// parseEpoch reads an epoch field of a message.
func parseEpoch(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
