package provider

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
	"github.com/zkactor/zkactor/internal/watchcache"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// IdentityLookup is protoactor's cluster.IdentityLookup on ZooKeeper: each
// identity has at most one activation cluster-wide, recorded in the
// ephemeral znode <root>/activations/<kind>/<identity> that the hosting
// member creates (see the package documentation). Get a lookup from
// Provider.IdentityLookup; it shares the provider's session.
type IdentityLookup struct {
	p      *Provider
	s      *cluster.Session
	layout cluster.Layout
	log    *slog.Logger
	cache  *watchcache.Cache[lookupEntry] // by "<kind>/<identity>"
	topo   atomic.Pointer[topology]

	life    context.Context // ends with Shutdown: work in flight gives up
	endLife context.CancelFunc
	work    sync.WaitGroup // goroutines doing ZooKeeper work for the activator

	stopEvents func()

	mu           sync.Mutex
	cluster      *pcluster.Cluster
	system       *actor.ActorSystem
	memberID     string
	sub          *eventstream.Subscription
	stopSess     func()
	releaseLease func()
	leases       *leaseWatch
	activator    *actor.PID
	act          *activator
	setUp        bool
	closed       bool
}

// lookupEntry is what the cache holds for one identity: its activation,
// or none (nil).
type lookupEntry struct{ a *Activation }

// topology is the members by kind, from protoactor's ClusterTopology events.
type topology struct{ byKind map[string][]*pcluster.Member }

func newLookup(p *Provider) *IdentityLookup {
	l := &IdentityLookup{p: p, s: p.s, layout: p.layout, log: p.log}
	l.life, l.endLife = context.WithCancel(context.Background())
	prefix := ActivationsPath(l.layout) + "/"
	l.cache = watchcache.New(l.load, watchcache.Options[lookupEntry]{
		PathKey: func(path string) (string, bool) {
			key, ok := strings.CutPrefix(path, prefix)
			return key, ok && strings.Count(key, "/") == 1
		},
		Absent: func(e *lookupEntry) bool { return e.a == nil },
	})
	l.stopEvents = l.s.OnWatchEvent(l.cache.Event)
	l.topo.Store(&topology{})
	return l
}

// ActivationsPath is the parent of the per-kind containers of activations.
func ActivationsPath(l cluster.Layout) string { return l.Root + "/activations" }

// ActivationPath is the ephemeral znode of the activation of identity.
func ActivationPath(l cluster.Layout, kind, identity string) string {
	return ActivationsPath(l) + "/" + kind + "/" + identity
}

// Setup is called by protoactor's cluster as it starts (before the
// provider's StartMember or StartClient). A member starts its activator,
// which activates the kinds it hosts; a client only looks up.
func (l *IdentityLookup) Setup(c *pcluster.Cluster, kinds []string, isClient bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.setUp || l.closed {
		return
	}
	l.setUp = true
	l.cluster, l.system, l.memberID = c, c.ActorSystem, c.ActorSystem.ID
	l.sub = c.ActorSystem.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pcluster.ClusterTopology); ok {
			l.topo.Store(newTopology(t.Members))
		}
	})
	l.stopSess = l.s.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired || ev.NewSession {
			l.cache.Sweep()
		}
	})
	if isClient {
		return
	}
	l.releaseLease = l.s.HoldLease()
	l.leases = newLeaseWatch(l.s, c.ActorSystem, l.log)
	l.act = newActivator(l, kinds)
	pid, err := c.ActorSystem.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return l.act }), ActivatorName)
	if err != nil {
		l.log.Error("starting the activator", "err", err)
		return
	}
	l.activator = pid
}

func newTopology(members []*pcluster.Member) *topology {
	t := &topology{byKind: map[string][]*pcluster.Member{}}
	for _, m := range members {
		for _, k := range m.Kinds {
			t.byKind[k] = append(t.byKind[k], m)
		}
	}
	return t
}

