package provider_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zkactor/zkactor/internal/plumbing"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/provider"
)

// A member (or client) of a test cluster runs in a process of its own: the
// test binary re-executed with childEnv set. protoactor's remote.Start
// writes grpc's global logger, which the race detector flags once two
// remotes have lived in one process (see test/isolate_test.go), and every
// protoactor cluster member has a remote.
//
// The child reads its configuration from the environment, starts its
// cluster and prints
//
//	ready <address> <member id> <session id>
//
// then answers commands "<seq> <verb> <args...>" from stdin with
// "<seq> ok <result>" or "<seq> err <error>". Its counter grains print
//
//	activated <identity> <epoch> <member id> <CLOCK_MONOTONIC ns>
//	deactivated <identity> <epoch> <CLOCK_MONOTONIC ns>
//
// When stdin closes, the child shuts its cluster down and exits 0.
//
// Verbs:
//
//	members                      the member ids of protoactor's latest topology, sorted
//	request <identity> <op>      cluster.Request(identity, "counter", op); ops: incr, get, stop
//	lookup <identity>            IdentityLookup.Activation: "<address>/<id> <epoch> <member id>"
//	cost <identity>              "<requests> <ns per lookup>" of 100000 cached lookups
//	singleton <name>             stand for the singleton name (it prints "elected <name> <epoch> <member id>")
//	whereis <name>               "<member id> <epoch>" of the running singleton
//	session                      the provider's session id (%#x)
//	member                       the current member id (changes when Supervise restarts it)
//	shutdown                     the provider's Shutdown(true): its duration in µs
//	load-start <n>               request id-0 .. id-<n-1> round robin, in the background
//	load-stop                    stop that: "<ok> <failed>"
const (
	childEnv        = "ZKACTOR_PROVIDER_CHILD" // "member", "client" or "supervised"
	childServersEnv = "ZKACTOR_PROVIDER_SERVERS"
	childRootEnv    = "ZKACTOR_PROVIDER_ROOT"
	childTimeoutEnv = "ZKACTOR_PROVIDER_SESSION_TIMEOUT"
	childPortEnv    = "ZKACTOR_PROVIDER_PORT"
)

const counterKind = "counter"

type childOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *childOut) println(a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(o.w, a...)
}

// counterProps is the test's grain: it counts "incr" requests, answers
// "<count> <member id> <epoch>", and stops itself on "stop" (passivation).
func counterProps(out *childOut) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var count int
		var a provider.Activation
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				a, _ = provider.ActivationOf(ctx)
				out.println("activated", a.Identity, a.Epoch, a.MemberID, monoNow())
			case *actor.Stopped:
				out.println("deactivated", a.Identity, a.Epoch, monoNow())
			case *wrapperspb.StringValue:
				switch m.Value {
				case "incr":
					count++
				case "stop":
					ctx.Stop(ctx.Self())
				}
				ctx.Respond(wrapperspb.String(fmt.Sprintf("%d %s %d", count, a.MemberID, a.Epoch)))
			}
		})
	})
}

// singletonProps is a singleton that prints "elected <name> <epoch>
// <member id>" when its term starts.
func singletonProps(out *childOut, name, member string) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if e, ok := ctx.Message().(*zkactorv1.Elected); ok {
			out.println("elected", name, e.Epoch, member)
		}
	})
}

// runLoad requests identities id-0 .. id-<n-1> round robin until stop,
// each with a short timeout, and reports "<ok> <failed>" on done.
func runLoad(current func() *childMember, n int, stop <-chan struct{}, done chan<- string) {
	ok, failed := 0, 0
	for i := 0; ; i++ {
		select {
		case <-stop:
			done <- fmt.Sprintf("%d %d", ok, failed)
			return
		default:
		}
		m := current()
		if _, err := m.c.Request(fmt.Sprintf("id-%d", i%n), counterKind, wrapperspb.String("incr"), pcluster.WithTimeout(300*time.Millisecond)); err != nil {
			failed++
		} else {
			ok++
		}
	}
}

// zkWait polls cond for up to five seconds.
func zkWait(cond func() bool) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !cond(); {
		time.Sleep(time.Millisecond)
	}
}

// childMember is one incarnation of the child's cluster.
type childMember struct {
	p *provider.Provider
	c *pcluster.Cluster

	mu      sync.Mutex
	members []string
}

