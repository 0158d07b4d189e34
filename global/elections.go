package global

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/metrics"
	"github.com/zkactor/zkactor/internal/watchcache"
)

// Options configures Elections.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Elections runs this node's candidacies for global names and answers
// WhereisGlobal from a watch-swept cache. It borrows the registry's
// session and actor system.
type Elections struct {
	reg     *cluster.Registry
	s       *cluster.Session
	system  *actor.ActorSystem
	layout  cluster.Layout
	log     *slog.Logger
	leaders *watchcache.Cache[Leader] // WhereisGlobal's: name → the head of its queue

	quit       chan struct{}
	life       context.Context // ends with quit
	endLife    context.CancelFunc
	wg         sync.WaitGroup
	stopSess   func()
	stopEvents func()

	mu          sync.Mutex
	candidacies map[string]*candidacy
	// ending holds, per name, the last candidacy taken out of candidacies
	// (by Resign, or replaced as ending) until it has finished: the next
	// candidacy for the name enters only after it (see candidacy.after).
	ending   map[string]*candidacy
	closed   bool
	closeCtx context.Context // Close's, once closing: bounds the candidacies' last deletes
}

// NewElections starts the elections of a node.
func NewElections(system *actor.ActorSystem, reg *cluster.Registry, opts Options) *Elections {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Elections{
		reg:         reg,
		s:           reg.Session(),
		system:      system,
		layout:      reg.Layout(),
		log:         opts.Logger.With("node", reg.NodeID()),
		quit:        make(chan struct{}),
		candidacies: map[string]*candidacy{}, ending: map[string]*candidacy{},
	}
	e.life, e.endLife = context.WithCancel(context.Background())
	e.leaders = watchcache.New(func(ctx context.Context, name string, _ *Leader) (*Leader, error) {
		l, _, err := e.readLeader(ctx, name) // the session's events sweep it, not the channel
		return l, err
	}, watchcache.Options[Leader]{
		PathKey: func(path string) (string, bool) {
			name, ok := strings.CutPrefix(path, e.layout.GlobalsPath()+"/")
			return name, ok && !strings.Contains(name, "/")
		},
		Absent:  func(l *Leader) bool { return l.PID == nil },
		Metrics: metrics.LeadersCache,
	})
	e.stopEvents = e.s.OnWatchEvent(e.leaders.Event)
	e.stopSess = e.s.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired || ev.NewSession {
			e.leaders.Sweep()
		}
		e.mu.Lock()
		for _, c := range e.candidacies {
			c.wakeUp()
		}
		e.mu.Unlock()
	})
	return e
}

// RegisterCandidate puts this node up for the global name and returns at
// once with the PID of the currently elected global: this node's or
// another's. props is spawned on this node only if and when it is elected,
// under a PID fixed now (and stored in the candidate's znode), so messages
// sent to it before the actor starts wait for it. The actor's first
// message is a *zkactorv1.Elected carrying the term's epoch (again, to the
// new instance, after a panic restarts it).
//
// Calling it again for the same name replaces the staged props; if this
// node holds the global, the running PID is returned and nothing new is
// started. A nil error always leaves a live candidacy: a call that meets a
// candidacy that is ending (its global stopped by itself, or Resign is
// under way) starts a new one, which enters the queue once the ending one
// has finished (its global stopped, its znode deleted), so that the call
// does not name this node's global that is stopping (a global whose
// Stopping handler blocks holds the call until ctx ends; so does a call
// made, for its own name, from that global's Stopping or Stopped handler,
// which the ending candidacy waits for). The candidacy ends
// when the global actor stops by itself, on Resign, or on Close; a session
// expiry, or the candidate's znode deleted by someone else, re-enters it
// at the back of the queue. If ctx ends before the candidate znode exists, the call
// returns ctx's error but the candidacy goes on (Resign ends it).
func (e *Elections) RegisterCandidate(ctx context.Context, name string, props *actor.Props) (*actor.PID, error) {
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, err)
	}
	if props == nil {
		return nil, fmt.Errorf("zkactor: register candidate %q: nil props", name)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, cluster.ErrClosed)
	}
	c := e.candidacies[name]
	if c != nil && c.ending() {
		delete(e.candidacies, name) // it finishes on its own; this call starts afresh
		e.ending[name] = c
		c = nil
	}
	if c == nil {
		var err error
		if c, err = e.newCandidacy(name, props); err != nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, err)
		}
		c.after = e.ending[name]
		e.candidacies[name] = c
		e.wg.Add(1)
		go c.run()
	} else {
		c.setProps(props)
	}
	e.mu.Unlock()

	select {
	case <-c.entered:
	case <-c.finished:
	case <-ctx.Done():
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, context.Cause(ctx))
	}
	if err := c.enterError(); err != nil {
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, err)
	}
	if c.leading() {
		return c.pid, nil
	}
	pid, err := e.WhereisGlobal(ctx, name)
	if errors.Is(err, ErrNotFound) {
		// Between terms (e.g. our own global just stopped): we are queued.
		return c.pid, nil
	}
	return pid, err
}

