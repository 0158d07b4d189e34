package rolematch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/zkutil"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
)

// MaxSpecSize bounds a role's spec, in bytes of its record: specs are read
// by every applicant that tries the role, and ZooKeeper drops connections
// that carry znodes near 1 MiB.
const MaxSpecSize = 64 << 10

// ErrBadLimit: Apply was asked to hold fewer than one role (or more than
// 2³¹−1).
var ErrBadLimit = errors.New("zkactor: role match: limit out of range")

// Options configures Roles.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Roles is a node's side of role matching: the controller's verbs (Post,
// Remove), the observers' (Holders, Posted, Applicants) and the
// applicants' (Apply). It borrows the registry's session and actor system,
// and runs holders as tenures of the node's Elections (package global), so
// that a holder is guarded by the session's lease as a global is.
type Roles struct {
	system *actor.ActorSystem
	reg    *cluster.Registry
	el     *global.Elections
	s      *cluster.Session
	root   string
	log    *slog.Logger

	mu         sync.Mutex
	applicants map[*Applicant]struct{}
	closed     bool
}

// Role is a role to post: a name and a spec, given as bytes (Data) or as a
// protobuf message (Message, stored as an Any), or neither.
type Role struct {
	Name    string
	Data    []byte
	Message proto.Message
}

// Holder is who holds a role, as Holders reads it from the role's
// assignment znode.
type Holder struct {
	Role string
	// PID of the holder actor; nil when the assignment's data is not an
	// Assignment zkactor can read, or this session may not read it (the
	// role is taken all the same).
	PID *actor.PID
	// NodeID is the node the holder runs on, Applicant the application
	// that won the role.
	NodeID    string
	Applicant string
	// Epoch is the assignment znode's creation zxid, the epoch the holder
	// got in its Assigned message.
	Epoch int64
	// Session is the ZooKeeper session that owns the assignment.
	Session int64
}

// ApplicantInfo is an application as Applicants reads it.
type ApplicantInfo struct {
	ID     string
	NodeID string
	Limit  int
	Held   int // roles whose assignment names this application
}

// New starts the role matching of a node on reg's session and system,
// running holders as tenures of el.
func New(system *actor.ActorSystem, reg *cluster.Registry, el *global.Elections, opts Options) *Roles {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Roles{
		system:     system,
		reg:        reg,
		el:         el,
		s:          reg.Session(),
		root:       reg.Layout().Root,
		log:        opts.Logger.With("node", reg.NodeID(), "recipe", "rolematch"),
		applicants: map[*Applicant]struct{}{},
	}
}

func (r *Roles) setPath(set string) string              { return r.root + "/roles/" + set }
func (r *Roles) specsPath(set string) string            { return r.setPath(set) + "/specs" }
func (r *Roles) specPath(set, role string) string       { return r.specsPath(set) + "/" + role }
func (r *Roles) assignmentsPath(set string) string      { return r.setPath(set) + "/assignments" }
func (r *Roles) assignmentPath(set, role string) string { return r.assignmentsPath(set) + "/" + role }
func (r *Roles) applicantsPath(set string) string       { return r.setPath(set) + "/applicants" }
func (r *Roles) applicantPath(set, id string) string    { return r.applicantsPath(set) + "/" + id }

// Post creates the roles of set, or replaces their specs if they exist. A
// role's holder keeps running when its spec is replaced, and receives a
// *rolematchv1.SpecChanged with the new spec (the latest, when several
// replacements land before its applicant reads it); the next holder gets
// the new one in its Assigned. Applicants with room take new roles within
// a moment.
func (r *Roles) Post(ctx context.Context, set string, roles ...Role) error {
	if err := cluster.ValidateName(set); err != nil {
		return fmt.Errorf("zkactor: post roles of %q: %w", set, err)
	}
	for _, role := range roles {
		if err := cluster.ValidateName(role.Name); err != nil {
			return fmt.Errorf("zkactor: post role %q of %q: %w", role.Name, set, err)
		}
		rec := &rolematchv1.Role{Name: role.Name, PostedAt: timestamppb.Now()}
		switch {
		case role.Data != nil && role.Message != nil:
			return fmt.Errorf("zkactor: post role %q of %q: a spec is bytes or a message, not both", role.Name, set)
		case role.Message != nil:
			a, err := anypb.New(role.Message)
			if err != nil {
				return fmt.Errorf("zkactor: post role %q of %q: %w", role.Name, set, err)
			}
			rec.Spec = &rolematchv1.Role_Message{Message: a}
		case role.Data != nil:
			rec.Spec = &rolematchv1.Role_Data{Data: role.Data}
		}
		data, err := proto.Marshal(rec)
		if err != nil {
			return fmt.Errorf("zkactor: post role %q of %q: %w", role.Name, set, err)
		}
		if len(data) > MaxSpecSize {
			return fmt.Errorf("zkactor: post role %q of %q: %d bytes, at most %d: %w", role.Name, set, len(data), MaxSpecSize, cluster.ErrTooLarge)
		}
		p := r.specPath(set, role.Name)
		err = r.s.Do(ctx, cluster.Op{Name: "create", Path: p}, func(conn *zk.Conn) error {
			_, err := zkutil.CreateWithParents(conn, r.root, p, data, 0, r.s.ACL())
			return err
		})
		if errors.Is(err, zk.ErrNodeExists) {
			err = r.s.Do(ctx, cluster.Op{Name: "set", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
				_, err := conn.Set(p, data, -1)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("zkactor: post role %q of %q: %w", role.Name, set, err)
		}
	}
	return nil
}

// Remove deletes a role of set. Its holder is stopped and its assignment
// deleted by the applicant that holds it, as soon as that applicant's
// watch fires; Remove does not wait for that. Removing a role that does
// not exist is not an error.
func (r *Roles) Remove(ctx context.Context, set, role string) error {
	if err := cluster.ValidateName(set); err != nil {
		return fmt.Errorf("zkactor: remove role %q of %q: %w", role, set, err)
	}
	if err := cluster.ValidateName(role); err != nil {
		return fmt.Errorf("zkactor: remove role %q of %q: %w", role, set, err)
	}
	p := r.specPath(set, role)
	if err := r.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		return zkutil.Delete(conn, p, -1)
	}); err != nil {
		return fmt.Errorf("zkactor: remove role %q of %q: %w", role, set, err)
	}
	return nil
}

