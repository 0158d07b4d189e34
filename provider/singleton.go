package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
)

// ErrNotMember: the call needs a member (StartMember), not a client.
var ErrNotMember = errors.New("zkactor provider: not a cluster member")

// Singleton stands this member for the cluster singleton name: a zkactor
// global (package global), of which exactly one runs cluster-wide. props is
// spawned here if and when this member is elected; the actor's first
// message is a *zkactorv1.Elected with the term's epoch, which only grows
// from term to term. It returns at once with the PID of the singleton now
// (this member's or another's). The candidacy ends with Shutdown (the next
// candidate takes over at once), with ResignSingleton, when the actor
// stops by itself, or with the member's death. See
// global.Elections.RegisterCandidate for the details.
func (p *Provider) Singleton(ctx context.Context, name string, props *actor.Props) (*actor.PID, error) {
	e, err := p.singletons()
	if err != nil {
		return nil, fmt.Errorf("zkactor provider: singleton %q: %w", name, err)
	}
	return e.RegisterCandidate(ctx, name, props)
}

// WhereisSingleton returns the running singleton name: its PID, the id of
// its member (Leader.NodeID) and its epoch, from a watch-swept cache.
// Leader.PID is nil when none runs.
func (p *Provider) WhereisSingleton(ctx context.Context, name string) (global.Leader, error) {
	e, err := p.singletons()
	if err != nil {
		return global.Leader{}, fmt.Errorf("zkactor provider: whereis singleton %q: %w", name, err)
	}
	l, err := e.Leader(ctx, name)
	l.NodeID = strings.TrimSuffix(l.NodeID, singletonsSuffix)
	return l, err
}

// ResignSingleton ends this member's candidacy for name: a running
// singleton stops and the next candidate takes over at once.
func (p *Provider) ResignSingleton(ctx context.Context, name string) error {
	e, err := p.singletons()
	if err != nil {
		return fmt.Errorf("zkactor provider: resign singleton %q: %w", name, err)
	}
	return e.Resign(ctx, name)
}

// Elections is the member's zkactor elections (package global), for what
// the Singleton methods do not wrap (Observe, Epoch).
func (p *Provider) Elections() (*global.Elections, error) { return p.singletons() }

// singletonsSuffix names the zkactor node (package cluster) that a
// member's singleton candidacies belong to: <ActorSystem id>-singletons,
// a plain node (no kinds) on the member's session, made on first use.
const singletonsSuffix = "-singletons"

// singletons returns the member's elections, started on first use.
func (p *Provider) singletons() (*global.Elections, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closing:
		return nil, ErrShutdown
	case p.deathErr != nil:
		return nil, p.deathErr
	case !p.member || p.c == nil:
		return nil, ErrNotMember
	}
	if p.elections == nil {
		// Elections need a zkactor registry; the member's own znode is not
		// one (a registry re-creates its node after an expiry, which a
		// member must never do), so the candidacies get a node of their own.
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
		defer cancel()
		reg, err := cluster.NewRegistry(ctx, p.c.ActorSystem, p.s, cluster.Options{
			Root: p.cfg.Root, NodeID: p.c.ActorSystem.ID + singletonsSuffix, Logger: p.cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		p.reg = reg
		p.elections = global.NewElections(p.c.ActorSystem, reg, global.Options{Logger: p.cfg.Logger})
	}
	return p.elections, nil
}
