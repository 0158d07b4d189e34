package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/internal/metrics"
	"github.com/zkactor/zkactor/internal/pidwatch"
	"github.com/zkactor/zkactor/internal/records"
	"github.com/zkactor/zkactor/internal/watchcache"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// MaxMetadataSize bounds the metadata of one registration, in bytes of
// keys and values. ZooKeeper refuses znodes near 1 MiB by dropping the
// connection; registrations stay far below that.
const MaxMetadataSize = 64 << 10

// Options configures a Registry.
type Options struct {
	// Root is the znode root of the cluster (default "/zkactor").
	Root string
	// NodeID names this node's znode; default: a random id.
	NodeID string
	// Logger defaults to the session's.
	Logger *slog.Logger
	// CacheIdleAfter is how long the lookup cache keeps a service no lookup
	// used; 0 means two minutes.
	CacheIdleAfter time.Duration
}

// Registry is a node's view of the cluster: it keeps this node's znode
// under <root>/nodes, the registrations this node made under
// <root>/services, and a watch-swept cache of what it looked up. It works
// with any protoactor ActorSystem; the system's remote should be started
// before New, so that PIDs carry a reachable address.
type Registry struct {
	s      *Session
	layout Layout
	log    *slog.Logger
	system *actor.ActorSystem
	node   *pb.Node

	keeper     *keeper
	services   *watchcache.Cache[serviceEntry] // by service name
	nodes      *watchcache.Cache[peersEntry]   // one key, "nodes"
	watcher    *pidwatch.Watcher
	stopSess   func()
	stopEvents func()

	mu     sync.Mutex
	byPID  map[pidKey]map[string]*registration // PID → name → registration
	closed bool
}

type pidKey struct{ address, id string }

func keyOf(pid *actor.PID) pidKey { return pidKey{pid.Address, pid.Id} }

// registration is one (name, PID) this node keeps in ZooKeeper.
type registration struct {
	path string
	meta map[string]string
	data []byte
}

// serviceEntry is what the cache holds for one service name.
type serviceEntry struct {
	dir  *dirState // what it was built from: the next load's base
	regs []*pb.Registration
	pids []*actor.PID
}

// NewRegistry starts a Registry on session s for system: it creates this node's
// znode and returns once ZooKeeper has it.
func NewRegistry(ctx context.Context, system *actor.ActorSystem, s *Session, opts Options) (*Registry, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if err := validateRoot(opts.Root); err != nil {
		return nil, err
	}
	if opts.NodeID == "" {
		opts.NodeID = newID()
	} else if err := ValidateName(opts.NodeID); err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	keeper, err := newKeeper(s, opts.Root)
	if err != nil {
		return nil, fmt.Errorf("zkactor: join cluster %s: %w", opts.Root, err)
	}
	r := &Registry{
		keeper: keeper,
		s:      s,
		layout: Layout{Root: opts.Root},
		log:    opts.Logger.With("node", opts.NodeID),
		system: system,
		node:   &pb.Node{Id: opts.NodeID, Address: system.Address(), StartedAt: timestamppb.Now()},
		byPID:  map[pidKey]map[string]*registration{},
	}
	r.services = watchcache.New(dirLoader(s, r.layout.ServicePath, r.buildService, func(e *serviceEntry) *dirState { return e.dir }),
		watchcache.Options[serviceEntry]{
			PathKey: func(path string) (string, bool) {
				name, ok := strings.CutPrefix(path, r.layout.ServicesPath()+"/")
				return name, ok && !strings.Contains(name, "/")
			},
			Absent:    func(e *serviceEntry) bool { return len(e.dir.children) == 0 },
			IdleAfter: opts.CacheIdleAfter,
			Metrics:   metrics.ServicesCache,
		})
	r.nodes = watchcache.New(dirLoader(s, func(string) string { return r.layout.NodesPath() }, r.buildPeers, func(e *peersEntry) *dirState { return e.dir }),
		watchcache.Options[peersEntry]{
			PathKey: func(path string) (string, bool) { return "nodes", path == r.layout.NodesPath() },
			Metrics: metrics.NodesCache,
		})
	r.stopEvents = s.OnWatchEvent(func(ev zk.Event) {
		r.services.Event(ev)
		r.nodes.Event(ev)
	})
	// Watches end with an expired session; the cache sweeps itself through
	// them, and this catches anything read while the expiry was under way.
	r.stopSess = s.Notify(func(ev Event) {
		if ev.Kind == Expired || ev.NewSession {
			r.services.Sweep()
			r.nodes.Sweep()
		}
	})
	r.watcher = pidwatch.Start(system, r.terminated) // drops what a stopped actor registered

	data, err := proto.Marshal(r.node)
	if err == nil {
		err = r.keeper.keep(ctx, r.layout.NodePath(opts.NodeID), data)
	}
	if errors.Is(err, ErrOwnedElsewhere) {
		r.shutdown()
		return nil, fmt.Errorf("zkactor: join cluster %s as node %s: %w: another live ZooKeeper session holds %s (a second process with this id, or a previous run whose session has not expired yet): %w",
			opts.Root, opts.NodeID, ErrNodeIDTaken, r.layout.NodePath(opts.NodeID), err)
	}
	if err != nil {
		r.shutdown()
		return nil, fmt.Errorf("zkactor: join cluster %s as node %s: %w", opts.Root, opts.NodeID, err)
	}
	r.log.Debug("joined cluster", "root", opts.Root, "address", r.node.Address)
	return r, nil
}