// Posted returns the names of the roles posted in set, sorted.
func (r *Roles) Posted(ctx context.Context, set string) ([]string, error) {
	if err := cluster.ValidateName(set); err != nil {
		return nil, fmt.Errorf("zkactor: roles of %q: %w", set, err)
	}
	names, err := r.children(ctx, r.specsPath(set))
	if err != nil {
		return nil, fmt.Errorf("zkactor: roles of %q: %w", set, err)
	}
	return names, nil
}

// Holders returns who holds what in set, sorted by role: one Holder per
// assignment znode. Anyone can call it; it reads ZooKeeper every time
// (one listing and one read per assignment), so that an outside checker
// sees the assignments as they are.
func (r *Roles) Holders(ctx context.Context, set string) ([]Holder, error) {
	if err := cluster.ValidateName(set); err != nil {
		return nil, fmt.Errorf("zkactor: holders of %q: %w", set, err)
	}
	dir := r.assignmentsPath(set)
	names, err := r.children(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("zkactor: holders of %q: %w", set, err)
	}
	out := make([]Holder, 0, len(names))
	for _, name := range names {
		data, stat, err := r.get(ctx, dir+"/"+name)
		if errors.Is(err, zk.ErrNoAuth) {
			// Another client's, under an ACL of its own: taken all the
			// same, by nobody known (exists needs no permission).
			data, stat, err = r.stat(ctx, dir+"/"+name)
		}
		if errors.Is(err, zk.ErrNoNode) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("zkactor: holders of %q: %w", set, err)
		}
		h := Holder{Role: name, Epoch: stat.Czxid, Session: stat.EphemeralOwner}
		if rec, err := decodeAssignment(data); err != nil {
			r.log.Warn("an assignment zkactor cannot read: the role counts as held, by nobody known", "path", dir+"/"+name, "err", err)
		} else {
			h.PID = actor.NewPID(rec.Holder.Address, rec.Holder.Id)
			h.NodeID, h.Applicant = rec.NodeId, rec.Applicant
		}
		out = append(out, h)
	}
	return out, nil
}

// Applicants returns the applications for set, with their limits and how
// many roles each holds now; their room is Limit − Held. Applications
// whose data zkactor cannot read are skipped.
func (r *Roles) Applicants(ctx context.Context, set string) ([]ApplicantInfo, error) {
	holders, err := r.Holders(ctx, set)
	if err != nil {
		return nil, err
	}
	dir := r.applicantsPath(set)
	names, err := r.children(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("zkactor: applicants of %q: %w", set, err)
	}
	held := map[string]int{}
	for _, h := range holders {
		held[h.Applicant]++
	}
	var out []ApplicantInfo
	for _, name := range names {
		data, _, err := r.get(ctx, dir+"/"+name)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if errors.Is(err, zk.ErrNoAuth) {
			r.log.Warn("skipping an application this session may not read", "path", dir+"/"+name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("zkactor: applicants of %q: %w", set, err)
		}
		rec, err := decodeApplicant(data)
		if err != nil {
			r.log.Warn("skipping an application zkactor cannot read", "path", dir+"/"+name, "err", err)
			continue
		}
		out = append(out, ApplicantInfo{ID: name, NodeID: rec.NodeId, Limit: int(rec.Limit), Held: held[name]})
	}
	return out, nil
}

// Close stops every application of this node (their holders stop and
// their assignments are deleted) and returns when that is done or ctx
// ends. It does not close the registry or the elections.
func (r *Roles) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	as := make([]*Applicant, 0, len(r.applicants))
	for a := range r.applicants {
		as = append(as, a)
	}
	r.mu.Unlock()
	var errs []error
	for _, a := range as {
		if err := a.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// children lists dir, sorted; a dir that does not exist has none.
func (r *Roles) children(ctx context.Context, dir string) ([]string, error) {
	var names []string
	err := r.s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		names, _, err = conn.Children(dir)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// stat reads p's stat, with no data (exists needs no permission); a p
// that does not exist is zk.ErrNoNode.
func (r *Roles) stat(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	var (
		ok   bool
		stat *zk.Stat
	)
	err := r.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		ok, stat, err = conn.Exists(p)
		return err
	})
	switch {
	case err != nil:
		return nil, nil, err
	case !ok:
		return nil, nil, zk.ErrNoNode
	}
	return nil, stat, nil
}

// getW reads p with a data watch.
func (r *Roles) getW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	var (
		data  []byte
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err := r.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		data, stat, watch, err = conn.GetW(p)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return data, stat, watch, nil
}

func (r *Roles) get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	var (
		data []byte
		stat *zk.Stat
	)
	err := r.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		data, stat, err = conn.Get(p)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return data, stat, nil
}