// retire takes c out of the table if it is still there: from then on a
// RegisterCandidate for its name starts a new candidacy. finished reports
// that c has finished, so that no later candidacy waits for it.
func (e *Elections) retire(c *candidacy, finished bool) {
	e.mu.Lock()
	if e.candidacies[c.name] == c {
		delete(e.candidacies, c.name)
	}
	if finished && e.ending[c.name] == c {
		delete(e.ending, c.name)
	}
	e.mu.Unlock()
}

// WhereisGlobal returns the PID of the global process name, from a
// watch-swept cache: repeated lookups cost no ZooKeeper request, and a
// change of leader sweeps the entry. errors.Is(err, ErrNotFound) when
// none runs.
func (e *Elections) WhereisGlobal(ctx context.Context, name string) (*actor.PID, error) {
	l, err := e.Leader(ctx, name)
	if err != nil {
		return nil, err
	}
	if l.PID == nil {
		return nil, fmt.Errorf("zkactor: whereis global %q: %w", name, ErrNotFound)
	}
	return l.PID, nil
}

// Leader is WhereisGlobal with the whole observation: PID, node and epoch.
// Leader.PID is nil when no global runs.
func (e *Elections) Leader(ctx context.Context, name string) (Leader, error) {
	if l, ok := e.leaders.Peek(name); ok { // the hit path: a map read
		return *l, nil
	}
	if err := cluster.ValidateName(name); err != nil {
		return Leader{}, fmt.Errorf("zkactor: whereis global %q: %w", name, err)
	}
	l, err := e.leaders.Get(ctx, name)
	if err != nil {
		return Leader{}, fmt.Errorf("zkactor: whereis global %q: %w", name, err)
	}
	return *l, nil
}

// Observe streams the leaders of name: the current one first, then every
// change (Leader.PID nil while none runs), until ctx ends or Elections
// closes; then the channel is closed. A slow reader sees only the latest.
func (e *Elections) Observe(ctx context.Context, name string) <-chan Leader {
	return observe(e, ctx, "observe", name, func(ctx context.Context) (Leader, <-chan zk.Event, error) {
		l, watch, err := e.readLeader(ctx, name)
		if err != nil {
			return Leader{}, nil, err
		}
		return *l, watch, nil
	}, sameLeader)
}

