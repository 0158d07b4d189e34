// Package actor is where a zkactor user starts: Bootstrap gives a Node, a
// protoactor-go ActorSystem with its remote started, joined to a cluster
// kept in ZooKeeper. Through the Node, actors register under shared names
// (Register, GetCapable, like Erlang's pg), find the other nodes
// (GetPeers), and stand for globally unique roles (RegisterCandidate,
// WhereisGlobal).
//
// Users alias the package, since protoactor's is also called actor:
//
//	import zka "github.com/zkactor/zkactor/actor"
//
// The ZooKeeper side (session, registry, cache) is package cluster, and
// elections are package global; both can be used without a Node.
package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/zkactor/zkactor/internal/remotestop"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
)

// DigestAuth holds ZooKeeper digest credentials; see Config.Auth.
type DigestAuth = cluster.DigestAuth

// Config configures Bootstrap.
type Config struct {
	Servers        []string      // ZooKeeper ensemble, "host:port"; required
	Root           string        // znode root; default "/zkactor"
	NodeID         string        // this node's id under <root>/nodes; default a random one. Bootstrap fails with cluster.ErrNodeIDTaken while another live session holds it
	Host           string        // actor remote listen host; default "127.0.0.1"
	Port           int           // actor remote listen port; 0 = any free port
	SessionTimeout time.Duration // requested ZooKeeper session timeout; default 4s; the negotiated one is what counts
	RequestTimeout time.Duration // bound on a ZooKeeper request whose ctx has no deadline; default 10s
	RegisterPrefix string        // SpawnNamed registers names with this prefix in ZooKeeper; "" = every name
	Auth           *DigestAuth   // optional digest credentials {User, Password}: znodes get ACLs so only that identity may change them, everyone may read
	Logger         *slog.Logger  // optional
}

// Node is one member of a zkactor cluster: an actor system, its remote,
// its ZooKeeper session and its registry.
type Node struct {
	cfg      Config
	log      *slog.Logger
	system   *actor.ActorSystem
	remote   *remote.Remote
	session  *cluster.Session
	registry *cluster.Registry
	globals  *global.Elections

	stopOnce sync.Once
	stopErr  error
}

// Bootstrap starts an actor system with its remote on cfg.Host:cfg.Port,
// opens a ZooKeeper session and joins the cluster under cfg.Root. It
// returns once this node's znode exists, or an error within ctx.
func Bootstrap(ctx context.Context, cfg Config) (*Node, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("zkactor: bootstrap: Config.Servers is empty")
	}
	if cfg.Root == "" {
		cfg.Root = cluster.DefaultRoot
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = cluster.DefaultSessionTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Logger}

	// Check the listen address first: protoactor's remote panics on it.
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("zkactor: bootstrap: actor remote: %w", err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()

	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return protoactorLogger(cfg.Logger)
	}))
	n.remote = remote.NewRemote(n.system, remote.Configure(cfg.Host, port))
	if err := startRemote(n.remote); err != nil {
		n.system.Shutdown()
		return nil, fmt.Errorf("zkactor: bootstrap: actor remote on %s:%d: %w", cfg.Host, port, err)
	}

	n.session, err = cluster.Dial(ctx, cluster.Config{
		Servers:        cfg.Servers,
		SessionTimeout: cfg.SessionTimeout,
		RequestTimeout: cfg.RequestTimeout,
		Auth:           cfg.Auth,
		Logger:         cfg.Logger,
	})
	if err != nil {
		n.stopActors()
		return nil, fmt.Errorf("zkactor: bootstrap: %w", err)
	}
	n.registry, err = cluster.NewRegistry(ctx, n.system, n.session, cluster.Options{Root: cfg.Root, NodeID: cfg.NodeID, Logger: cfg.Logger})
	if err != nil {
		n.session.Close()
		n.stopActors()
		return nil, fmt.Errorf("zkactor: bootstrap: %w", err)
	}
	n.globals = global.NewElections(n.system, n.registry, global.Options{Logger: cfg.Logger})
	n.log = cfg.Logger.With("node", n.registry.NodeID())
	return n, nil
}

func startRemote(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	r.Start()
	return nil
}

// protoactorLogger routes protoactor's logs through the node's handler:
// its own chatter is kept at Warn and above, and what it logs at Error in
// normal operation (a peer closing its connection, a node leaving) is
// demoted to Debug, so that an ERROR line means something is wrong.
func protoactorLogger(l *slog.Logger) *slog.Logger {
	return slog.New(protoactorHandler{l.Handler(), slog.LevelWarn}).With("lib", "protoactor")
}

// routineErrors are the messages protoactor logs at Error when a peer goes
// away: a node that stops, or a requestor that submits and exits.
var routineErrors = map[string]bool{
	"EndpointWriter lost connection":                                  true,
	"EndpointWriter error when closing the stream":                    true,
	"EndpointWriter error when closing the client conn":               true,
	"EndpointWatcher receive message for already terminated endpoint": true,
}

type protoactorHandler struct {
	slog.Handler
	min slog.Level
}

func (h protoactorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (l >= h.min || l >= slog.LevelError) && h.Handler.Enabled(ctx, l) ||
		l >= slog.LevelError && h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h protoactorHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && routineErrors[r.Message] {
		r.Level = slog.LevelDebug
		if !h.Handler.Enabled(ctx, r.Level) {
			return nil
		}
		return h.Handler.Handle(ctx, r)
	}
	if r.Level < h.min || !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h protoactorHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return protoactorHandler{h.Handler.WithAttrs(a), h.min}
}

