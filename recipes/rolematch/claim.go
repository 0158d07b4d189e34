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
	"github.com/zkactor/zkactor/internal/plumbing"
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

// testHookBeforeCreate, when a test sets it, runs just before an
// assignment's create is sent.
var testHookBeforeCreate func(path string)

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
	if testHookBeforeCreate != nil {
		testHookBeforeCreate(p)
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
