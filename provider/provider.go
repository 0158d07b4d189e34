package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/zkutil"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// Provider is protoactor-go's cluster.ClusterProvider on zkactor's
// membership. One Provider serves one incarnation of one member (or
// client): it owns a ZooKeeper session from New to Shutdown, and dies with
// it (see the package documentation). Pass it and its IdentityLookup to
// protoactor's cluster.Configure.
type Provider struct {
	cfg    Config
	log    *slog.Logger
	layout cluster.Layout
	s      *cluster.Session
	lookup *IdentityLookup

	mu         sync.Mutex
	started    bool
	member     bool
	c          *pcluster.Cluster
	reg        *cluster.Registry // the singletons' (see singletons)
	elections  *global.Elections
	watcher    *memberWatcher
	stopNotify func()
	session    int64 // a member's: the session it joined on, and dies with
	selfSeen   bool
	closing    bool
	dead       chan struct{}
	deathErr   error
	wg         sync.WaitGroup // the death's cleanup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New opens the provider's ZooKeeper session, within ctx.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cluster.ValidateRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("zkactor provider: %w", err)
	}
	s, err := cluster.Dial(ctx, cluster.Config{
		Servers:        cfg.Servers,
		SessionTimeout: cfg.SessionTimeout,
		RequestTimeout: cfg.RequestTimeout,
		Auth:           cfg.Auth,
		Logger:         cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("zkactor provider: %w", err)
	}
	p := &Provider{
		cfg:    cfg,
		log:    cfg.Logger.With("lib", "zkactor-provider"),
		layout: cluster.Layout{Root: cfg.Root},
		s:      s,
		dead:   make(chan struct{}),
	}
	p.lookup = newLookup(p)
	return p, nil
}

// IdentityLookup is the provider's identity lookup: activations recorded
// in ZooKeeper, one per identity cluster-wide. It shares the provider's
// session; use it with this provider only.
func (p *Provider) IdentityLookup() *IdentityLookup { return p.lookup }

// Session is the provider's ZooKeeper session.
func (p *Provider) Session() *cluster.Session { return p.s }

// Layout names the cluster's znodes.
func (p *Provider) Layout() cluster.Layout { return p.layout }

// StartMember joins the cluster: it creates this member's znode
// <root>/nodes/<ActorSystem id> with its address and kinds, and feeds
// protoactor's member list from the watched <root>/nodes, this member
// included. protoactor calls it after it started the remote. The znode
// lives as long as the session and is never re-created: a member whose
// znode is gone is dead (see the package documentation).
func (p *Provider) StartMember(c *pcluster.Cluster) error {
	if err := p.begin(c, true); err != nil {
		return err
	}
	kinds := c.GetClusterKinds()
	slices.Sort(kinds)
	// The member is its first session: it dies with it, also while
	// joining, so it listens before it joins.
	p.mu.Lock()
	p.session = p.s.ID()
	p.stopNotify = p.s.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired {
			p.die("its ZooKeeper session expired")
		}
	})
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
	defer cancel()
	if err := p.join(ctx, p.session, c.ActorSystem.ID, c.ActorSystem.Address(), kinds); err != nil {
		if errors.Is(err, errSessionChanged) {
			p.die("its ZooKeeper session ended while it joined")
		}
		if dead := p.Err(); dead != nil {
			err = fmt.Errorf("%w (the join: %w)", dead, err)
		}
		return fmt.Errorf("zkactor provider: start member %s: %w", c.ActorSystem.ID, err)
	}
	p.log.Info("joined the cluster as a member", "member", c.ActorSystem.ID, "address", c.ActorSystem.Address(), "kinds", kinds)
	p.watch()
	return nil
}

// errSessionChanged: the join met a session other than the member's first.
var errSessionChanged = errors.New("the ZooKeeper session changed during the join")

// join creates the member's znode on session, the member's first, and on
// no other: a create retried after a lost reply finds its own znode; one
// of another session is ErrNodeIDTaken. Once the client has another
// session (the first expired), the join fails with errSessionChanged, and
// a znode that a create sent meanwhile made on the new session is deleted:
// the id may be blocked already.
func (p *Provider) join(ctx context.Context, session int64, id, address string, kinds []string) error {
	if err := cluster.ValidateName(id); err != nil {
		return fmt.Errorf("member id: %w", err)
	}
	data, err := proto.Marshal(&pb.Node{Id: id, Address: address, StartedAt: timestamppb.Now(), Kinds: kinds})
	if err != nil {
		return err
	}
	path := p.layout.NodePath(id)
	return p.s.Do(ctx, cluster.Op{Name: "create", Path: path, Idempotent: true}, func(c *zk.Conn) error {
		if session == 0 || c.SessionID() == session {
			_, err := zkutil.CreateWithParents(c, p.layout.Root, path, data, zk.FlagEphemeral, p.s.ACL())
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
		}
		// Whose is it? (The create's reply does not say, and the request
		// may have gone out on a session that replaced the first.)
		got, stat, err := c.Get(path)
		now := c.SessionID()
		if session == 0 {
			session = now
		}
		switch {
		case errors.Is(err, zk.ErrNoNode) && now != session:
			return errSessionChanged
		case err != nil:
			return err
		case stat.EphemeralOwner == session && bytes.Equal(got, data):
			if now != session {
				// Made on the first session, which ended: it goes with it.
				return errSessionChanged
			}
			return nil
		case stat.EphemeralOwner != session && stat.EphemeralOwner == now && bytes.Equal(got, data):
			// Ours, on a session the member is not: never a member znode.
			if err := zkutil.Delete(c, path, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			return errSessionChanged
		case now != session:
			return errSessionChanged
		}
		return fmt.Errorf("%w: another ZooKeeper session holds %s (owner %#x)", cluster.ErrNodeIDTaken, path, stat.EphemeralOwner)
	})
}

// StartClient watches the members without joining: protoactor's member
// list is fed as for a member, and nothing of this process is published.
func (p *Provider) StartClient(c *pcluster.Cluster) error {
	if err := p.begin(c, false); err != nil {
		return err
	}
	p.watch()
	return nil
}

func (p *Provider) begin(c *pcluster.Cluster, member bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closing:
		return ErrShutdown
	case p.started:
		return ErrStarted
	}
	p.started, p.member, p.c = true, member, c
	return nil
}

