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
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
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
	leaders leaderCache

	quit     chan struct{}
	wg       sync.WaitGroup
	stopSess func()

	mu        sync.Mutex
	elections map[string]*election
	closed    bool
}

// New starts the elections of a node.
func New(system *actor.ActorSystem, reg *cluster.Registry, opts Options) *Elections {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Elections{
		reg:       reg,
		s:         reg.Session(),
		system:    system,
		layout:    reg.Layout(),
		log:       opts.Logger.With("node", reg.NodeID()),
		quit:      make(chan struct{}),
		elections: map[string]*election{},
	}
	e.leaders.e = e
	e.stopSess = e.s.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired || ev.NewSession {
			e.leaders.sweep()
		}
		e.mu.Lock()
		for _, el := range e.elections {
			el.wakeUp()
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
// message is a *zkactorv1.Elected carrying the term's epoch.
//
// Calling it again for the same name replaces the staged props; if this
// node holds the global, the running PID is returned and nothing new is
// started. The candidacy ends when the global actor stops, on Resign, or
// on Close; a session expiry re-enters it at the back of the queue.
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
	el := e.elections[name]
	if el == nil {
		var err error
		if el, err = e.newElection(name, props); err != nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, err)
		}
		e.elections[name] = el
		e.wg.Add(1)
		go el.run()
	} else {
		el.setProps(props)
	}
	e.mu.Unlock()

	select {
	case <-el.entered:
	case <-el.finished:
	case <-ctx.Done():
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, context.Cause(ctx))
	}
	if err := el.enterError(); err != nil {
		return nil, fmt.Errorf("zkactor: register candidate %q: %w", name, err)
	}
	if el.leading() {
		return el.pid, nil
	}
	pid, err := e.WhereisGlobal(ctx, name)
	if errors.Is(err, ErrNotFound) {
		// Between terms (e.g. our own global just stopped): we are queued.
		return el.pid, nil
	}
	return pid, err
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
	if l, ok := e.leaders.entries.Load(name); ok { // the hit path
		return *l.(*Leader), nil
	}
	if err := cluster.ValidateName(name); err != nil {
		return Leader{}, fmt.Errorf("zkactor: whereis global %q: %w", name, err)
	}
	l, err := e.leaders.get(ctx, name)
	if err != nil {
		return Leader{}, fmt.Errorf("zkactor: whereis global %q: %w", name, err)
	}
	return *l, nil
}