func (h protoactorHandler) WithGroup(g string) slog.Handler {
	return protoactorHandler{h.Handler.WithGroup(g), h.min}
}

// System is the node's protoactor ActorSystem.
func (n *Node) System() *actor.ActorSystem { return n.system }

// NodeID is the node's id (Config.NodeID): the name of its znode under <root>/nodes.
func (n *Node) NodeID() string { return n.registry.NodeID() }

// Address is the host:port of the node's actor remote.
func (n *Node) Address() string { return n.system.Address() }

// Registry is the node's cluster registry, for what Node does not wrap.
func (n *Node) Registry() *cluster.Registry { return n.registry }

// Elections is the node's election runner, for what Node does not wrap
// (Observe, Resign, Epoch, Leader).
func (n *Node) Elections() *global.Elections { return n.globals }

// RegisterCandidate puts this node up for the global process name and
// returns at once with the PID of the currently elected global, this
// node's or another's. props is spawned here only if and when this node is
// elected; its first message is a *zkactorv1.Elected with the term's
// fencing epoch. See global.Elections.RegisterCandidate.
func (n *Node) RegisterCandidate(ctx context.Context, name string, props *actor.Props) (*actor.PID, error) {
	return n.globals.RegisterCandidate(ctx, name, props)
}

// WhereisGlobal returns the PID of the global process name, from the
// watch-swept cache; errors.Is(err, global.ErrNotFound) when none runs.
func (n *Node) WhereisGlobal(ctx context.Context, name string) (*actor.PID, error) {
	return n.globals.WhereisGlobal(ctx, name)
}

// Session is the node's ZooKeeper session.
func (n *Node) Session() *cluster.Session { return n.session }

// SpawnNamed spawns props under name on this node and, when name starts
// with Config.RegisterPrefix (every name when the prefix is empty),
// registers the PID under name in ZooKeeper. If the registration fails, the
// actor is stopped and the error returned.
func (n *Node) SpawnNamed(props *actor.Props, name string) (*actor.PID, error) {
	if !strings.HasPrefix(name, n.cfg.RegisterPrefix) {
		return n.system.Root.SpawnNamed(props, name)
	}
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("zkactor: spawn %q: %w", name, err)
	}
	pid, err := n.system.Root.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("zkactor: spawn %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.session.RequestTimeout())
	defer cancel()
	if err := n.registry.Register(ctx, name, pid, nil); err != nil {
		_ = n.system.Root.StopFuture(pid).Wait()
		return nil, err
	}
	return pid, nil
}

// RegisterOption adjusts a registration.
type RegisterOption func(*registerOptions)

type registerOptions struct{ metadata map[string]string }

// WithMetadata attaches free-form metadata to a registration; lookups
// return it (Registry.Lookup). At most cluster.MaxMetadataSize bytes.
func WithMetadata(m map[string]string) RegisterOption {
	return func(o *registerOptions) { o.metadata = m }
}

// Register registers pid under name, cluster-wide, until Unregister, the
// actor's stop, or the node's Stop. Registering the same (name, pid) twice
// is a no-op; many PIDs may share a name and one PID may hold many names.
func (n *Node) Register(ctx context.Context, name string, pid *actor.PID, opts ...RegisterOption) error {
	var o registerOptions
	for _, opt := range opts {
		opt(&o)
	}
	return n.registry.Register(ctx, name, pid, o.metadata)
}

// Unregister removes this node's registration of pid under name.
func (n *Node) Unregister(ctx context.Context, name string, pid *actor.PID) error {
	return n.registry.Unregister(ctx, name, pid)
}

// GetCapable returns every PID registered under name, cluster-wide, from
// the watch-swept cache. The slice is the caller's own.
func (n *Node) GetCapable(ctx context.Context, name string) ([]*actor.PID, error) {
	return n.registry.GetCapable(ctx, name)
}

// NSendCapable sends msg to every PID registered under name.
func (n *Node) NSendCapable(ctx context.Context, name string, msg proto.Message) error {
	pids, err := n.registry.GetCapable(ctx, name)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		n.system.Root.Send(pid, msg)
	}
	return nil
}

// GetPeers returns the actor addresses of all live nodes, this one included.
func (n *Node) GetPeers(ctx context.Context) ([]string, error) {
	return n.registry.GetPeers(ctx)
}

// NSendPeers sends msg to the process named name on every peer, this node
// included (the PID {address, name} on each).
func (n *Node) NSendPeers(ctx context.Context, name string, msg proto.Message) error {
	peers, err := n.registry.GetPeers(ctx)
	if err != nil {
		return err
	}
	for _, addr := range peers {
		n.system.Root.Send(actor.NewPID(addr, name), msg)
	}
	return nil
}

// Stop resigns every candidacy (a running global stops and the next
// candidate elsewhere takes over at once), unregisters everything this
// node registered, closes its ZooKeeper session (its ephemeral znodes go
// at once), and stops the remote and the actor system. It is idempotent;
// later calls return the first's result.
//
// Stop does not need a deadline in ctx to end. When ZooKeeper cannot be
// reached, the registry skips its deletes (or abandons them as soon as the
// connection is lost) and the error wraps cluster.ErrNotConnected: the
// servers remove this node's ephemeral znodes when its session expires,
// one session timeout later.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.stopErr = errors.Join(n.globals.Close(ctx), n.registry.Close(ctx))
		n.session.Close()
		n.stopActors()
	})
	return n.stopErr
}

func (n *Node) stopActors() {
	remotestop.Shutdown(n.remote, true, n.log)
	n.system.Shutdown()
}
