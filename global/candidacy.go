package global

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/metrics"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/protected"
	"github.com/zkactor/zkactor/internal/zkutil"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// backoff is how long a candidacy waits before it retries a request that
// failed, unless something wakes it first.
const backoff = 100 * time.Millisecond

// candidacy is this node's candidacy for one name. Its goroutine (run) owns
// the candidate znode and the term; other goroutines only wake it or stop
// it.
type candidacy struct {
	e    *Elections
	name string
	dir  string
	guid string     // names every candidate znode of this candidacy
	pid  *actor.PID // fixed for the candidacy, stored in the znode
	st   *staging
	data []byte
	log  *slog.Logger

	releaseLease func()
	wake         chan struct{}
	quit         chan struct{}
	quitOnce     sync.Once
	entered      chan struct{} // closed once the first candidate znode exists
	finished     chan struct{} // closed when run has returned
	// after is this node's previous candidacy for the name, still ending
	// when this one was started (Resign's caller gave up, or its global
	// stopped by itself): this one enters once it has finished, so that
	// its znode is gone (or handed to the reaper) first. Otherwise the new
	// candidate would queue behind its own predecessor, and
	// RegisterCandidate would name the global that is stopping. A
	// candidacy that ends while it waits finishes only after it too, so
	// that a chain of them still waits for the first.
	after *candidacy

	mu       sync.Mutex
	props    *actor.Props
	enterErr error
	term     *term
	strays   bool // a create was abandoned: znodes of ours may exist that path is not
	// lateCreates counts creates whose caller gave up after sending them,
	// until their outcome is known: finish waits for them, so that a
	// znode one of them made is deleted before the candidacy has finished.
	lateCreates sync.WaitGroup
	closing     bool // the global stopped by itself: the candidacy is ending
	over        bool // finish has taken the strays over

	// Owned by run.
	path    string          // candidate znode, "" = none
	session int64           // the session that owns path
	own     <-chan zk.Event // watch on path; nil when none is set
	epoch   int64           // path's creation zxid
}

func (e *Elections) newCandidacy(name string, props *actor.Props) (*candidacy, error) {
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
	c := &candidacy{
		e: e, name: name, dir: e.layout.GlobalPath(name), guid: protected.NewGUID(),
		pid: pid, data: data, props: props,
		st:       newStaging(e.system, pid, e.log.With("global", name)),
		log:      e.log.With("global", name),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		entered:  make(chan struct{}),
		finished: make(chan struct{}),
	}
	if !c.st.install() {
		return nil, fmt.Errorf("process id %s is taken", id)
	}
	c.releaseLease = e.s.HoldLease()
	metrics.CandidacyStarted()
	return c, nil
}

func (c *candidacy) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *candidacy) stop() { c.quitOnce.Do(func() { close(c.quit) }) }

// ending reports a candidacy that will not lead again: it was stopped, or
// its global stopped by itself. RegisterCandidate does not reuse it.
func (c *candidacy) ending() bool {
	if isClosed(c.quit) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.term != nil && c.term.selfStopped.Load()
}

func (c *candidacy) setProps(p *actor.Props) {
	c.mu.Lock()
	c.props = p
	c.mu.Unlock()
}

func (c *candidacy) currentTerm() *term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term
}

func (c *candidacy) leading() bool { return c.currentTerm() != nil }

func (c *candidacy) enterError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enterErr
}

func (c *candidacy) signalEntered(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isClosed(c.entered) {
		return
	}
	c.enterErr = err
	close(c.entered)
}