func (p *Provider) watch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watcher = newMemberWatcher(p.s, p.layout.NodesPath(), p.log, p.onMembers)
	p.watcher.start()
}

// onMembers is the watcher's report: the full member list.
func (p *Provider) onMembers(members []*pcluster.Member, present map[string]bool) {
	p.mu.Lock()
	c, self := p.c, p.c.ActorSystem.ID
	gone := false
	if p.member {
		if present[self] {
			p.selfSeen = true
		} else if p.selfSeen && !p.closing {
			gone = true
		}
	}
	stop := p.closing || p.deathErr != nil
	p.mu.Unlock()
	if gone {
		p.die("its member znode was deleted by someone else")
		return
	}
	if stop {
		return
	}
	c.MemberList.UpdateClusterTopology(members)
}

// die ends this incarnation: its session ended or its znode is gone, so
// ZooKeeper may already have handed its activations to other members (or
// will, once the session closes), and protoactor's other members have
// blocked its id for good. It never blocks (it runs on the session's event
// goroutine): the rest happens on a goroutine of its own, which Shutdown
// waits for.
//
// The activations are stopped, and the session is closed only once they
// have (or once the lease they ran under, as it stood at the death, ran
// out: past it every one of them has been stopped by its guard or the
// lease watch), so that no activation znode goes while its grain still
// runs. The singleton candidacies resign before the session closes too.
// A session that has expired already is closed at once: its lease ended
// before, so its grains and singletons have stopped, and the singletons'
// registry would re-create its node on the client's next session.
func (p *Provider) die(why string) {
	p.mu.Lock()
	if p.deathErr != nil || p.closing {
		p.mu.Unlock()
		return
	}
	p.deathErr = fmt.Errorf("%w: %s", ErrDead, why)
	close(p.dead)
	elections, session := p.elections, p.session
	p.wg.Add(1)
	p.mu.Unlock()
	p.log.Warn("the member is dead: "+why+"; it must come back as a new member (a new actor system)", "member", p.c.ActorSystem.ID)
	until := p.s.SafeUntilFor(session)
	p.lookup.stopActivations("the member is dead")
	go func() {
		defer p.wg.Done()
		closeElections := func(ctx context.Context) {
			if elections == nil {
				return
			}
			if err := elections.Close(ctx); err != nil {
				p.log.Warn("closing the dead member's singleton candidacies", "err", err)
			}
		}
		if time.Now().Before(until) {
			// The session lives: the grains stop first, each before its
			// znode goes, then the singletons step down.
			if !p.lookup.waitActivations(until) {
				p.log.Warn("the dead member's activations did not all stop within their lease; closing its session anyway")
			}
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
			closeElections(ctx)
			cancel()
		}
		// Then the session closes, before anything re-creates this
		// member's znodes on a new one: the id is blocked everywhere now.
		p.s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
		closeElections(ctx) // if not done above: nothing is left to delete
		cancel()
	}()
}

// Dead is closed when the member dies: its session expired, or its znode
// was deleted by someone else. It is never closed by Shutdown. Supervise
// waits on it to start the next incarnation.
func (p *Provider) Dead() <-chan struct{} { return p.dead }

// Err is nil while the member lives, and wraps ErrDead once it has died.
func (p *Provider) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deathErr
}

// Shutdown leaves the cluster: this member's activations stop first, then
// its singleton candidacies resign, and the session closes, which removes
// its member znode and every activation znode at once, in one request. Both modes do the
// same and neither sleeps; graceful only matters to protoactor, which
// calls Shutdown only then. It is idempotent.
func (p *Provider) Shutdown(graceful bool) error {
	p.shutdownOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		reg, elections, watcher, stopNotify := p.reg, p.elections, p.watcher, p.stopNotify
		p.mu.Unlock()
		var errs []error
		// Activations end before their znodes can go.
		p.lookup.Shutdown()
		// A death's cleanup (if the member died) ends first: it closes the
		// elections and the session in that order, and would not wait for
		// a Close begun here.
		p.wg.Wait()
		if elections != nil {
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
			errs = append(errs, elections.Close(ctx))
			cancel()
		}
		if watcher != nil {
			watcher.stop()
		}
		if stopNotify != nil {
			stopNotify()
		}
		p.wg.Wait() // a death during the above
		if reg != nil {
			// The singletons' registry (its node znode goes first).
			if err := reg.Close(context.Background()); err != nil && !errors.Is(err, cluster.ErrNotConnected) && !errors.Is(err, cluster.ErrClosed) {
				errs = append(errs, err)
			}
		}
		// The member's znode and its activations' go with the session, at
		// once: one request.
		p.s.Close()
		if err := errors.Join(errs...); err != nil {
			p.shutdownErr = fmt.Errorf("zkactor provider: shutdown: %w", err)
		}
		p.log.Debug("left the cluster", "graceful", graceful)
	})
	return p.shutdownErr
}
