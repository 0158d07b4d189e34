// Command grains runs protoactor-go virtual actors (grains) on zkactor:
// a "counter" kind whose every identity has exactly one activation
// cluster-wide (package provider).
//
//	grains [flags] member            a member: hosts counters until SIGINT or SIGTERM
//	grains [flags] incr ID...        a client: increment counters, one line each
//	grains [flags] get ID...         a client: read counters
//	grains [flags] members           a client: the members, one line each
//
// A counter keeps its count in ZooKeeper (<root>/counters/<ID>) and
// writes it fenced by its activation's znode (a multi that checks
// provider.Activation.Path): a write of an activation that is over fails,
// so a count is never advanced by two activations. A counter idle for
// -passivate-after stops (passivation); the next request activates it
// again, maybe on another member. A member whose ZooKeeper session
// expires comes back by itself as a new member on the same address
// (provider.Supervise).
//
// Output lines (stable, greppable):
//
//	Member <id> at <host:port> hosts counters
//	Activated counter/<ID> (epoch <E>) at <N>
//	Deactivated counter/<ID> (epoch <E>)
//	Back as a new member <id> (was <old id>)
//	counter/<ID> = <N> (member <id>, epoch <E>)     from incr and get
//	<id> <host:port>                                from members
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/provider"
)

const (
	kind           = "counter"
	clusterName    = "grains"
	requestTimeout = 10 * time.Second // a client's whole request, retries included
)

type options struct {
	servers        string
	root           string
	listen         string
	sessionTimeout time.Duration
	passivate      time.Duration
	verbose        bool
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("grains", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.servers, "zk", envOr("ZK_SERVERS", "127.0.0.1:2181"), "ZooKeeper servers, host:port[,host:port...] (env ZK_SERVERS)")
	fs.StringVar(&o.root, "root", envOr("ZKACTOR_ROOT", "/zkactor-grains"), "znode root of the cluster (env ZKACTOR_ROOT)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "actor remote address of a member, host:port")
	fs.DurationVar(&o.sessionTimeout, "session-timeout", 4*time.Second, "ZooKeeper session timeout")
	fs.DurationVar(&o.passivate, "passivate-after", time.Minute, "a counter idle this long stops")
	fs.BoolVar(&o.verbose, "v", false, "log zkactor and protoactor at Debug/Info to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: grains [flags] member | incr ID... | get ID... | members")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := provider.Config{Servers: strings.Split(o.servers, ","), Root: o.root, SessionTimeout: o.sessionTimeout, Logger: log}
	out := &printer{w: stdout}
	var err error
	switch verb := rest[0]; verb {
	case "member":
		err = runMember(cfg, o, out)
	case "incr", "get", "members":
		err = runClient(cfg, o, out, verb, rest[1:])
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "grains:", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) println(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// newSystem is an actor system whose protoactor logs go to stderr only
// with -v: protoactor logs peers that leave at ERROR.
func newSystem(o options) *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		if !o.verbose {
			return slog.New(slog.NewTextHandler(io.Discard, nil))
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}))
}

func remoteConfig(listen string) (*remote.Config, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: bad port", listen)
	}
	if port == 0 {
		// protoactor's remote needs a port it can advertise: pick one now,
		// and keep it for the member's later incarnations.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("-listen %q: %w", listen, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return remote.Configure(host, port), nil
}

// runMember runs a member until SIGINT or SIGTERM.
func runMember(cfg provider.Config, o options, out *printer) error {
	rc, err := remoteConfig(o.listen)
	if err != nil {
		return err
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	build := func(p *provider.Provider) (*pcluster.Cluster, error) {
		system := newSystem(o)
		props := actor.PropsFromProducer(func() actor.Actor {
			return &counter{s: p.Session(), root: p.Layout().Root, out: out, passivate: o.passivate}
		})
		return pcluster.New(system, pcluster.Configure(clusterName, p, p.IdentityLookup(), rc,
			pcluster.WithKinds(pcluster.NewKind(kind, props)))), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	sup, err := provider.Supervise(ctx, cfg, build)
	cancel()
	if err != nil {
		return err
	}
	c := sup.Cluster()
	out.println("Member %s at %s hosts counters", c.ActorSystem.ID, c.ActorSystem.Address())
	for {
		select {
		case <-signals:
			return sup.Shutdown(true)
		case <-sup.Changed():
			next := sup.Cluster()
			out.println("Back as a new member %s (was %s)", next.ActorSystem.ID, c.ActorSystem.ID)
			c = next
		}
	}
}

// runClient runs one client command.
func runClient(cfg provider.Config, o options, out *printer, verb string, ids []string) error {
	rc, err := remoteConfig("127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	p, err := provider.New(ctx, cfg)
	if err != nil {
		return err
	}
	system := newSystem(o)
	members := make(chan []*pcluster.Member, 1)
	system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pcluster.ClusterTopology); ok {
			select {
			case <-members:
			default:
			}
			members <- t.Members
		}
	})
	c := pcluster.New(system, pcluster.Configure(clusterName, p, p.IdentityLookup(), rc))
	c.StartClient()
	defer func() {
		_ = p.Shutdown(true)
		system.Shutdown()
		c.Remote.Shutdown(false)
	}()
	var ms []*pcluster.Member
	select {
	case ms = <-members:
	case <-ctx.Done():
		return errors.New("no member in the cluster (start one: grains member)")
	}
	if verb == "members" {
		slices.SortFunc(ms, func(a, b *pcluster.Member) int { return strings.Compare(a.Id, b.Id) })
		for _, m := range ms {
			out.println("%s %s", m.Id, m.Address())
		}
		return nil
	}
	var errs []error
	for _, id := range ids {
		res, err := request(ctx, c, id, verb)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", verb, id, err))
			continue
		}
		f := strings.Fields(res)
		if len(f) != 3 {
			errs = append(errs, fmt.Errorf("%s %s: answer %q", verb, id, res))
			continue
		}
		out.println("%s/%s = %s (member %s, epoch %s)", kind, id, f[0], f[1], f[2])
	}
	return errors.Join(errs...)
}

