package rolematch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/zkutil"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
)

const (
	// backoff is how long the loop waits before it retries a request that
	// failed, unless something wakes it first.
	backoff = 100 * time.Millisecond
)

// Applicant is one application for the roles of a set: it holds up to its
// limit of them, each by a holder actor spawned from its props. See the
// package documentation for its life.
type Applicant struct {
	r     *Roles
	set   string
	id    string
	limit int
	props *actor.Props
	data  []byte // the Applicant record
	log   *slog.Logger

	releaseLease func()
	stopNotify   func()
	wake         chan struct{}
	quit         chan struct{}
	quitOnce     sync.Once
	entered      chan struct{} // closed once the applicant znode exists, or the loop gave up
	done         chan struct{} // closed when the loop has finished

	mu       sync.Mutex
	enterErr error
	held     map[string]*holding
	bad      map[string]bool // roles whose spec is unusable, until the specs change or the spec's watch fires
	badWatch map[string]bool // roles whose unusable spec is watched

	// Owned by the loop.
	path    string // the applicant znode, "" = none
	session int64  // the session that owns path
	specs   view
	taken   view
	apps    view            // the applicants, for the herd order
	strays  map[string]bool // roles whose assignment this application may have made without holding it
	// specWatches: the data watches left on the specs of roles read and not
	// won, until they fire. go-zookeeper keeps a channel for every watch
	// set until it fires: a role tried again (and lost again) while its
	// spec is unchanged reuses its watch instead of adding one.
	specWatches map[string]<-chan zk.Event
	entering    bool      // an applicant znode's create was sent: finish deletes what it made
	over        bool      // the Elections closed: no holder can start any more
	pending     string    // the role the loop means to try at notBefore
	notBefore   time.Time // when the next create may be tried (herd order)
}

// holding is one role held by the application.
type holding struct {
	role      string
	tenure    *global.Tenure
	spec      *specState
	stopping  bool
	specStale bool // the spec's data watch fired: read it again (followSpecs)
	// specGone: the spec was gone when read again, and nothing watches it
	// (a watch on a znode that may never come back would stay for the
	// session's life); a specs listing that names the role again makes
	// the spec stale (refresh).
	specGone bool
	// specWatch is the data watch on the spec (loop's): when the holding
	// ends before it fires, the next try of the role uses it (specWatches).
	specWatch <-chan zk.Event
}

// view is a directory's children as last listed, with the watch that
// tells they changed.
type view struct {
	names map[string]bool
	watch <-chan zk.Event
	fresh bool
}

// Apply offers to hold up to limit roles of set, each by an actor spawned
// from props, whose first message is a *rolematchv1.Assigned. It returns
// once the application's znode exists. The application lasts until Stop,
// Roles.Close, or the Elections closing; it survives session expiry (its
// znode is created again, and it applies for roles again). If ctx ends
// before the znode exists, Apply returns ctx's error and the application
// is stopped.
func (r *Roles) Apply(ctx context.Context, set string, limit int, props *actor.Props) (*Applicant, error) {
	if err := cluster.ValidateName(set); err != nil {
		return nil, fmt.Errorf("zkactor: apply for roles of %q: %w", set, err)
	}
	if limit < 1 || limit > math.MaxInt32 {
		return nil, fmt.Errorf("zkactor: apply for roles of %q with limit %d: %w", set, limit, ErrBadLimit)
	}
	if props == nil {
		return nil, fmt.Errorf("zkactor: apply for roles of %q: nil props", set)
	}
	id := randomHex(16)
	data, err := proto.Marshal(&rolematchv1.Applicant{Id: id, NodeId: r.reg.NodeID(), Limit: uint32(limit), Since: timestamppb.Now()})
	if err != nil {
		return nil, fmt.Errorf("zkactor: apply for roles of %q: %w", set, err)
	}
	a := &Applicant{
		r: r, set: set, id: id, limit: limit, props: props, data: data,
		log:      r.log.With("set", set, "applicant", id),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		entered:  make(chan struct{}),
		done:     make(chan struct{}),
		held:     map[string]*holding{},
		bad:      map[string]bool{},
		badWatch: map[string]bool{},
		strays:   map[string]bool{},

		specWatches: map[string]<-chan zk.Event{},
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("zkactor: apply for roles of %q: %w", set, cluster.ErrClosed)
	}
	r.applicants[a] = struct{}{}
	r.mu.Unlock()
	// Held for the whole application, so that a role won is held at once
	// (a lease nobody kept fresh needs two probes T/3 apart to come back).
	a.releaseLease = r.s.HoldLease()
	a.stopNotify = r.s.Notify(func(cluster.Event) { a.wakeUp() })
	go a.run()
	select {
	case <-a.entered:
	case <-ctx.Done():
		_ = a.Stop(context.Background())
		return nil, fmt.Errorf("zkactor: apply for roles of %q: %w", set, context.Cause(ctx))
	}
	a.mu.Lock()
	err = a.enterErr
	a.mu.Unlock()
	if err != nil {
		<-a.done
		return nil, fmt.Errorf("zkactor: apply for roles of %q: %w", set, err)
	}
	return a, nil
}

