package subscription

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/pidwatch"
	"github.com/zkactor/zkactor/internal/records"
	"github.com/zkactor/zkactor/internal/zkwatch"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
)

// Options configures Subscriptions.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Subscriptions runs the subscriptions of one node. It borrows the
// registry's session (its servers, credentials and lifetime) and actor
// system, keeps one connection of its own for the persistent watches
// (opened by the first Subscribe), and watches the subscribing actors so
// that a subscription ends with its actor.
type Subscriptions struct {
	system  *actor.ActorSystem
	s       *cluster.Session
	layout  cluster.Layout
	log     *slog.Logger
	watcher *pidwatch.Watcher // watches subscriber PIDs

	life    context.Context // ends with Close
	endLife context.CancelFunc
	wg      sync.WaitGroup
	closeWG sync.WaitGroup // the first Close, which later ones wait for

	watchLive atomic.Bool // the stream's connection is up (for Subscribe's error)

	mu     sync.Mutex
	stream *stream // nil until the first Subscribe
	nextID uint64
	byPID  map[string]map[*follow]struct{}
	closed bool
}

// New starts the subscriptions of a node on reg's session and system.
func New(system *actor.ActorSystem, reg *cluster.Registry, opts Options) *Subscriptions {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Subscriptions{
		system: system,
		s:      reg.Session(),
		layout: reg.Layout(),
		log:    opts.Logger.With("node", reg.NodeID()),
		byPID:  map[string]map[*follow]struct{}{},
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.watcher = pidwatch.Start(system, s.subscriberStopped)
	return s
}

// Subscribe sends pid the members of the service name: first a
// *subscriptionv1.Snapshot, then a *subscriptionv1.Joined or
// *subscriptionv1.Left for each change, each with the next sequence number
// (see the package documentation for the order). It returns once the
// snapshot is sent, or with an error if the first listing could not be
// read within ctx (the session's request timeout when ctx has no
// deadline).
//
// The subscription lasts until ctx ends, cancel is called, the actor pid
// stops, or Close. It survives disconnects and session expiry: after a gap
// it sends the difference. cancel returns once no further message will be
// sent; it may be called more than once.
func (s *Subscriptions) Subscribe(ctx context.Context, name string, pid *actor.PID) (cancel func(), err error) {
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("zkactor: subscribe %q: %w", name, err)
	}
	cancel, err = s.start(ctx, name, s.layout.ServicePath(name), pid, decodeRegistration)
	if err != nil {
		return nil, fmt.Errorf("zkactor: subscribe %q: %w", name, err)
	}
	return cancel, nil
}

// SubscribeNodes is Subscribe for the live nodes of the cluster
// (<root>/nodes, GetPeers as a stream): the members carry
// zkactorv1.Node records, and the messages' service is "".
func (s *Subscriptions) SubscribeNodes(ctx context.Context, pid *actor.PID) (cancel func(), err error) {
	cancel, err = s.start(ctx, "", s.layout.NodesPath(), pid, decodeNode)
	if err != nil {
		return nil, fmt.Errorf("zkactor: subscribe to nodes: %w", err)
	}
	return cancel, nil
}

// Close ends every subscription and returns when their goroutines have
// stopped. It is idempotent.
func (s *Subscriptions) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// Another Close is under way (or done): return when it is, so
		// that every Close keeps the promise above.
		s.closeWG.Wait()
		return
	}
	s.closed = true
	s.closeWG.Add(1)
	s.mu.Unlock()
	defer s.closeWG.Done()
	s.endLife()
	s.wg.Wait()
	s.watcher.Stop()
}