// Observe streams the leaders of name: the current one first, then every
// change (Leader.PID nil while none runs), until ctx ends or Elections
// closes; then the channel is closed. A slow reader sees only the latest.
func (e *Elections) Observe(ctx context.Context, name string) <-chan Leader {
	out := make(chan Leader, 1)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(out)
		var last *Leader
		for {
			l, watch, err := e.readLeader(ctx, name)
			if err != nil {
				e.log.Debug("observe: read leader", "name", name, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-e.quit:
					return
				case <-time.After(100 * time.Millisecond):
					continue
				}
			}
			if last == nil || !sameLeader(*last, *l) {
				last = l
				select { // keep only the latest for a slow reader
				case <-out:
				default:
				}
				out <- *l
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
	return a.Epoch == b.Epoch && a.NodeID == b.NodeID && a.PID.Equal(b.PID)
}

// Resign ends this node's candidacy for name: a running global is stopped
// and its znode deleted, so the next candidate takes over at once.
func (e *Elections) Resign(ctx context.Context, name string) error {
	e.mu.Lock()
	el := e.elections[name]
	e.mu.Unlock()
	if el == nil {
		return fmt.Errorf("zkactor: resign %q: %w", name, ErrNotCandidate)
	}
	el.stop()
	select {
	case <-el.finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkactor: resign %q: %w", name, context.Cause(ctx))
	}
}

// Epoch returns the epoch of this node's current term for name, and false
// when this node does not hold the global.
func (e *Elections) Epoch(name string) (int64, bool) {
	e.mu.Lock()
	el := e.elections[name]
	e.mu.Unlock()
	if el == nil {
		return 0, false
	}
	t := el.currentTerm()
	if t == nil {
		return 0, false
	}
	return t.epoch, true
}

// Close resigns every candidacy and stops the caches and observers.
func (e *Elections) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var els []*election
	for _, el := range e.elections {
		els = append(els, el)
		el.stop()
	}
	e.mu.Unlock()
	var err error
	for _, el := range els {
		select {
		case <-el.finished:
		case <-ctx.Done():
			err = fmt.Errorf("zkactor: close elections: %w", context.Cause(ctx))
		}
	}
	e.stopSess()
	close(e.quit)
	e.wg.Wait()
	return err
}

// election is this node's candidacy for one name. Its goroutine (run) owns
// the candidate znode and the term; other goroutines only wake it.
type election struct {
	e    *Elections
	name string
	dir  string
	pid  *actor.PID // fixed for the candidacy, stored in the znode
	st   *staging
	data []byte
	log  *slog.Logger

	wake     chan struct{}
	quit     chan struct{}
	quitOnce sync.Once
	entered  chan struct{} // closed once the first candidate znode exists
	finished chan struct{} // closed when run has returned

	mu       sync.Mutex
	props    *actor.Props
	enterErr error
	term     *term

	// Owned by run.
	path    string // candidate znode in the current session, "" = none
	session int64
}

// term is one tenure of this node as the global.
type term struct {
	epoch     int64
	pid       *actor.PID
	done      chan struct{} // closed when the actor has stopped
	ended     atomic.Bool   // deposed: the actor must not handle another message
	announced atomic.Bool   // Elected was delivered
}

func (e *Elections) newElection(name string, props *actor.Props) (*election, error) {
	id := "global-" + strings.ReplaceAll(name, " ", "_") + "-" + randomHex(6)
	pid := actor.NewPID(e.system.Address(), id)
	data, err := proto.Marshal(&pb.Candidate{
		Name:        name,
		Pid:         &pb.PID{Address: pid.Address, Id: pid.Id},
		NodeId:      e.reg.NodeID(),
		NodeAddress: e.system.Address(),
		Since:       timestamppb.Now(),
	})
	if err != nil {
		return nil, err
	}
	el := &election{
		e: e, name: name, dir: e.layout.GlobalPath(name), pid: pid, data: data, props: props,
		st:       newStaging(e.system, pid),
		log:      e.log.With("global", name),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		entered:  make(chan struct{}),
		finished: make(chan struct{}),
	}
	if !el.st.install() {
		return nil, fmt.Errorf("process id %s is taken", id)
	}
	return el, nil
}

func (el *election) wakeUp() {
	select {
	case el.wake <- struct{}{}:
	default:
	}
}

func (el *election) stop() { el.quitOnce.Do(func() { close(el.quit) }) }

func (el *election) setProps(p *actor.Props) {
	el.mu.Lock()
	el.props = p
	el.mu.Unlock()
}

func (el *election) currentTerm() *term {
	el.mu.Lock()
	defer el.mu.Unlock()
	return el.term
}

func (el *election) leading() bool { return el.currentTerm() != nil }

func (el *election) enterError() error {
	el.mu.Lock()
	defer el.mu.Unlock()
	return el.enterErr
}

// run is the candidacy's loop: enter the queue, wait for the predecessor
// to go (watching only it, so one exit wakes one candidate), lead, and
// step down when contact with ZooKeeper can no longer be vouched for.
func (el *election) run() {
	defer el.finish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-el.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	retry := func() bool { return el.pause(ctx, 100*time.Millisecond) }
	for ctx.Err() == nil {
		s := el.e.s
		if t := el.currentTerm(); t != nil && !el.safe() {
			el.depose("cannot vouch for the ZooKeeper session (disconnected or paused)")
		}
		if !s.Connected() {
			if !el.waitEvents(ctx, nil) {
				return
			}
			continue
		}
		if el.path == "" || el.session != s.ID() {
			if el.currentTerm() != nil {
				el.depose("the session was replaced")
			}
			session := s.ID()
			path, err := el.enter(ctx)
			if err != nil {
				el.log.Warn("entering election", "err", err)
				if !cluster.IsTransient(err) && !errors.Is(err, cluster.ErrNotConnected) && ctx.Err() == nil {
					el.signalEntered(err)
					return
				}
				if !retry() {
					return
				}
				continue
			}
			el.path, el.session = path, session
			el.e.leaders.evict(el.name)
			el.signalEntered(nil)
		}
		var names []string
		err := s.Do(ctx, cluster.Op{Name: "get children", Path: el.dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			names, _, err = c.Children(el.dir)
			return err
		})
		if err != nil {
			if !retry() {
				return
			}
			continue
		}
		q := queue(names)
		me := el.path[strings.LastIndexByte(el.path, '/')+1:]
		idx := indexOf(q, me)
		switch {
		case idx < 0: // our znode is gone with its session
			el.path = ""
			if el.currentTerm() != nil {
				el.depose("the candidate znode is gone")
			}
		case idx == 0:
			if el.currentTerm() == nil && !el.lead(ctx) {
				if !retry() {
					return
				}
				continue
			}
			if !el.hold(ctx) {
				return
			}
		default:
			if el.currentTerm() != nil {
				el.depose("no longer first in the queue")
			}
			pred := el.dir + "/" + q[idx-1]
			var (
				exists bool
				watch  <-chan zk.Event
			)
			err := s.Do(ctx, cluster.Op{Name: "exists", Path: pred, Idempotent: true}, func(c *zk.Conn) error {
				var err error
				exists, _, watch, err = c.ExistsW(pred)
				return err
			})
			if err != nil || !exists {
				continue
			}
			select {
			case <-watch:
			case <-el.wake:
			case <-ctx.Done():
				return
			}
		}
	}
}

// hold waits while this node leads. It returns to the loop (true) to
// re-check the queue after a session event or a deposition, and false when
// the candidacy ends: the global stopped by itself, or the candidacy was
// ended. The lease is checked on the clock alone, never by a request that
// could hang on a partitioned connection.
func (el *election) hold(ctx context.Context) bool {
	t := el.currentTerm()
	for {
		timer := time.NewTimer(max(time.Until(el.e.s.SafeUntil()), 0) + time.Millisecond)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-t.done:
			timer.Stop()
			if !t.ended.Load() {
				el.log.Info("the global stopped: ending the candidacy")
				return false
			}
			return true // stopped by the guard: deposed
		case <-el.wake:
			timer.Stop()
			if !el.safe() {
				el.depose("cannot vouch for the ZooKeeper session (disconnected or paused)")
			}
			return true
		case <-timer.C:
			if !el.safe() {
				el.depose("lost contact with ZooKeeper for 2/3 of the session timeout")
				return true
			}
		}
	}
}