// Get returns the PID of identity's activation, activating it on a member
// that hosts its kind if there is none. A repeated lookup is a read of
// memory. It returns nil when there is no activation and none could be
// made (the reason is logged; protoactor's Request then retries):
// Activation returns the error itself.
func (l *IdentityLookup) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	if e, ok := l.cache.Peek(ci.Kind + "/" + ci.Identity); ok && e.a != nil { // the hit path
		return e.a.PID
	}
	ctx, cancel := context.WithTimeout(l.life, l.p.cfg.ActivationTimeout)
	defer cancel()
	a, err := l.Activation(ctx, ci.Identity, ci.Kind)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, cluster.ErrBadName) {
			level = slog.LevelError
		}
		l.log.Log(ctx, level, "identity lookup", "kind", ci.Kind, "identity", ci.Identity, "err", err)
		return nil
	}
	return a.PID
}

// Activation is Get with the whole answer and an error: where identity's
// activation runs and its epoch, activating it if there is none. Bad kind
// or identity names are an error wrapping cluster.ErrBadName; no member
// with the kind, ErrNoMember; a member that could not activate,
// ErrActivationFailed.
func (l *IdentityLookup) Activation(ctx context.Context, identity, kind string) (Activation, error) {
	key := kind + "/" + identity
	if e, ok := l.cache.Peek(key); ok && e.a != nil {
		return *e.a, nil
	}
	fail := func(err error) (Activation, error) {
		return Activation{}, fmt.Errorf("zkactor provider: activation of %s %q: %w", kind, identity, err)
	}
	if err := cluster.ValidateName(kind); err != nil {
		return fail(fmt.Errorf("kind: %w", err))
	}
	if err := cluster.ValidateName(identity); err != nil {
		return fail(fmt.Errorf("identity: %w", err))
	}
	l.mu.Lock()
	closed, system := l.closed, l.system
	l.mu.Unlock()
	if closed {
		return fail(ErrShutdown)
	}
	if system == nil {
		return fail(errors.New("the identity lookup is not set up (start the protoactor cluster first)"))
	}
	e, err := l.cache.Get(ctx, key)
	if err != nil {
		return fail(err)
	}
	if e.a != nil {
		return *e.a, nil
	}
	m := l.pick(kind, identity)
	if m == nil {
		return fail(ErrNoMember)
	}
	timeout := l.p.cfg.ActivationTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return fail(context.DeadlineExceeded)
	}
	target := actor.NewPID(m.Address(), ActivatorName)
	res, err := system.Root.RequestFuture(target, &pb.ActivateRequest{Kind: kind, Identity: identity}, timeout).Result()
	if err != nil {
		return fail(fmt.Errorf("%w: member %s (%s): %w", ErrActivationFailed, m.Id, m.Address(), err))
	}
	r, ok := res.(*pb.ActivateResponse)
	switch {
	case !ok:
		return fail(fmt.Errorf("%w: member %s answered %T", ErrActivationFailed, m.Id, res))
	case r.Error != "" || r.Pid == nil:
		return fail(fmt.Errorf("%w: member %s: %s", ErrActivationFailed, m.Id, r.Error))
	}
	return Activation{
		Kind: kind, Identity: identity,
		PID:      actor.NewPID(r.Pid.Address, r.Pid.Id),
		MemberID: r.MemberId, Epoch: r.Epoch,
		Path: ActivationPath(l.layout, kind, identity),
	}, nil
}

// pick chooses the member that activates identity: rendezvous hashing over
// the members with its kind, so that every member asks the same one (the
// znode settles a race anyway).
func (l *IdentityLookup) pick(kind, identity string) *pcluster.Member {
	var (
		best  *pcluster.Member
		score uint64
	)
	for _, m := range l.topo.Load().byKind[kind] {
		h := fnv.New64a()
		h.Write([]byte(m.Id))
		h.Write([]byte{0})
		h.Write([]byte(kind))
		h.Write([]byte{'/'})
		h.Write([]byte(identity))
		if s := mix64(h.Sum64()); best == nil || s > score {
			best, score = m, s
		}
	}
	return best
}