func (s *Subscriptions) start(ctx context.Context, service, dir string, pid *actor.PID, decode decoder) (func(), error) {
	if pid == nil {
		return nil, fmt.Errorf("nil PID")
	}
	s.mu.Lock()
	if s.closed || isDone(s.s.Done()) {
		s.mu.Unlock()
		return nil, cluster.ErrClosed
	}
	if s.stream == nil {
		if err := s.openStream(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	l := s.stream
	s.nextID++
	f := &follow{
		s: s, id: s.nextID, service: service, dir: dir, pid: pid, decode: decode,
		started: make(chan error, 1),
		done:    make(chan struct{}),
		log:     s.log.With("subscription", s.nextID, "dir", dir, "subscriber", pid.String()),
	}
	s.mu.Unlock()

	f.ctx, f.cancel = context.WithCancel(ctx)
	f.release = []func() bool{
		context.AfterFunc(s.life, f.cancel),
		context.AfterFunc(f.ctx, func() { l.post(func(l *stream) { l.end(f, f.ctx.Err()) }) }),
	}
	if !l.post(func(l *stream) { l.add(f) }) {
		for _, stop := range f.release {
			stop()
		}
		f.cancel()
		return nil, cluster.ErrClosed
	}

	wait := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, s.s.RequestTimeout())
		defer cancel()
	}
	select {
	case err := <-f.started:
		if err == nil {
			return f.stop, nil
		}
		<-f.done
		if wait.Err() == nil {
			return nil, err
		}
		// Ended by ctx, as below.
	case <-wait.Done():
		f.stop()
	}
	if !s.watchLive.Load() {
		return nil, fmt.Errorf("first listing of %s: %w (%w)", dir, cluster.ErrNotConnected, wait.Err())
	}
	return nil, fmt.Errorf("first listing of %s: %w", dir, wait.Err())
}

// openStream opens the connection for the persistent watches and starts
// its goroutine; called with mu held.
func (s *Subscriptions) openStream() error {
	cfg := s.s.Config()
	digest := ""
	if a := cfg.Auth; a != nil {
		digest = a.User + ":" + a.Password
	}
	conn, err := zkwatch.Dial(zkwatch.Config{Servers: cfg.Servers, SessionTimeout: s.s.Timeout(), Digest: digest, Logger: s.log})
	if err != nil {
		return err
	}
	s.stream = newStream(s, conn)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.stream.run()
	}()
	return nil
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func pidKey(pid *actor.PID) string { return pid.Address + "/" + pid.Id }

// add and remove keep byPID and the watcher's watches in step: both
// change under mu, so the watcher sees watch and unwatch in map order.
func (s *Subscriptions) add(f *follow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pidKey(f.pid)
	set := s.byPID[k]
	if set == nil {
		set = map[*follow]struct{}{}
		s.byPID[k] = set
		s.watcher.Watch(f.pid)
	}
	set[f] = struct{}{}
}

func (s *Subscriptions) remove(f *follow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pidKey(f.pid)
	set := s.byPID[k]
	if _, ok := set[f]; !ok {
		return
	}
	delete(set, f)
	if len(set) == 0 {
		delete(s.byPID, k)
		if !s.closed {
			s.watcher.Unwatch(f.pid)
		}
	}
}

// subscriberStopped is the watcher's report: a subscriber that stops ends
// its subscriptions. It only cancels them (their goroutines clean up), so
// it never waits on ZooKeeper.
func (s *Subscriptions) subscriberStopped(who *actor.PID) {
	s.mu.Lock()
	for f := range s.byPID[pidKey(who)] {
		f.log.Debug("subscriber stopped: ending its subscription")
		f.cancel()
	}
	s.mu.Unlock()
}

// decoder turns a child's data into a member's record.
type decoder func(m *subv1.Member, data []byte) error

func decodeRegistration(m *subv1.Member, data []byte) error {
	rec, err := records.Registration(data)
	if err != nil {
		return err
	}
	m.Record = &subv1.Member_Registration{Registration: rec}
	return nil
}

func decodeNode(m *subv1.Member, data []byte) error {
	rec, err := records.Node(data)
	if err != nil {
		return err
	}
	m.Record = &subv1.Member_Node{Node: rec}
	return nil
}
