package rolematch

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
)

// herdStep orders the applicants that race for a freed role: an
// applicant waits herdStep for every applicant ranked before it for
// that role (rendezvous hashing of the role and the applicants' ids)
// and for every role it already holds. One applicant, the first ranked
// among the least loaded, tries at once; the others usually see its
// assignment (their watch fires) before their turn and send nothing.
const herdStep = 10 * time.Millisecond

// claim tries to take one free role when there is room, in herd order
// (see herdStep). It returns how long to wait before the next try, 0 for
// no timer.
func (a *Applicant) claim(ctx context.Context) time.Duration {
	a.mu.Lock()
	// A stray (an assignment of ours that may exist, not held) counts until
	// it is known to be gone: the limit counts assignments, not holders.
	held := len(a.held) + len(a.strays)
	var free []string
	for role := range a.specs.names {
		if !a.taken.names[role] && a.held[role] == nil && !a.bad[role] && !a.strays[role] {
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

// testHookBeforeCreate, when a test sets it, runs just before an
// assignment's create is sent.
var testHookBeforeCreate func(path string)

// testHookAfterCreate, when a test sets it, runs once an assignment's
// create has an outcome: won, or not (err nil: another applicant holds it).
var testHookAfterCreate func(path string, won bool, err error)

// testHookStrayKept, when a test sets it, runs when an assignment of the
// application's that it no longer holds could not be deleted (refused)
// and keeps counting against the limit.
var testHookStrayKept func(path string)

// testHookUnusableSpec, when a test sets it, runs when a role is skipped
// because its spec cannot be decoded.
var testHookUnusableSpec func(role string)

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
	// With a data watch: if the role is won, it tells of the spec's next
	// change (followSpecs); if not, it stays set until then, and is used
	// again if the role is tried again before (see specWatches).
	var (
		data  []byte
		stat  *zk.Stat
		watch = a.specWatches[role]
		err   error
	)
	if watch != nil && !fired(watch) {
		data, stat, err = a.r.get(ctx, a.r.specPath(a.set, role))
	} else {
		delete(a.specWatches, role)
		data, stat, watch, err = a.r.getW(ctx, a.r.specPath(a.set, role))
		if err == nil {
			a.specWatches[role] = watch
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		return true // removed meanwhile: the specs watch fires
	}
	if errors.Is(err, zk.ErrNoAuth) {
		// Retrying cannot cure it, and retrying it first (it ranks first
		// again) would starve every other free role: skip it as garbage
		// is skipped (exists needs no permission, so its watch works).
		a.log.Warn("skipping a role whose spec this session may not read", "role", role, "err", err)
		if !a.watchBad(ctx, role, 0) {
			return false
		}
		a.wakeUp()
		return true
	}
	if err != nil {
		a.log.Debug("reading a role's spec", "role", role, "err", err)
		return false
	}
	spec, err := decodeRole(data)
	if err != nil {
		a.log.Warn("skipping a role whose spec zkactor cannot read", "role", role, "err", err)
		if !a.watchBad(ctx, role, stat.Mzxid) {
			return false
		}
		if testHookUnusableSpec != nil {
			testHookUnusableSpec(role)
		}
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
	if testHookBeforeCreate != nil {
		testHookBeforeCreate(p)
	}
	session, won, err := a.create(ctx, role, p, rec)
	if testHookAfterCreate != nil {
		testHookAfterCreate(p, won, err)
	}
	if err != nil || !won {
		tenure.Stop()
		if err != nil {
			a.log.Debug("taking a role", "role", role, "err", err)
		}
		return err == nil
	}
	st := &specState{set: a.set, role: role, path: p, latest: spec, version: stat.Mzxid}
	// followSpec is outside the guard (which the tenure adds last), so
	// that it sees what the guard hands back for the next actor again.
	props := a.props.Clone(actor.WithReceiverMiddleware(followSpec(st)), actor.WithContextDecorator(announce(st)))
	h := &holding{role: role, tenure: tenure, spec: st, specWatch: watch}
	delete(a.specWatches, role) // the holding's now
	a.mu.Lock()
	a.held[role] = h
	a.mu.Unlock()
	a.taken.names[role] = true
	a.watchSpec(ctx, h, watch)
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
// names this application. Unless the server refused the create, it may
// have been applied while its outcome stays unknown (the reply lost and
// the read after it failed, or Do gave up waiting: ctx ended): the role is
// then a stray, which the loop or finish deletes (sweep). A late outcome
// alone cannot be relied on: Do may stop waiting just as the create
// finishes, and the connection's end reports an applied create as an error.
func (a *Applicant) create(ctx context.Context, role, p string, data []byte) (session int64, won bool, err error) {
	s := a.r.s
	var before, after int64
	err = s.Do(ctx, cluster.Op{Name: "create", Path: p}, func(conn *zk.Conn) error {
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
	case refused(err):
		return 0, false, err
	}
	a.strays[role] = true
	if err != nil && !zkutil.IsTransient(err) {
		return 0, false, err
	}
	got, stat, err := a.r.get(ctx, p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		delete(a.strays, role)
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	delete(a.strays, role) // read after the create: known now
	rec, derr := decodeAssignment(got)
	if derr != nil || rec.Applicant != a.id || stat.EphemeralOwner != s.ID() {
		return 0, false, nil
	}
	return stat.EphemeralOwner, true, nil
}

// watchBad marks role's spec unusable until it changes: a data watch on
// the spec wakes the loop to try the role again (re-posting a role sets
// its data, which changes no listing). mzxid is the version of the spec
// that was read (0: none could be read); one that changed since is tried
// again at once. It reports false when the loop should retry after a
// backoff.
func (a *Applicant) watchBad(ctx context.Context, role string, mzxid int64) bool {
	a.mu.Lock()
	watched := a.badWatch[role]
	if watched {
		a.bad[role] = true
	}
	a.mu.Unlock()
	if watched {
		return true
	}
	p := a.r.specPath(a.set, role)
	var (
		found bool
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err := a.r.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, watch, err = conn.ExistsW(p)
		return err
	})
	if err != nil {
		return false
	}
	a.mu.Lock()
	a.badWatch[role] = true
	if found && (mzxid == 0 || stat.Mzxid == mzxid) {
		a.bad[role] = true
	}
	a.mu.Unlock()
	go func() { // ends when the spec changes (or the session ends) or with the application
		select {
		case <-watch:
		case <-ctx.Done():
		}
		a.mu.Lock()
		delete(a.bad, role)
		delete(a.badWatch, role)
		a.mu.Unlock()
		a.wakeUp()
	}()
	return true
}

// sweep deletes the strays of this application (see create and reap) that
// session owns, and forgets those that are gone or not ours. A stray whose
// delete is refused (an ACL) is kept, so that it still counts against the
// limit while it exists, but not retried until the loop runs again (the
// assignments' listing changes when it goes).
func (a *Applicant) sweep(ctx context.Context, session int64) error {
	for role := range a.strays {
		if a.held[role] != nil {
			delete(a.strays, role) // held after all
			continue
		}
		p := a.r.assignmentPath(a.set, role)
		err := a.deleteIfOurs(ctx, p, session)
		switch {
		case refused(err):
			a.log.Warn("an assignment of ours that may not be deleted: it counts against the limit while it exists", "path", p, "err", err)
			if testHookStrayKept != nil {
				testHookStrayKept(p)
			}
		case err != nil:
			return err
		default:
			delete(a.strays, role)
		}
	}
	return nil
}

// deleteIfOurs deletes the assignment p if session owns it and it names
// this application: nobody else's assignment of the role, nor one of
// another application on this node's session, is touched.
func (a *Applicant) deleteIfOurs(ctx context.Context, p string, session int64) error {
	return a.r.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		data, stat, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNoAuth) {
			return nil // gone, or not ours: we create ours readable
		}
		if err != nil {
			return err
		}
		if rec, derr := decodeAssignment(data); stat.EphemeralOwner != session || derr != nil || rec.Applicant != a.id {
			return nil
		}
		a.log.Info("deleting an assignment whose create was lost", "path", p)
		err = conn.Delete(p, stat.Version)
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
			return nil
		}
		return err
	})
}

// sweepLater sweeps the strays left when the application ended while
// ZooKeeper could not be reached, once connected on session. The goroutine
// belongs to the session: it ends once they are gone, with the session
// (which takes them along), or when the Session is closed.
func (a *Applicant) sweepLater(session int64) {
	s := a.r.s
	go func() {
		t := time.NewTicker(backoff)
		defer t.Stop()
		for {
			if id := s.ID(); id != session && id != 0 {
				return
			}
			if s.Connected() {
				ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
				err := a.sweep(ctx, session)
				cancel()
				if err == nil {
					return
				}
			}
			select {
			case <-s.Done():
				return
			case <-t.C:
			}
		}
	}()
}