// NodeID is this node's id, the name of its znode under <root>/nodes.
func (r *Registry) NodeID() string { return r.node.Id }

// Layout names the znodes of this registry's cluster.
func (r *Registry) Layout() Layout { return r.layout }

// Session is the ZooKeeper session the registry borrows.
func (r *Registry) Session() *Session { return r.s }

// Register registers pid under name, with optional metadata, and returns
// once ZooKeeper has the registration. Registering the same (name, pid)
// again is a no-op (or replaces the metadata). The registration lasts until
// Unregister, until the actor stops (the registry watches it), until Close,
// or until this process's session ends for good; it survives session
// expiry, being re-created on the new session.
func (r *Registry) Register(ctx context.Context, name string, pid *actor.PID, metadata map[string]string) error {
	if err := r.checkArgs(name, pid); err != nil {
		return fmt.Errorf("zkactor: register %q: %w", name, err)
	}
	size := 0
	for k, v := range metadata {
		size += len(k) + len(v)
	}
	if size > MaxMetadataSize {
		return fmt.Errorf("zkactor: register %q: metadata of %d bytes: %w (at most %d)", name, size, ErrTooLarge, MaxMetadataSize)
	}
	key := keyOf(pid)
	path := r.layout.RegistrationPath(name, r.registrationID(pid))

	// Everything about one (name, PID) happens under its path's lock: the
	// table update, the create, and the check that nobody undid it
	// meanwhile. Two Registers of one (name, PID) therefore run one after
	// the other, and the second's data is what ZooKeeper keeps.
	unlock := r.keeper.lock(path)
	defer unlock()

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("zkactor: register %q: %w", name, ErrClosed)
	}
	names := r.byPID[key]
	reg := names[name]
	// Registered already, with this metadata: the cache's entry stays
	// good (a znode re-created meanwhile fires the watch anyway), and
	// evicting it would make every such call cost the next lookup a read.
	unchanged := reg != nil && maps.Equal(reg.meta, metadata)
	if !unchanged {
		rec := &pb.Registration{
			Name:         name,
			Pid:          &pb.PID{Address: pid.Address, Id: pid.Id},
			NodeId:       r.node.Id,
			NodeAddress:  r.node.Address,
			Metadata:     maps.Clone(metadata),
			RegisteredAt: timestamppb.Now(),
		}
		data, err := proto.Marshal(rec)
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("zkactor: register %q: %w", name, err)
		}
		reg = &registration{path: path, meta: rec.Metadata, data: data}
	}
	if names == nil {
		// The PID's first name: watch it from now on, whichever of its
		// registrations succeeds. forgetLocked unwatches with the last name.
		names = map[string]*registration{}
		r.byPID[key] = names
		r.watcher.Watch(pid)
	}
	names[name] = reg
	r.mu.Unlock()

	err := r.keeper.keepLocked(ctx, path, reg.data)
	metrics.Registration(err)

	r.mu.Lock()
	current := r.byPID[key][name] == reg
	if err != nil && current {
		r.forgetLocked(key, name)
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("zkactor: register %q: %w", name, err)
	}
	if !current {
		// Unregistered, or the actor stopped, while the create was on the
		// wire: whoever removed it may have deleted before we created.
		// Under the path lock, so a later Register of it is not undone.
		r.keeper.dropLater(path)
	}
	if !unchanged {
		r.services.Evict(name)
	}
	return nil
}

// Unregister removes the registration of pid under name, if this node made
// one. If ZooKeeper cannot be reached within ctx it returns an error and
// deletes the znode in the background as soon as it can.
func (r *Registry) Unregister(ctx context.Context, name string, pid *actor.PID) error {
	if err := r.checkArgs(name, pid); err != nil {
		return fmt.Errorf("zkactor: unregister %q: %w", name, err)
	}
	// Under the path's lock, like Register: a Register that starts after
	// this Unregister is not undone by its delete.
	path := r.layout.RegistrationPath(name, r.registrationID(pid))
	unlock := r.keeper.lock(path)
	defer unlock()
	r.mu.Lock()
	reg := r.forgetLocked(keyOf(pid), name)
	r.mu.Unlock()
	if reg == nil {
		return nil
	}
	err := r.keeper.dropLocked(ctx, path)
	metrics.Unregistration(err)
	r.services.Evict(name)
	if err != nil {
		return fmt.Errorf("zkactor: unregister %q: %w", name, err)
	}
	return nil
}