// ID is the application's id: its znode's name, and the Applicant of its
// holders.
func (a *Applicant) ID() string { return a.id }

// Holding returns the roles the application holds or is releasing, sorted.
func (a *Applicant) Holding() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.held))
	for role := range a.held {
		out = append(out, role)
	}
	sort.Strings(out)
	return out
}

// Stop ends the application: every holder stops, then its assignment and
// the application's znode are deleted (or left to the session's end when
// ZooKeeper cannot be reached). It returns when that is done or ctx ends.
func (a *Applicant) Stop(ctx context.Context) error {
	a.quitOnce.Do(func() { close(a.quit) })
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkactor: stop applicant %s of %q: %w", a.id, a.set, context.Cause(ctx))
	}
}

func (a *Applicant) wakeUp() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Applicant) signalEntered(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.entered:
		return
	default:
	}
	a.enterErr = err
	close(a.entered)
}

// run is the application's loop: keep the applicant znode, list the specs
// and the assignments (watched), release the roles that were removed, and
// try to take a free role while there is room.
func (a *Applicant) run() {
	defer a.finish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		s := a.r.s
		a.reap()
		select {
		case <-a.r.el.Closed():
			// Seen here, not only when a try is refused a tenure: an
			// application that holds nothing and sees no free role would
			// never try, and would linger with its room.
			a.over = true
		default:
		}
		if a.over {
			a.log.Info("the elections closed: the application ends")
			return
		}
		if !s.Connected() {
			a.wait(ctx, 0)
			continue
		}
		if a.path == "" || a.session != s.ID() {
			if err := a.enter(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("applying", "err", err)
				if refused(err) {
					a.signalEntered(err)
					return
				}
				a.wait(ctx, backoff)
				continue
			}
			a.signalEntered(nil)
		}
		if err := a.refresh(ctx); err != nil {
			a.log.Debug("listing the roles", "err", err)
			a.wait(ctx, backoff)
			continue
		}
		if a.path == "" {
			continue // the applicant znode was deleted by someone else: enter again
		}
		if err := a.sweep(ctx, s.ID()); err != nil {
			a.log.Debug("deleting an assignment whose create was lost", "err", err)
			a.wait(ctx, backoff)
			continue
		}
		if err := a.followSpecs(ctx); err != nil {
			a.log.Debug("reading a held role's new spec", "err", err)
			a.wait(ctx, backoff)
			continue
		}
		a.release()
		d := a.claim(ctx)
		if a.over {
			continue
		}
		a.wait(ctx, d)
	}
}