// waitEvents waits while leading (or disconnected) for a wake-up, the
// term's end, the moment the session can no longer be vouched for, or
// the end of the candidacy. It reports false for the latter.
func (el *election) waitEvents(ctx context.Context, termDone <-chan struct{}) bool {
	var lapse <-chan time.Time
	if el.currentTerm() != nil {
		timer := time.NewTimer(max(time.Until(el.e.s.SafeUntil()), 0) + time.Millisecond)
		defer timer.Stop()
		lapse = timer.C
	}
	select {
	case <-el.wake:
	case <-termDone:
	case <-lapse:
	case <-ctx.Done():
		return false
	}
	return true
}

func (el *election) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-el.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

func (el *election) safe() bool { return time.Now().Before(el.e.s.SafeUntil()) }

func (el *election) signalEntered(err error) {
	el.mu.Lock()
	defer el.mu.Unlock()
	if isClosed(el.entered) {
		return
	}
	el.enterErr = err
	close(el.entered)
}

// enter creates this node's candidate znode: ephemeral, sequential and
// protected by a GUID in its name, so that after a connection lost during
// the create the candidate finds its own znode instead of leaving an
// orphan and queueing twice.
func (el *election) enter(ctx context.Context) (string, error) {
	s := el.e.s
	guid := randomHex(16)
	prefix := el.dir + "/_c_" + guid + candidateMark
	var created string
	late := func(err error) {
		// The create finished after we stopped waiting: if it was applied,
		// nobody knows the znode. Delete it.
		if err == nil && created != "" {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), cluster.DefaultRequestTimeout)
				defer cancel()
				_ = s.Do(ctx, cluster.Op{Name: "delete", Path: created, Idempotent: true}, func(c *zk.Conn) error {
					return c.Delete(created, -1)
				})
			}()
		}
	}
	for {
		err := s.Do(ctx, cluster.Op{Name: "create", Path: prefix, Late: late}, func(c *zk.Conn) error {
			var err error
			created, err = cluster.CreateWithParents(c, el.e.layout.Root, prefix, el.data, zk.FlagEphemeral|zk.FlagSequence, s.ACL())
			return err
		})
		if err == nil {
			return created, nil
		}
		if !cluster.IsTransient(err) {
			return "", err
		}
		// Unknown outcome: look for our GUID once reconnected.
		var found string
		err = s.Do(ctx, cluster.Op{Name: "get children", Path: el.dir, Idempotent: true}, func(c *zk.Conn) error {
			names, _, err := c.Children(el.dir)
			for _, n := range names {
				if strings.HasPrefix(n, "_c_"+guid) {
					found = el.dir + "/" + n
				}
			}
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			return err
		})
		if err != nil {
			return "", err
		}
		if found != "" {
			return found, nil
		}
	}
}