// request sends op to counter id, trying again (protoactor's own retries
// are few and quick) until ctx ends: a counter whose member just died is
// activated elsewhere once that member's session is over.
func request(ctx context.Context, c *pcluster.Cluster, id, op string) (string, error) {
	if err := cluster.ValidateName(id); err != nil {
		return "", err
	}
	for {
		res, err := c.Request(id, kind, wrapperspb.String(op), pcluster.WithTimeout(2*time.Second))
		if err == nil {
			if s, ok := res.(*wrapperspb.StringValue); ok {
				if msg, failed := strings.CutPrefix(s.Value, "error: "); failed {
					err = errors.New(msg)
				} else {
					return s.Value, nil
				}
			} else {
				err = fmt.Errorf("answer %T", res)
			}
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// counter is the grain. Its count lives in <root>/counters/<ID>; every
// write is fenced by the activation's znode, so that an activation that is
// over (its member partitioned away, say) cannot write after the next one
// began. It answers "<count> <member id> <epoch>", or "error: ..." when it
// cannot reach ZooKeeper or its fence fails (it stops then).
//
// It waits on ZooKeeper inside Receive, one request of about a millisecond
// per message, bounded by a short deadline: the fence, not the lease
// guard, is what makes a write that outlives the activation harmless.
type counter struct {
	s         *cluster.Session
	root      string
	out       *printer
	passivate time.Duration

	a       provider.Activation
	count   int64
	version int32 // of the count's znode; -1 before it exists
	loaded  bool
}

const zkDeadline = 2 * time.Second

func (g *counter) path() string { return g.root + "/counters/" + g.a.Identity }

func (g *counter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		g.a, _ = provider.ActivationOf(ctx)
		g.load()
		g.out.println("Activated %s/%s (epoch %d) at %d", kind, g.a.Identity, g.a.Epoch, g.count)
		ctx.SetReceiveTimeout(g.passivate)
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self()) // passivation: the next request activates it again
	case *actor.Stopped:
		g.out.println("Deactivated %s/%s (epoch %d)", kind, g.a.Identity, g.a.Epoch)
	case *wrapperspb.StringValue:
		if !g.loaded && !g.load() {
			ctx.Respond(wrapperspb.String("error: cannot read the count from ZooKeeper"))
			return
		}
		if m.Value == "incr" {
			if err := g.store(g.count + 1); err != nil {
				ctx.Respond(wrapperspb.String("error: " + err.Error()))
				if errors.Is(err, errFenced) {
					ctx.Stop(ctx.Self())
				}
				return
			}
		}
		ctx.Respond(wrapperspb.String(fmt.Sprintf("%d %s %d", g.count, g.a.MemberID, g.a.Epoch)))
	}
}

func (g *counter) load() bool {
	ctx, cancel := context.WithTimeout(context.Background(), zkDeadline)
	defer cancel()
	var data []byte
	var stat *zk.Stat
	err := g.s.Do(ctx, cluster.Op{Name: "get", Path: g.path(), Idempotent: true}, func(c *zk.Conn) error {
		var err error
		data, stat, err = c.Get(g.path())
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		g.count, g.version, g.loaded = 0, -1, true
	case err == nil:
		n, perr := strconv.ParseInt(string(data), 10, 64)
		g.count, g.version, g.loaded = n, stat.Version, perr == nil
	default:
		g.loaded = false
	}
	return g.loaded
}

var errFenced = errors.New("this activation is over in ZooKeeper (fenced)")

// store writes n, fenced by the activation's znode and by the version read.
func (g *counter) store(n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), zkDeadline)
	defer cancel()
	data := []byte(strconv.FormatInt(n, 10))
	fence := &zk.CheckVersionRequest{Path: g.a.Path, Version: -1}
	var version int32
	err := g.s.Do(ctx, cluster.Op{Name: "write", Path: g.path()}, func(c *zk.Conn) error {
		if g.version < 0 {
			if err := ensureParent(c, g.root); err != nil {
				return err
			}
			_, err := c.Multi(fence, &zk.CreateRequest{Path: g.path(), Data: data, Acl: g.s.ACL()})
			version = 0
			return err
		}
		res, err := c.Multi(fence, &zk.SetDataRequest{Path: g.path(), Data: data, Version: g.version})
		if err == nil {
			version = res[1].Stat.Version
		}
		return err
	})
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
			// The fence failed (the activation's znode is gone) or someone
			// else wrote the count: either way this activation is over.
			return fmt.Errorf("%w: %w", errFenced, err)
		}
		return err
	}
	g.count, g.version = n, version
	return nil
}

// ensureParent creates <root>/counters if it is missing.
func ensureParent(c *zk.Conn, root string) error {
	_, err := zkutil.CreateWithParents(c, "/", root+"/counters", nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}
