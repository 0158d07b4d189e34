package main

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
	zkprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/zk"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/provider"
)

// The member process: the bench binary re-executed with memberEnv set to
// "zkactor" or "protoactor" (the provider under test), one cluster member
// per process (protoactor's remote keeps process-wide state). It prints
//
//	ready <member id as in topologies> <address>
//	topology <unix ns> <id,id,...>          every ClusterTopology it sees
//	act <identity> <unix ns>                 a grain started
//	deact <identity> <unix ns>               a grain stopped
//
// and runs the driver's commands from stdin, one per line:
//
//	shutdown          the provider's Shutdown(true): "shutdown <ns>"
//	leave             protoactor's Cluster.Shutdown(true): "left"
//	lookups <prefix> <n> <repeat>
//	                  IdentityLookup.Get of n new identities (first activations), then of
//	                  one identity repeat times: "lookups <first ns p50> <p99> <cached ns/op> <zk requests>"
//	load <ms> <ids>   cluster.Request to identities id-0..id-<ids-1>, round robin, for ms
//	                  milliseconds: "load <ok> <failed>"
const (
	memberEnv      = "PROVIDERBENCH_MEMBER"
	serversEnv     = "PROVIDERBENCH_SERVERS"
	rootEnv        = "PROVIDERBENCH_ROOT"
	portEnv        = "PROVIDERBENCH_PORT"
	clusterName    = "bench"
	benchKind      = "counter"
	sessionTimeout = 4 * time.Second
)

type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) println(a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(o.w, a...)
}

func grainProps(o *out) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var id string
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started:
				if ci := pcluster.GetClusterIdentity(ctx); ci != nil {
					id = ci.Identity
				}
				o.println("act", id, time.Now().UnixNano())
			case *actor.Stopped:
				o.println("deact", id, time.Now().UnixNano())
			case *wrapperspb.StringValue:
				ctx.Respond(wrapperspb.String("ok"))
			}
		})
	})
}

func runMember(which string) int {
	o := &out{w: os.Stdout}
	servers := strings.Split(os.Getenv(serversEnv), ",")
	root := os.Getenv(rootEnv)
	port, _ := strconv.Atoi(os.Getenv(portEnv))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	self := fmt.Sprintf("127.0.0.1:%d", port)
	ready := make(chan string, 1)
	system.EventStream.Subscribe(func(evt any) {
		t, ok := evt.(*pcluster.ClusterTopology)
		if !ok {
			return
		}
		now := time.Now().UnixNano()
		var ids []string
		for _, m := range t.Members {
			ids = append(ids, m.Id)
			if m.Address() == self {
				select {
				case ready <- m.Id:
				default:
				}
			}
		}
		slices.Sort(ids)
		o.println("topology", now, strings.Join(ids, ","))
	})

	var (
		shutdown func() error
		lookup   pcluster.IdentityLookup
		requests func() int64
	)
	kind := pcluster.NewKind(benchKind, grainProps(o))
	rc := remote.Configure("127.0.0.1", port)
	switch which {
	case "zkactor":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		p, err := provider.New(ctx, provider.Config{Servers: servers, Root: root, SessionTimeout: sessionTimeout, Logger: log})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		lookup = p.IdentityLookup()
		shutdown = func() error { return p.Shutdown(true) }
		requests = func() int64 { return plumbing.Requests(p.Session()) }
		c := pcluster.New(system, pcluster.Configure(clusterName, p, lookup, rc, pcluster.WithKinds(kind)))
		c.StartMember()
		return serveMember(o, c, lookup, shutdown, requests, ready)
	case "protoactor":
		p, err := zkprovider.New(servers, zkprovider.WithBaseKey(root), zkprovider.WithSessionTimeout(sessionTimeout))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		lookup = disthash.New()
		shutdown = func() error { return p.Shutdown(true) }
		c := pcluster.New(system, pcluster.Configure(clusterName, p, lookup, rc, pcluster.WithKinds(kind)))
		c.StartMember()
		return serveMember(o, c, lookup, shutdown, func() int64 { return -1 }, ready)
	}
	fmt.Fprintln(os.Stderr, "unknown provider", which)
	return 2
}

func serveMember(o *out, c *pcluster.Cluster, lookup pcluster.IdentityLookup, shutdown func() error, requests func() int64, ready chan string) int {
	select {
	case id := <-ready:
		o.println("ready", id, c.ActorSystem.Address())
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "never saw itself in a topology")
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		arg := func(i int) int {
			if i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
			return 0
		}
		switch f[0] {
		case "shutdown":
			start := time.Now()
			err := shutdown()
			o.println("shutdown", time.Since(start).Nanoseconds(), err)
		case "leave":
			c.Shutdown(true)
			o.println("left")
		case "lookups":
			o.println(lookups(c, lookup, f[1], arg(2), arg(3), requests))
		case "load":
			o.println(load(c, time.Duration(arg(1))*time.Millisecond, arg(2)))
		}
	}
	return 0
}

// lookups times IdentityLookup.Get: n first activations, then repeat
// lookups of one activated identity.
func lookups(c *pcluster.Cluster, l pcluster.IdentityLookup, prefix string, n, repeat int, requests func() int64) string {
	var first []time.Duration
	for i := range n {
		ci := pcluster.NewClusterIdentity(fmt.Sprintf("%s-%d", prefix, i), benchKind)
		start := time.Now()
		if l.Get(ci) == nil {
			return "lookups failed"
		}
		first = append(first, time.Since(start))
	}
	slices.Sort(first)
	ci := pcluster.NewClusterIdentity(prefix+"-0", benchKind)
	for range 100 { // past the create's watch sweeping the entry once
		l.Get(ci)
		time.Sleep(time.Millisecond)
	}
	before := requests()
	start := time.Now()
	for range repeat {
		l.Get(ci)
	}
	perOp := time.Since(start).Nanoseconds() / int64(repeat)
	zkRequests := requests() - before
	if before < 0 {
		zkRequests = -1
	}
	return fmt.Sprintf("lookups %d %d %d %d", first[len(first)/2].Nanoseconds(), first[len(first)*99/100].Nanoseconds(), perOp, zkRequests)
}

// load requests identities round robin for d.
func load(c *pcluster.Cluster, d time.Duration, ids int) string {
	ok, failed := 0, 0
	for end, i := time.Now().Add(d), 0; time.Now().Before(end); i++ {
		_, err := c.Request(fmt.Sprintf("id-%d", i%ids), benchKind, wrapperspb.String("hi"), pcluster.WithTimeout(500*time.Millisecond))
		if err != nil {
			failed++
		} else {
			ok++
		}
	}
	return fmt.Sprintf("load %d %d", ok, failed)
}