// wait waits for a watch, a wake-up, or d (0: no timer).
func (a *Applicant) wait(ctx context.Context, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-a.specs.watch: // a watch fires once (go-zookeeper then closes its channel)
		a.specs.watch, a.specs.fresh = nil, false
	case <-a.taken.watch:
		a.taken.watch, a.taken.fresh = nil, false
	case <-a.apps.watch:
		a.apps.watch, a.apps.fresh = nil, false
	case <-a.wake:
	case <-a.r.el.Closed():
	case <-timer:
	case <-ctx.Done():
	}
}

// enter creates the applicant znode (ephemeral, named by the application's
// id, so that a create whose reply was lost finds its own znode).
func (a *Applicant) enter(ctx context.Context) error {
	s := a.r.s
	p := a.r.applicantPath(a.set, a.id)
	var before, after int64
	a.entering = true
	err := s.Do(ctx, cluster.Op{Name: "create", Path: p}, func(conn *zk.Conn) error {
		before = conn.SessionID()
		_, err := zkutil.CreateWithParents(conn, a.r.root, p, a.data, zk.FlagEphemeral, s.ACL())
		after = conn.SessionID()
		return err
	})
	if err == nil && before == after {
		a.path, a.session = p, after
		a.apps.fresh = false // list the applicants after this create: see refresh
		return nil
	}
	if err != nil && !errors.Is(err, zk.ErrNodeExists) && !zkutil.IsTransient(err) {
		return err
	}
	// Unknown outcome, or the session changed during the create: whose is it?
	_, stat, err := a.r.get(ctx, p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("create %s: lost with its session, trying again", p)
	case err != nil:
		return err
	case stat.EphemeralOwner != s.ID():
		return fmt.Errorf("create %s: owned by session %#x, not ours", p, stat.EphemeralOwner)
	}
	a.path, a.session = p, stat.EphemeralOwner
	a.apps.fresh = false
	return nil
}

// refresh lists the specs and the assignments whose watch has fired (or
// that were never listed), leaving a new watch.
func (a *Applicant) refresh(ctx context.Context) error {
	// One change often fires several watches at once (a dead applicant's
	// assignments and its own znode go in one transaction): see them all
	// before deciding anything.
	a.specs.poll()
	a.taken.poll()
	a.apps.poll()
	if !a.specs.fresh {
		if err := a.list(ctx, a.r.specsPath(a.set), &a.specs); err != nil {
			return err
		}
		a.mu.Lock()
		clear(a.bad) // the specs changed: try every role again
		for role, h := range a.held {
			if h.specGone && a.specs.names[role] {
				h.specGone, h.specStale = false, true // removed and posted again
			}
		}
		a.mu.Unlock()
		for role, w := range a.specWatches {
			if !a.specs.names[role] || fired(w) {
				delete(a.specWatches, role) // removed: its watch fires (or has)
			}
		}
	}
	if !a.taken.fresh {
		if err := a.list(ctx, a.r.assignmentsPath(a.set), &a.taken); err != nil {
			return err
		}
	}
	if !a.apps.fresh {
		if err := a.list(ctx, a.r.applicantsPath(a.set), &a.apps); err != nil {
			return err
		}
		a.pending = "" // the herd order changed
		if a.path != "" && !a.apps.names[a.id] {
			// Listed after our create (enter marks the view stale), so
			// someone else deleted it: without it the application is
			// missing from Applicants and from everyone's herd order.
			a.log.Warn("the applicant znode was deleted by someone else: applying again", "path", a.path)
			a.path = ""
		}
	}
	return nil
}

// poll marks the view stale if its watch has fired.
func (v *view) poll() {
	select {
	case <-v.watch:
		v.watch, v.fresh = nil, false
	default:
	}
}