// observe is Observe's and ObserveQueue's loop: read (which leaves a
// watch) again each time the watch fires, and send what differs from the
// last value sent, the first always, keeping only the latest for a slow
// reader; a failed read is tried again after backoff. It ends, closing the
// channel, when ctx ends or the Elections close (a closed one gives a
// channel closed at once); requests in flight end with Close too.
func observe[T any](e *Elections, ctx context.Context, what, name string, read func(context.Context) (T, <-chan zk.Event, error), same func(a, b T) bool) <-chan T {
	out := make(chan T, 1)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		close(out)
		return out
	}
	e.wg.Add(1)
	e.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.life, cancel)
	go func() {
		defer e.wg.Done()
		defer cancel()
		defer stop()
		defer close(out)
		var (
			last T
			sent bool
		)
		for {
			v, watch, err := read(ctx)
			if err != nil {
				e.log.Debug(what+": read", "name", name, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-e.quit:
					return
				case <-time.After(backoff):
					continue
				}
			}
			if !sent || !same(last, v) {
				last, sent = v, true
				select { // keep only the latest for a slow reader
				case <-out:
				default:
				}
				out <- v
			}
			select {
			case <-watch:
			case <-ctx.Done():
				return
			case <-e.quit:
				return
			}
		}
	}()
	return out
}

func sameLeader(a, b Leader) bool {
	samePID := a.PID == nil && b.PID == nil || a.PID != nil && b.PID != nil && a.PID.Equal(b.PID)
	return a.Epoch == b.Epoch && a.NodeID == b.NodeID && samePID
}

// Resign ends this node's candidacy for name: a running global is stopped
// and its znode deleted, so the next candidate takes over at once. From the
// moment Resign is called, a RegisterCandidate for name starts a new
// candidacy. A candidacy still waiting for this node's previous one to
// finish (its global stopping) resigns once that one has finished.
func (e *Elections) Resign(ctx context.Context, name string) error {
	e.mu.Lock()
	c := e.candidacies[name]
	if c != nil {
		delete(e.candidacies, name)
		e.ending[name] = c
		c.stop()
	}
	e.mu.Unlock()
	if c == nil {
		return fmt.Errorf("zkactor: resign %q: %w", name, ErrNotCandidate)
	}
	select {
	case <-c.finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkactor: resign %q: %w", name, context.Cause(ctx))
	}
}

// Epoch returns the epoch of this node's current term for name, and false
// when this node does not hold the global.
func (e *Elections) Epoch(name string) (int64, bool) {
	e.mu.Lock()
	c := e.candidacies[name]
	e.mu.Unlock()
	if c == nil {
		return 0, false
	}
	t := c.currentTerm()
	if t == nil {
		return 0, false
	}
	return t.epoch, true
}

// Close resigns every candidacy and stops the caches and observers. It
// returns when all of that is done or ctx ends, whichever is first; deletes
// that cannot be made within ctx (ZooKeeper unreachable) are skipped, as
// the session's end removes the candidates' ephemeral znodes.
func (e *Elections) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.closeCtx = ctx
	var cs []*candidacy
	for _, c := range e.candidacies {
		cs = append(cs, c)
		c.stop()
	}
	e.candidacies = map[string]*candidacy{}
	e.mu.Unlock()
	var err error
	for _, c := range cs {
		select {
		case <-c.finished:
		case <-ctx.Done():
			err = fmt.Errorf("zkactor: close elections: %w", context.Cause(ctx))
		}
	}
	e.stopSess()
	e.stopEvents()
	close(e.quit)
	e.endLife()
	done := make(chan struct{})
	go func() {
		e.wg.Wait() // every goroutine here stops on quit, or when a global's handler returns
		e.leaders.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("zkactor: close elections (a global is still busy in a handler): %w", context.Cause(ctx))
	}
	return err
}

// endError is what a RegisterCandidate waiting for a candidacy that ended
// before it entered the queue returns: ErrClosed once these Elections
// close, else ErrResigned (a Resign of the name came first).
func (e *Elections) endError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return cluster.ErrClosed
	}
	return ErrResigned
}

// lastCtx bounds the deletes a candidacy makes as it ends: Close's ctx when
// closing, else the session's request timeout.
func (e *Elections) lastCtx() (context.Context, context.CancelFunc) {
	e.mu.Lock()
	parent := e.closeCtx
	e.mu.Unlock()
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, e.s.RequestTimeout())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