// forgetLocked removes (key, name) from the local table and stops watching
// the PID when it was its last name.
func (r *Registry) forgetLocked(key pidKey, name string) *registration {
	names := r.byPID[key]
	reg := names[name]
	if reg == nil {
		return nil
	}
	delete(names, name)
	if len(names) == 0 {
		delete(r.byPID, key)
		r.watcher.Unwatch(actor.NewPID(key.address, key.id))
	}
	return reg
}

// GetCapable returns every PID registered under name, cluster-wide, in a
// stable order. It is served from the cache: only the first lookup after
// a change reads ZooKeeper. The slice is the caller's; the PIDs in it are
// shared and must not be modified.
func (r *Registry) GetCapable(ctx context.Context, name string) ([]*actor.PID, error) {
	e, err := r.service(ctx, name)
	if err != nil {
		return nil, err
	}
	return append([]*actor.PID(nil), e.pids...), nil
}

// Lookup returns the full registration records under name (PID, node,
// metadata, time), from the same cache as GetCapable. The records are
// shared and must not be modified.
func (r *Registry) Lookup(ctx context.Context, name string) ([]*pb.Registration, error) {
	e, err := r.service(ctx, name)
	if err != nil {
		return nil, err
	}
	return append([]*pb.Registration(nil), e.regs...), nil
}

func (r *Registry) service(ctx context.Context, name string) (*serviceEntry, error) {
	if e, ok := r.services.Peek(name); ok { // the hit path: a map read
		return e, nil
	}
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("zkactor: lookup %q: %w", name, err)
	}
	e, err := r.services.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("zkactor: lookup %q: %w", name, err)
	}
	return e, nil
}

func (r *Registry) buildService(dir string, st *dirState) *serviceEntry {
	e := &serviceEntry{dir: st}
	for i := range st.children {
		c := &st.children[i]
		rec, _ := c.rec.(*pb.Registration) // decoded by an earlier load
		if rec == nil {
			var err error
			if rec, err = records.Registration(c.data); err != nil {
				r.log.Warn("skipping a registration zkactor cannot read (foreign or corrupt data)",
					"path", dir+"/"+c.name, "bytes", len(c.data), "err", err)
				continue
			}
			c.rec = rec
		}
		e.regs = append(e.regs, rec)
		e.pids = append(e.pids, actor.NewPID(rec.Pid.Address, rec.Pid.Id))
	}
	return e
}

// registrationID names the znode of (this node, pid): fixed, so that a
// create retried after a lost connection finds its own znode instead of
// making a second one.
func (r *Registry) registrationID(pid *actor.PID) string {
	sum := sha256.Sum256([]byte(pid.Address + "\x00" + pid.Id))
	return r.node.Id + "-" + hex.EncodeToString(sum[:8])
}

func (r *Registry) checkArgs(name string, pid *actor.PID) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if pid == nil || pid.Id == "" {
		return errors.New("nil or empty PID")
	}
	return nil
}

// Close removes every registration and this node's znode, and stops the
// registry's watches and actor. It does not close the session.
//
// Close is bounded even with a ctx that has no deadline: the deletes are
// sent together and abandoned as soon as the session is disconnected (or
// at once if it is not connected when Close starts). A znode left behind
// then goes when the session ends: at once when the caller closes the
// session and ZooKeeper hears of it, else when the servers expire it. In
// that case Close returns an error wrapping ErrNotConnected, after
// stopping everything.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var paths []string
	for _, names := range r.byPID {
		for _, reg := range names {
			paths = append(paths, reg.path)
		}
	}
	r.byPID = map[pidKey]map[string]*registration{}
	r.mu.Unlock()
	paths = append(paths, r.layout.NodePath(r.node.Id))

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := r.s.Notify(func(ev Event) {
		if ev.Kind == Disconnected || ev.Kind == Expired {
			cancel(fmt.Errorf("%w: the connection was lost during Close", ErrNotConnected))
		}
	})
	if !r.s.Connected() {
		cancel(fmt.Errorf("%w: not connected when Close began", ErrNotConnected))
	}
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.keeper.drop(ctx, p)
		}()
	}
	wg.Wait()
	stop()
	r.shutdown()
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrNotConnected) {
		// Whatever each delete saw when the connection went, the reason is one.
		return fmt.Errorf("zkactor: close registry: %d znodes left to the session's end: %w", countErrs(errs), cause)
	}
	return fmt.Errorf("zkactor: close registry (the session's end removes what is left): %w", err)
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

func (r *Registry) shutdown() {
	r.stopSess()
	r.stopEvents()
	r.watcher.Stop()
	r.keeper.close()
	r.services.Close()
	r.nodes.Close()
}

func (r *Registry) terminated(pid *actor.PID) {
	key := keyOf(pid)
	r.mu.Lock()
	names := r.byPID[key]
	delete(r.byPID, key)
	r.mu.Unlock()
	for name, reg := range names {
		r.log.Debug("actor stopped: removing its registration", "name", name, "pid", pid.String())
		r.keeper.dropLater(reg.path)
		r.services.Evict(name)
	}
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
}
