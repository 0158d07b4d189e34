package rolematch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
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
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
)

const (
	// backoff is how long the loop waits before it retries a request that
	// failed, unless something wakes it first.
	backoff = 100 * time.Millisecond
	// herdStep orders the applicants that race for a freed role: an
	// applicant waits herdStep for every applicant ranked before it for
	// that role (rendezvous hashing of the role and the applicants' ids)
	// and for every role it already holds. One applicant, the first ranked
	// among the least loaded, tries at once; the others usually see its
	// assignment (their watch fires) before their turn and send nothing.
	herdStep = 10 * time.Millisecond
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

	// Owned by the loop.
	path      string // the applicant znode, "" = none
	session   int64  // the session that owns path
	specs     view
	taken     view
	apps      view            // the applicants, for the herd order
	bad       map[string]bool // roles whose spec is unusable, until the specs change
	over      bool            // the Elections closed: no holder can start any more
	pending   string          // the role the loop means to try at notBefore
	notBefore time.Time       // when the next create may be tried (herd order)
}

// holding is one role held by the application.
type holding struct {
	role     string
	tenure   *global.Tenure
	stopping bool
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
		log:     r.log.With("set", set, "applicant", id),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		entered: make(chan struct{}),
		done:    make(chan struct{}),
		held:    map[string]*holding{},
		bad:     map[string]bool{},
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
		a.release()
		d := a.claim(ctx)
		if a.over {
			a.log.Info("the elections closed: the application ends")
			return
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
	err := s.Do(ctx, cluster.Op{Name: "create", Path: p}, func(conn *zk.Conn) error {
		before = conn.SessionID()
		_, err := zkutil.CreateWithParents(conn, a.r.root, p, a.data, zk.FlagEphemeral, s.ACL())
		after = conn.SessionID()
		return err
	})
	if err == nil && before == after {
		a.path, a.session = p, after
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
		clear(a.bad) // the specs changed: try every role again
	}
	if !a.taken.fresh {
		if err := a.list(ctx, a.r.assignmentsPath(a.set), &a.taken); err != nil {
			return err
		}
		clear(a.bad) // (a re-posted spec changes no listing: look again now and then)
	}
	if !a.apps.fresh {
		if err := a.list(ctx, a.r.applicantsPath(a.set), &a.apps); err != nil {
			return err
		}
		a.pending = "" // the herd order changed
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
		switch {
		case h.tenure.Lost():
			a.log.Info("the role was lost: its assignment is gone", "role", role)
		case h.tenure.SelfStopped():
			a.log.Info("the holder stopped by itself: the role is free", "role", role)
		}
	}
}

// claim tries to take one free role when there is room, in herd order
// (see herdStep). It returns how long to wait before the next try, 0 for
// no timer.
func (a *Applicant) claim(ctx context.Context) time.Duration {
	a.mu.Lock()
	held := len(a.held)
	var free []string
	for role := range a.specs.names {
		if !a.taken.names[role] && a.held[role] == nil && !a.bad[role] {
			free = append(free, role)
		}
	}
	a.mu.Unlock()
	if held >= a.limit || len(free) == 0 {
		a.pending, a.notBefore = "", time.Time{}
		return 0
	}
	sort.Strings(free)
	if len(free) > maxRanked {
		free = free[:maxRanked]
	}
	role, delay := "", time.Duration(math.MaxInt64)
	for _, f := range free {
		if d := a.herdDelay(f, held); d < delay || d == delay && f < role {
			role, delay = f, d
		}
	}
	now := time.Now()
	if role != a.pending {
		a.pending, a.notBefore = role, now.Add(delay)
	}
	if now.Before(a.notBefore) {
		return a.notBefore.Sub(now)
	}
	a.pending, a.notBefore = "", time.Time{}
	if !a.try(ctx, role) {
		return backoff
	}
	return 0
}

// maxRanked bounds the free roles an applicant ranks itself for at once
// (the first by name, when more are free: at the start of a large set).
const maxRanked = 64

// herdDelay is how long this applicant lets others go first for role:
// herdStep for each applicant ranked before it (rendezvous hashing of role
// and applicant ids, so every applicant computes the same order without
// reading anything but the applicants' names) and for each role it holds,
// plus a millisecond per rank to break ties.
func (a *Applicant) herdDelay(role string, held int) time.Duration {
	mine := rendezvous(role, a.id)
	rank := 0
	for id := range a.apps.names {
		if id != a.id && rendezvous(role, id) < mine {
			rank++
		}
	}
	return time.Duration(rank+held)*herdStep + time.Duration(rank)*time.Millisecond
}

// rendezvous is the weight of applicant id for role.
func rendezvous(role, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(role))
	h.Write([]byte{'/'})
	h.Write([]byte(id))
	return h.Sum64()
}