// lead starts a term: it confirms that the candidate znode exists and
// belongs to the current session, takes its creation zxid as the epoch,
// and starts the global actor in place of the stand-in.
func (el *election) lead(ctx context.Context) bool {
	s := el.e.s
	var stat *zk.Stat
	err := s.Do(ctx, cluster.Op{Name: "exists", Path: el.path, Idempotent: true}, func(c *zk.Conn) error {
		ok, st, err := c.Exists(el.path)
		if err == nil && !ok {
			err = zk.ErrNoNode
		}
		stat = st
		return err
	})
	if err != nil || stat.EphemeralOwner != s.ID() {
		el.log.Info("not leading: candidate znode missing or not ours", "path", el.path, "err", err)
		el.path = ""
		return false
	}
	if !el.safe() {
		return false
	}
	t := &term{epoch: stat.Czxid, done: make(chan struct{})}
	el.mu.Lock()
	props := el.props
	el.mu.Unlock()
	guarded := *props // a copy: the caller's props stay as they were
	guarded.Configure(actor.WithReceiverMiddleware(el.guard(t)))
	pid, err := el.st.start(&guarded)
	if err != nil {
		el.log.Error("starting the global actor", "err", err)
		return false
	}
	t.pid = pid
	el.e.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(pid)
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				close(t.done)
				el.wakeUp()
				c.Stop(c.Self())
			}
		}
	}))
	el.e.system.Root.Send(pid, &pb.Elected{Name: el.name, Epoch: t.epoch})
	el.mu.Lock()
	el.term = t
	el.mu.Unlock()
	el.e.leaders.evict(el.name)
	el.log.Info("elected", "pid", pid.String(), "epoch", t.epoch)
	return true
}

// guard is the global actor's receiver middleware: the term's epoch is
// delivered first, and no message is handled once the session cannot be
// vouched for (after a partition or a pause); the actor is stopped then.
func (el *election) guard(t *term) actor.ReceiverMiddleware {
	elected := &pb.Elected{Name: el.name, Epoch: t.epoch}
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch m := env.Message.(type) {
			case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
				next(c, env)
				return
			case *pb.Elected:
				if m == elected || proto.Equal(m, elected) {
					if !t.announced.Swap(true) {
						next(c, env)
					}
					return
				}
			}
			if t.ended.Load() {
				return
			}
			if !el.safe() {
				t.ended.Store(true)
				el.log.Warn("global stops: the ZooKeeper session cannot be vouched for", "epoch", t.epoch)
				c.ActorSystem().Root.Stop(c.Self())
				el.wakeUp()
				return
			}
			if !t.announced.Swap(true) {
				next(c, &actor.MessageEnvelope{Message: elected})
			}
			next(c, env)
		}
	}
}

// depose ends the current term without ending the candidacy: the actor
// stops before it handles another message, and the stand-in takes its PID
// again.
func (el *election) depose(why string) {
	t := el.currentTerm()
	if t == nil {
		return
	}
	t.ended.Store(true)
	el.log.Warn("stepping down", "why", why, "epoch", t.epoch)
	_ = el.e.system.Root.StopFuture(t.pid).Wait()
	<-t.done
	el.mu.Lock()
	el.term = nil
	el.mu.Unlock()
	el.st.stopped()
	el.st.install()
	el.e.leaders.evict(el.name)
}

// finish ends the candidacy: the actor stops, the znode goes (so the next
// candidate takes over at once), the stand-in leaves the registry.
func (el *election) finish() {
	defer el.e.wg.Done()
	if t := el.currentTerm(); t != nil {
		t.ended.Store(true)
		_ = el.e.system.Root.StopFuture(t.pid).Wait()
		<-t.done
		el.mu.Lock()
		el.term = nil
		el.mu.Unlock()
	}
	if el.path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cluster.DefaultRequestTimeout)
		err := el.e.s.Do(ctx, cluster.Op{Name: "delete", Path: el.path, Idempotent: true}, func(c *zk.Conn) error {
			err := c.Delete(el.path, -1)
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			return err
		})
		cancel()
		if err != nil {
			el.log.Warn("deleting candidate znode (it goes with the session)", "err", err)
		}
	}
	el.st.remove()
	el.e.leaders.evict(el.name)
	el.e.mu.Lock()
	if el.e.elections[el.name] == el {
		delete(el.e.elections, el.name)
	}
	el.e.mu.Unlock()
	el.signalEntered(cluster.ErrClosed)
	close(el.finished)
}

func indexOf(q []string, name string) int {
	for i, n := range q {
		if n == name {
			return i
		}
	}
	return -1
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