// run is the candidacy's loop: enter the queue, wait for the live
// predecessor to go (watching only it, so one exit wakes one candidate),
// lead, and step down when the lease runs out or the znode goes.
func (c *candidacy) run() {
	defer c.finish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if c.after != nil {
		select {
		case <-c.after.finished:
		case <-ctx.Done():
			return
		}
		c.after = nil
	}
	retry := func() bool { return c.sleep(ctx, backoff) }
	for ctx.Err() == nil {
		s := c.e.s
		if t := c.currentTerm(); t != nil {
			// Leading: wait here, connected or not, until something changes.
			if !c.hold(ctx, t) {
				return
			}
			continue
		}
		if !s.Connected() {
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if c.path == "" || c.session != s.ID() {
			path, session, err := c.enter(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.log.Warn("entering the election", "err", err)
				if refused(err) {
					c.signalEntered(err)
					return
				}
				if !retry() {
					return
				}
				continue
			}
			c.path, c.session, c.own = path, session, nil
			metrics.ElectionEntered()
			c.e.leaders.Evict(c.name)
			c.signalEntered(nil)
		}
		if c.own == nil {
			// Watch our own znode from the start (one read per entry, not
			// per leader change): a delete by someone else is seen at once,
			// queued or leading, and leading needs no request of its own.
			switch gone, err := c.watchOwn(ctx); {
			case err != nil:
				if !retry() {
					return
				}
				continue
			case gone:
				c.path = ""
				continue
			}
		}
		// The queue is read again each time the watched predecessor goes,
		// even when it was the first: a client that names its own
		// sequence number (a foreign znode, one deleted and made again
		// in a multi) can put a znode ahead of us after any reading.
		names, err := protected.Children(ctx, c.e.s, c.dir)
		if err != nil {
			if !retry() {
				return
			}
			continue
		}
		q := queue(names)
		me := c.path[strings.LastIndexByte(c.path, '/')+1:]
		c.removeStrays(ctx, q, me)
		idx := indexOf(q, me)
		if idx < 0 {
			// Gone with its session, or deleted by someone else.
			c.log.Info("the candidate znode is gone: entering again", "path", c.path)
			c.path = ""
			continue
		}
		pred, watch, err := c.predecessor(ctx, q, idx)
		if err != nil {
			if !retry() {
				return
			}
			continue
		}
		if pred == "" {
			ready, alive := c.readyToLead(ctx)
			if !alive {
				return
			}
			if !ready {
				continue
			}
			if !c.lead() && !retry() {
				return
			}
			continue
		}
		select {
		case <-watch:
		case ev := <-c.own:
			c.own = nil
			if ev.Type == zk.EventNodeDeleted {
				c.log.Info("the candidate znode was deleted by someone else: entering again", "path", c.path)
				c.path = ""
			}
		case <-c.wake:
		case <-ctx.Done():
			return
		}
	}
}

// watchOwn reads the candidate znode with a watch: its creation zxid is the
// epoch of any term it starts. It reports gone when the znode no longer
// exists or belongs to another session.
func (c *candidacy) watchOwn(ctx context.Context) (gone bool, err error) {
	var (
		found bool
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err = c.e.s.Do(ctx, cluster.Op{Name: "exists", Path: c.path, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, watch, err = conn.ExistsW(c.path)
		return err
	})
	if err != nil {
		return false, err
	}
	if !found || stat.EphemeralOwner != c.session {
		c.log.Info("the candidate znode is gone: entering again", "path", c.path)
		return true, nil
	}
	c.own, c.epoch = watch, stat.Czxid
	return false, nil
}

// awaitLease waits, without requests, until the lease of the candidate
// znode's session holds, so that a candidate at the head of its queue can
// lead; it returns early when the session changes. It reports false once
// the candidacy ends.
func (c *candidacy) awaitLease(ctx context.Context) bool {
	s := c.e.s
	for !time.Now().Before(s.SafeUntilFor(c.session)) && s.ID() == c.session {
		if !c.sleep(ctx, backoff) {
			return false
		}
	}
	return true
}

// readyToLead waits, without requests, until the lease of the candidate
// znode's session holds, and reports ready when the znode's own watch has
// not fired meanwhile: the caller, at the head of its queue (or holding a
// tenure's znode), may lead. When the watch fired, the znode is looked at
// again (forgotten if it was deleted). alive is false once the candidacy
// ends.
func (c *candidacy) readyToLead(ctx context.Context) (ready, alive bool) {
	if !c.awaitLease(ctx) {
		return false, false
	}
	select {
	case ev := <-c.own: // the znode changed meanwhile: look again
		c.own = nil
		if ev.Type == zk.EventNodeDeleted {
			c.path = ""
		}
		return false, true
	default:
		return true, true
	}
}

// sleep waits d, or less if woken. It reports false once the candidacy ends.
func (c *candidacy) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// predecessor finds the live candidate just ahead of q[idx] and watches it.
// Predecessors gone meanwhile and foreign ones (see takesPart) are passed
// over. It returns "" when none is left: this candidate heads the queue.
func (c *candidacy) predecessor(ctx context.Context, q []string, idx int) (string, <-chan zk.Event, error) {
	for i := idx - 1; i >= 0; i-- {
		p := c.dir + "/" + q[i]
		var (
			stat  *zk.Stat
			watch <-chan zk.Event
		)
		// GetW rather than ExistsW: on a znode already gone it leaves no
		// watch behind on the server.
		err := c.e.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			_, stat, watch, err = conn.GetW(p)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		if !takesPart(stat) {
			c.log.Debug("passing over a persistent znode in the queue", "path", p)
			continue
		}
		return p, watch, nil
	}
	return "", nil, nil
}

// enter creates this candidacy's candidate znode: ephemeral, sequential and
// protected by the candidacy's GUID, so that after a connection lost during
// the create the candidacy finds its own znode instead of queueing twice.
// It returns the znode and the session that owns it, read from the same
// exchange, so that a session that expired during the create is not taken
// for the new one.
func (c *candidacy) enter(ctx context.Context) (string, int64, error) {
	s := c.e.s
	prefix := c.dir + "/" + candidates.Name(c.guid)
	for {
		// The caller gave up: whatever this create did is a stray now.
		c.lateCreates.Add(1)
		settle := sync.OnceFunc(c.lateCreates.Done)
		late := func(created string, _ int64, err error) {
			c.lateCreate(created, err)
			settle()
		}
		created, session, err := protected.Create(ctx, s, c.e.layout.Root, prefix, c.data, late)
		if !errors.Is(err, plumbing.ErrLate) {
			settle() // late is never called
		}
		if err == nil && session != 0 {
			return created, session, nil
		}
		if err == nil {
			// The session changed during the create: ask whose it is.
			owner, err := protected.Owner(ctx, s, created)
			if err != nil {
				c.markStrays()
				return "", 0, err
			}
			if owner == s.ID() {
				return created, owner, nil
			}
			continue // gone with the old session
		}
		if !zkutil.IsTransient(err) {
			return "", 0, err
		}
		// Unknown outcome: look for our GUID once reconnected.
		c.markStrays()
		path, owner, err := candidates.Find(ctx, s, c.dir, c.guid)
		if err != nil {
			return "", 0, err
		}
		if path != "" {
			return path, owner, nil
		}
	}
}

// lateCreate takes the outcome of a create whose caller gave up: whatever
// it made is a stray. A znode it is known to have made is deleted by the
// session once the candidacy is over, on whichever session made it (a
// create queued while the client was disconnected may go out on the next
// one); otherwise the candidacy's znodes are swept.
func (c *candidacy) lateCreate(created string, err error) {
	if err != nil || created == "" {
		c.markStrays()
		return
	}
	c.mu.Lock()
	over := c.over
	c.strays = c.strays || !over
	c.mu.Unlock()
	if over {
		c.e.s.DeleteWhenConnected(created)
	}
}

// markStrays notes that znodes of this candidacy may exist besides path:
// the loop deletes them, or finish; once finish is over, the session
// sweeps them (protected.Shape.SweepLater), for as long as the current
// session lives, which may be longer than these Elections. (A create is
// sent on the client's current session, whichever it was sent for: the
// GUID, not the session, tells the candidacy's znodes.)
func (c *candidacy) markStrays() {
	c.mu.Lock()
	over := c.over
	c.strays = !over
	c.mu.Unlock()
	if over {
		candidates.SweepLater(c.e.s, c.dir, c.guid, c.e.s.ID(), backoff)
	}
}

// removeStrays deletes znodes of this candidacy other than the current one
// (left by a create whose outcome was lost), when there may be any.
func (c *candidacy) removeStrays(ctx context.Context, q []string, me string) {
	c.mu.Lock()
	strays := c.strays
	c.strays = false
	c.mu.Unlock()
	if !strays {
		return
	}
	if err := candidates.Delete(ctx, c.e.s, c.dir, c.guid, q, me); err != nil {
		c.markStrays() // next time
	}
}

// finish ends the candidacy: the actor stops, the znodes go (so the next
// candidate takes over at once), the stand-in leaves the registry. A
// create still on the wire is waited for first (as long as a last delete
// may take), so that the znode it makes goes too. When ZooKeeper cannot be
// reached, the deletes are left to the session (DeleteWhenConnected,
// SweepLater), and at the latest to the session's end.
func (c *candidacy) finish() {
	defer c.e.wg.Done()
	c.e.retire(c, false)
	if t := c.currentTerm(); t != nil {
		c.endTerm(t, metrics.TermEndResigned, "the candidacy ended")
	}
	c.releaseLease()
	metrics.CandidacyEnded()
	c.awaitLateCreates()
	c.mu.Lock()
	strays := c.strays
	c.over = true
	c.mu.Unlock()
	if c.path != "" || strays {
		ctx, cancel := c.e.lastCtx()
		err := c.removeZnodes(ctx, strays)
		cancel()
		if err != nil {
			// The session may outlive these Elections: have it delete the
			// znode when it can, and sweep strays while Elections run.
			c.log.Warn("deleting the candidate znode once connected (it goes with the session at the latest)", "err", err)
			if c.path != "" {
				c.e.s.DeleteWhenConnected(c.path)
			}
			if strays {
				candidates.SweepLater(c.e.s, c.dir, c.guid, c.e.s.ID(), backoff)
			}
		}
	}
	c.st.remove()
	c.e.leaders.Evict(c.name)
	c.signalEntered(c.e.endError())
	if c.after != nil {
		// Ended while it waited for its predecessor (Resigned, or Close):
		// it finishes only after it, so that "finished" still means that
		// this node's global for the name has stopped and its znode is
		// gone. Otherwise a candidacy started next would wait for this one
		// only, and queue behind the predecessor's znode: a chain of
		// Resign and RegisterCandidate brought the old flake back.
		<-c.after.finished
		c.after = nil
	}
	close(c.finished)
	c.e.retire(c, true)
}

// awaitLateCreates waits, as long as a last delete may take and at most a
// session timeout, until the creates this candidacy gave up on have had
// their replies.
func (c *candidacy) awaitLateCreates() {
	done := make(chan struct{})
	go func() {
		c.lateCreates.Wait()
		close(done)
	}()
	ctx, cancel := c.e.lastCtx()
	defer cancel()
	// No longer than a session timeout either: a server silent for that
	// long has lost the connection, and the create fails then anyway.
	ctx, cancelT := context.WithTimeout(ctx, c.e.s.Timeout())
	defer cancelT()
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("a create sent before the candidacy ended is still unanswered: the session sweeps what it makes")
	}
}

// removeZnodes deletes the candidacy's znode and, if strays may exist,
// every other znode with its GUID.
func (c *candidacy) removeZnodes(ctx context.Context, strays bool) error {
	s := c.e.s
	if !s.Connected() {
		return cluster.ErrNotConnected
	}
	if c.path != "" {
		p := c.path
		if err := s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			return zkutil.Delete(conn, p, -1)
		}); err != nil {
			return err
		}
	}
	if strays {
		return candidates.Sweep(ctx, s, c.dir, c.guid)
	}
	return nil
}

// refused reports the errors of a create that retrying cannot cure.
func refused(err error) bool {
	for _, e := range []error{zk.ErrNoAuth, zk.ErrInvalidACL, zk.ErrBadArguments, zk.ErrNoChildrenForEphemerals, zk.ErrInvalidPath, cluster.ErrBadName} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