// try creates role's assignment; if it wins, the holder starts as a
// tenure of the node's Elections. It reports false when the loop should
// retry after a backoff (a request failed); a lost race, a removed role and
// a won one need none, as the watches fire, and a role whose spec is
// garbage is skipped at once.
func (a *Applicant) try(ctx context.Context, role string) bool {
	data, _, err := a.r.get(ctx, a.r.specPath(a.set, role))
	if errors.Is(err, zk.ErrNoNode) {
		return true // removed meanwhile: the specs watch fires
	}
	if err != nil {
		a.log.Debug("reading a role's spec", "role", role, "err", err)
		return false
	}
	spec, err := decodeRole(data)
	if err != nil {
		a.log.Warn("skipping a role whose spec zkactor cannot read", "role", role, "err", err)
		a.bad[role] = true
		a.wakeUp() // look at the other free roles
		return true
	}
	tenure, err := a.r.el.NewTenure("role "+a.set+"/"+role, "role-"+role)
	if errors.Is(err, cluster.ErrClosed) {
		a.over = true
		return true
	}
	if err != nil {
		a.log.Warn("preparing a holder", "role", role, "err", err)
		return false
	}
	p := a.r.assignmentPath(a.set, role)
	rec, err := proto.Marshal(&rolematchv1.Assignment{
		Role: role, Holder: pidRecord(tenure.PID()), NodeId: a.r.reg.NodeID(), Applicant: a.id, Since: timestamppb.Now(),
	})
	if err != nil {
		tenure.Stop()
		a.log.Error("encoding an assignment", "role", role, "err", err)
		return false
	}
	session, won, err := a.create(ctx, p, rec)
	if err != nil || !won {
		tenure.Stop()
		if err != nil {
			a.log.Debug("taking a role", "role", role, "err", err)
		}
		return err == nil
	}
	props := a.props.Clone(actor.WithContextDecorator(announce(assigned(a.set, role, p, spec))))
	h := &holding{role: role, tenure: tenure}
	a.mu.Lock()
	a.held[role] = h
	a.mu.Unlock()
	a.taken.names[role] = true
	tenure.Start(p, session, props)
	a.log.Debug("took a role", "role", role, "pid", tenure.PID().String())
	go func() { // ends with the tenure, which ends at the latest with the application
		<-tenure.Done()
		a.wakeUp()
	}()
	return true
}

// create creates the assignment znode: exactly one applicant's create
// succeeds. After a lost reply, or a session that changed during the
// create, the znode is ours if the current session owns it and its data
// names this application.
func (a *Applicant) create(ctx context.Context, p string, data []byte) (session int64, won bool, err error) {
	s := a.r.s
	var before, after int64
	late := func(err error) {
		if err == nil { // landed after the loop gave up: not held by anyone
			s.DeleteWhenConnected(p)
		}
	}
	err = plumbing.DoLate(ctx, s, "create", p, late, func(conn *zk.Conn) error {
		before = conn.SessionID()
		_, err := zkutil.CreateWithParents(conn, a.r.root, p, data, zk.FlagEphemeral, s.ACL())
		after = conn.SessionID()
		return err
	})
	switch {
	case err == nil && before == after:
		return after, true, nil
	case errors.Is(err, zk.ErrNodeExists):
		return 0, false, nil
	case err != nil && !zkutil.IsTransient(err):
		return 0, false, err
	}
	got, stat, err := a.r.get(ctx, p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	rec, derr := decodeAssignment(got)
	if derr != nil || rec.Applicant != a.id || stat.EphemeralOwner != s.ID() {
		return 0, false, nil
	}
	return stat.EphemeralOwner, true, nil
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
	if a.path != "" && a.session == a.r.s.ID() {
		s := a.r.s
		p, session := a.path, a.session
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