func runChild(role string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	timeout := time.Second
	if s := os.Getenv(childTimeoutEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		timeout = d
	}
	port, _ := strconv.Atoi(os.Getenv(childPortEnv))
	cfg := provider.Config{
		Servers:        strings.Split(os.Getenv(childServersEnv), ","),
		Root:           os.Getenv(childRootEnv),
		SessionTimeout: timeout,
		Logger:         log,
	}
	out := &childOut{w: os.Stdout}

	var (
		mu  sync.Mutex
		cur *childMember
		sup *provider.Supervisor
	)
	build := func(p *provider.Provider) (*pcluster.Cluster, error) {
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}))
		m := &childMember{p: p}
		system.EventStream.Subscribe(func(evt any) {
			if t, ok := evt.(*pcluster.ClusterTopology); ok {
				var ids []string
				for _, mem := range t.Members {
					ids = append(ids, mem.Id)
				}
				slices.Sort(ids)
				m.mu.Lock()
				m.members = ids
				m.mu.Unlock()
			}
		})
		c := pcluster.New(system, pcluster.Configure("test", p, p.IdentityLookup(),
			remote.Configure("127.0.0.1", port),
			pcluster.WithKinds(pcluster.NewKind(counterKind, counterProps(out)))))
		m.c = c
		mu.Lock()
		cur = m
		mu.Unlock()
		return c, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	var err error
	switch role {
	case "supervised":
		sup, err = provider.Supervise(ctx, cfg, build)
	case "member", "client":
		var p *provider.Provider
		if p, err = provider.New(ctx, cfg); err == nil {
			c, _ := build(p)
			if role == "client" {
				c.StartClient()
			} else {
				c.StartMember()
			}
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	current := func() *childMember {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
	m := current()
	out.println("ready", m.c.ActorSystem.Address(), m.c.ActorSystem.ID, fmt.Sprintf("%#x", m.p.Session().ID()))

	var (
		loadMu   sync.Mutex
		loadStop chan struct{}
		loadDone chan string
	)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		for len(f) < 4 {
			f = append(f, "")
		}
		seq, verb, args := f[0], f[1], f[2:]
		m := current()
		var result string
		var err error
		switch verb {
		case "members":
			m.mu.Lock()
			result = strings.Join(m.members, " ")
			m.mu.Unlock()
		case "request":
			var res any
			res, err = m.c.Request(args[0], counterKind, wrapperspb.String(args[1]), pcluster.WithTimeout(2*time.Second))
			if err == nil {
				if s, ok := res.(*wrapperspb.StringValue); ok {
					result = s.Value
				} else {
					err = fmt.Errorf("answer %T %v", res, res)
				}
			}
		case "lookup":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var a provider.Activation
			a, err = m.p.IdentityLookup().Activation(ctx, args[0], args[1])
			cancel()
			if err == nil {
				result = fmt.Sprintf("%s/%s %d %s", a.PID.Address, a.PID.Id, a.Epoch, a.MemberID)
			}
		case "cost":
			// The ZooKeeper requests of n cached lookups.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l := m.p.IdentityLookup()
			if _, err = l.Activation(ctx, args[0], counterKind); err == nil {
				// The create's watch sweeps the entry once: load it again.
				zkWait(func() bool {
					before := plumbing.Requests(m.p.Session())
					_, err = l.Activation(ctx, args[0], counterKind)
					return err != nil || plumbing.Requests(m.p.Session()) == before
				})
			}
			cancel()
			if err == nil {
				const n = 100000
				before := plumbing.Requests(m.p.Session())
				start := time.Now()
				for range n {
					_, _ = l.Activation(ctx, args[0], counterKind)
				}
				took := time.Since(start)
				result = fmt.Sprintf("%d %d", plumbing.Requests(m.p.Session())-before, took.Nanoseconds()/n)
			}
		case "singleton":
			var pid *actor.PID
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			pid, err = m.p.Singleton(ctx, args[0], singletonProps(out, args[0], m.c.ActorSystem.ID))
			cancel()
			if err == nil {
				result = pid.String()
			}
		case "whereis":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l, werr := m.p.WhereisSingleton(ctx, args[0])
			cancel()
			err = werr
			if err == nil {
				result = fmt.Sprintf("%s %d", l.NodeID, l.Epoch)
			}
		case "load-start":
			// Requests to id-0 .. id-<n-1>, round robin, in the
			// background until load-stop.
			n, _ := strconv.Atoi(args[0])
			loadMu.Lock()
			if loadStop == nil {
				loadStop, loadDone = make(chan struct{}), make(chan string, 1)
				go runLoad(current, n, loadStop, loadDone)
			}
			loadMu.Unlock()
		case "load-stop":
			loadMu.Lock()
			if loadStop != nil {
				close(loadStop)
				result = <-loadDone
				loadStop = nil
			}
			loadMu.Unlock()
		case "session":
			result = fmt.Sprintf("%#x", m.p.Session().ID())
		case "member":
			result = m.c.ActorSystem.ID
		case "shutdown":
			start := time.Now()
			err = m.p.Shutdown(true)
			result = strconv.FormatInt(time.Since(start).Microseconds(), 10)
		default:
			err = fmt.Errorf("unknown verb %q", verb)
		}
		if err != nil {
			out.println(seq, "err", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			out.println(seq, "ok", result)
		}
	}
	if sup != nil {
		_ = sup.Shutdown(true)
	} else {
		m := current()
		start := time.Now()
		_ = m.p.Shutdown(true)
		log.Info("provider shut down", "took", time.Since(start))
		m.c.ActorSystem.Shutdown()
		// Not graceful: protoactor's graceful remote shutdown waits for
		// the endpoints of peers that are gone.
		m.c.Remote.Shutdown(false)
		log.Info("remote shut down", "took", time.Since(start))
	}
	return 0
}