// mix64 is MurmurHash3's finalizer. FNV alone scores keys that share a
// long suffix almost alike for a given member, so without it one member
// would win nearly every identity of a kind.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// RemovePid drops pid from the cache if it is identity's cached
// activation, so that the next Get reads ZooKeeper again.
func (l *IdentityLookup) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	key := ci.Kind + "/" + ci.Identity
	if e, ok := l.cache.Peek(key); ok && e.a != nil && e.a.PID.Equal(pid) {
		l.cache.Evict(key)
	}
}

// load reads one identity's znode with a watch: its data and creation
// zxid if it exists, else a watch on its creation. The two reads go out
// together (one round trip): a get with a watch, which fails on a missing
// znode without leaving one, and an exists with a watch, which covers that
// case. The watch's event reaches the cache through the session
// (OnWatchEvent).
func (l *IdentityLookup) load(ctx context.Context, key string, _ *lookupEntry) (*lookupEntry, error) {
	path := ActivationsPath(l.layout) + "/" + key
	for {
		var (
			data    []byte
			stat    *zk.Stat
			exists  bool
			getErr  error
			wg      sync.WaitGroup
			existed = make(chan error, 1)
		)
		err := l.s.Do(ctx, cluster.Op{Name: "get", Path: path, Idempotent: true}, func(c *zk.Conn) error {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				exists, _, _, err = c.ExistsW(path)
				existed <- err
			}()
			data, stat, _, getErr = c.GetW(path)
			wg.Wait()
			if errors.Is(getErr, zk.ErrNoNode) {
				return <-existed
			}
			<-existed
			return getErr
		})
		switch {
		case err != nil:
			return nil, err
		case getErr == nil:
		case exists:
			continue // created between the get and the exists: read it
		default:
			return &lookupEntry{}, nil
		}
		rec, err := records.Activation(data)
		if err != nil {
			l.log.Warn("an activation znode holds data zkactor cannot read (foreign or corrupt): no activation", "path", path, "err", err)
			return &lookupEntry{}, nil
		}
		return &lookupEntry{a: &Activation{
			Kind: rec.Kind, Identity: rec.Identity,
			PID:      actor.NewPID(rec.Pid.Address, rec.Pid.Id),
			MemberID: rec.MemberId, Epoch: stat.Czxid, Path: path,
		}}, nil
	}
}

// Shutdown stops this member's activations (each before its znode goes),
// the activator and the cache. The provider's Shutdown calls it too; it is
// idempotent.
func (l *IdentityLookup) Shutdown() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	act, pid, system := l.act, l.activator, l.system
	l.mu.Unlock()
	if act != nil {
		act.closing.Store(true)
	}
	if pid != nil {
		// Stopping the activator stops every activation first (they are its
		// children) and returns once all have stopped.
		_ = system.Root.StopFuture(pid).Wait()
	}
	l.mu.Lock()
	l.endLife() // under mu: goWork adds no goroutine after this
	l.mu.Unlock()
	l.work.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases != nil {
		l.leases.close()
	}
	if l.releaseLease != nil {
		l.releaseLease()
	}
	if l.stopSess != nil {
		l.stopSess()
	}
	if l.sub != nil {
		l.system.EventStream.Unsubscribe(l.sub)
	}
	l.stopEvents()
	l.cache.Close()
}

// stopActivations stops every activation now, without waiting: the member
// died. It does not block.
func (l *IdentityLookup) stopActivations(why string) {
	l.mu.Lock()
	leases, act := l.leases, l.act
	l.mu.Unlock()
	if act != nil {
		act.closing.Store(true)
	}
	if leases != nil {
		leases.stopAll(why)
	}
}

// waitActivations waits until no activation runs (after stopActivations)
// or until deadline, and reports whether none runs.
func (l *IdentityLookup) waitActivations(deadline time.Time) bool {
	l.mu.Lock()
	leases := l.leases
	l.mu.Unlock()
	if leases == nil {
		return true
	}
	return leases.waitIdle(deadline)
}

// goWork runs fn on a goroutine the lookup owns (Shutdown waits for it).
func (l *IdentityLookup) goWork(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.life.Err() != nil {
		return false
	}
	l.work.Add(1)
	go func() {
		defer l.work.Done()
		fn()
	}()
	return true
}
