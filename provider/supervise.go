package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/zkactor/zkactor/internal/remotestop"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// Supervisor runs a protoactor cluster member on zkactor and brings it
// back as a new member whenever it dies (see Provider.Dead): protoactor
// blocks the id of a member that left for good, and an ActorSystem's id
// never changes, so the member comes back as a new ActorSystem, with a new
// id, on the same host and port.
type Supervisor struct {
	cfg   Config
	build func(p *Provider) (*pcluster.Cluster, error)
	log   *slog.Logger

	mu          sync.Mutex
	c           *pcluster.Cluster
	p           *Provider
	incarnation int
	changed     chan struct{}

	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// restartBackoff bounds the pause between failed attempts to start the
// next incarnation (ZooKeeper unreachable, the port still taken).
const (
	minRestartBackoff = 100 * time.Millisecond
	maxRestartBackoff = 5 * time.Second
)

// Supervise starts a member and keeps one running until Shutdown. build is
// called with a new Provider for every incarnation and must return a new
// protoactor cluster (on a new ActorSystem) configured with that provider
// and its IdentityLookup, not yet started; Supervise starts it as a member
// (protoactor's StartMember). The first incarnation is started within ctx.
func Supervise(ctx context.Context, cfg Config, build func(p *Provider) (*pcluster.Cluster, error)) (*Supervisor, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg: cfg, build: build, log: cfg.Logger.With("lib", "zkactor-provider"),
		changed: make(chan struct{}),
		quit:    make(chan struct{}), done: make(chan struct{}),
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

// Cluster is the current incarnation's cluster.
func (s *Supervisor) Cluster() *pcluster.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// Provider is the current incarnation's provider.
func (s *Supervisor) Provider() *Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Incarnation counts the incarnations started, the first being 1.
func (s *Supervisor) Incarnation() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.incarnation
}

// Changed is closed when the next incarnation has started.
func (s *Supervisor) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// start starts one incarnation.
func (s *Supervisor) start(ctx context.Context) error {
	p, err := New(ctx, s.cfg)
	if err != nil {
		return err
	}
	c, err := s.build(p)
	if err == nil && c == nil {
		err = errors.New("build returned no cluster")
	}
	if err == nil {
		err = startMember(c)
		if err != nil {
			stopCluster(c)
		}
	}
	if err != nil {
		_ = p.Shutdown(false)
		return fmt.Errorf("zkactor provider: start a member: %w", err)
	}
	s.mu.Lock()
	s.c, s.p = c, p
	s.incarnation++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// startMember runs protoactor's StartMember, which panics on errors.
func startMember(c *pcluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("protoactor's StartMember: %v", r)
		}
	}()
	c.StartMember()
	return nil
}

// stopCluster stops a cluster whose provider died or never started:
// protoactor's non-graceful Shutdown (it does not call the provider).
func stopCluster(c *pcluster.Cluster) {
	defer func() { _ = recover() }() // a cluster that did not start may have no remote
	c.Shutdown(false)
}

func (s *Supervisor) run() {
	defer close(s.done)
	for {
		p, c := s.Provider(), s.Cluster()
		select {
		case <-s.quit:
			return
		case <-p.Dead():
		}
		s.log.Warn("the member died; starting it again as a new member", "member", c.ActorSystem.ID, "err", p.Err())
		stopCluster(c)
		_ = p.Shutdown(false)
		for backoff := minRestartBackoff; ; backoff = min(2*backoff, maxRestartBackoff) {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			err := s.start(ctx)
			cancel()
			if err == nil {
				s.log.Info("the member is back as a new member", "member", s.Cluster().ActorSystem.ID, "previous", c.ActorSystem.ID)
				break
			}
			s.log.Warn("starting the member again", "err", err, "retry in", backoff)
			select {
			case <-s.quit:
				return
			case <-time.After(backoff):
			}
		}
	}
}

// Shutdown stops supervising and shuts the current incarnation down: its
// provider (graceful or not, see Provider.Shutdown), then protoactor's
// actor system and remote. It does not call protoactor's Cluster.Shutdown,
// which sleeps two seconds when graceful.
func (s *Supervisor) Shutdown(graceful bool) error {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.done
		p, c := s.Provider(), s.Cluster()
		s.stopErr = p.Shutdown(graceful)
		c.ActorSystem.Shutdown()
		if c.Remote != nil {
			remotestop.Shutdown(c.Remote, graceful, s.log)
		}
	})
	return s.stopErr
}