// list reads dir's children with a watch; a dir that does not exist has
// none, and a watch on its creation.
func (a *Applicant) list(ctx context.Context, dir string, v *view) error {
	s := a.r.s
	for {
		var (
			names []string
			watch <-chan zk.Event
		)
		err := s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			names, _, watch, err = conn.ChildrenW(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			var exists bool
			err = s.Do(ctx, cluster.Op{Name: "exists", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
				var err error
				exists, _, watch, err = conn.ExistsW(dir)
				return err
			})
			if err != nil {
				return err
			}
			if exists {
				continue
			}
		} else if err != nil {
			return err
		}
		v.names = make(map[string]bool, len(names))
		for _, n := range names {
			v.names[n] = true
		}
		v.watch, v.fresh = watch, true
		return nil
	}
}

// release stops the holders of roles that are no longer posted.
func (a *Applicant) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for role, h := range a.held {
		if !a.specs.names[role] && !h.stopping {
			a.log.Info("the role was removed: releasing it", "role", role)
			h.stopping = true
			h.tenure.Stop()
		}
	}
}

// reap forgets the holdings whose tenure has ended: the holder stopped and
// the assignment is deleted (or gone with its session).
func (a *Applicant) reap() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for role, h := range a.held {
		select {
		case <-h.tenure.Done():
		default:
			continue
		}
		delete(a.held, role)
		if w := h.specWatch; w != nil && !fired(w) {
			// Still set: the next try of the role reads the spec
			// without another (go-zookeeper keeps a channel per watch
			// until it fires: a holder that keeps stopping by itself, its
			// role taken again each time, grew one per holding).
			a.specWatches[role] = w
		}
		switch {
		case h.tenure.Lost():
			a.log.Info("the role was lost: its assignment is gone", "role", role)
			continue
		case h.tenure.SelfStopped():
			a.log.Info("the holder stopped by itself: the role is free", "role", role)
		}
		// The tenure deleted its assignment, or handed the delete to the
		// session's reaper (ZooKeeper out of reach, an ACL refusing it):
		// the role counts against the limit until a read shows it gone.
		a.strays[role] = true
	}
}

// finish ends the application: every holder stops and its assignment is
// deleted, then the applicant znode.
func (a *Applicant) finish() {
	a.mu.Lock()
	hs := make([]*holding, 0, len(a.held))
	for _, h := range a.held {
		hs = append(hs, h)
	}
	a.mu.Unlock()
	for _, h := range hs {
		h.tenure.Stop()
	}
	for _, h := range hs {
		<-h.tenure.Done()
	}
	a.mu.Lock()
	clear(a.held)
	a.mu.Unlock()
	a.stopNotify()
	a.releaseLease()
	s := a.r.s
	if session := s.ID(); len(a.strays) > 0 && session != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
		err := cluster.ErrNotConnected
		if s.Connected() {
			err = a.sweep(ctx, session)
		}
		cancel()
		if err != nil {
			a.log.Warn("deleting assignments whose create was lost once connected (they go with the session at the latest)", "err", err)
			a.sweepLater(session)
		}
	}
	// Whenever a create was sent, not only when its reply came: a create
	// given up (Apply's ctx ended, the reply lost) may have been applied.
	// The path is this application's alone, so deleting what the current
	// session owns there is safe.
	if session := s.ID(); a.entering && session != 0 {
		p := a.r.applicantPath(a.set, a.id)
		ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
		err := cluster.ErrNotConnected
		if s.Connected() {
			err = s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
				ok, stat, err := conn.Exists(p)
				if err != nil || !ok || stat.EphemeralOwner != session {
					return err
				}
				return zkutil.Delete(conn, p, stat.Version)
			})
		}
		cancel()
		if err != nil {
			a.log.Warn("deleting the applicant znode once connected (it goes with the session at the latest)", "err", err)
			s.DeleteWhenConnected(p)
		}
	}
	a.r.mu.Lock()
	delete(a.r.applicants, a)
	a.r.mu.Unlock()
	a.signalEntered(cluster.ErrClosed)
	close(a.done)
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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
