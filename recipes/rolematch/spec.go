package rolematch

import (
	"context"
	"errors"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
)

// specState is a holding's spec: the latest the application has read
// (written by its loop) and what the holder's current actor has been shown
// (written on the actor's goroutine, by announce and followSpec). The loop
// updates latest before it sends the SpecChanged that carries it, so an
// actor that starts in between shows it in its Assigned and the
// SpecChanged, as old as that, is dropped: each version reaches an actor
// once, in order, and never after a newer one.
type specState struct {
	set, role, path string

	mu        sync.Mutex
	latest    *rolematchv1.Role
	version   int64 // the spec znode's mzxid when latest was read
	epoch     int64 // the holding's, once an actor has been announced
	announced bool  // the current actor has had its Assigned
	shown     int64 // the version the current actor has
	// actor is the context of the current actor: a Started in the same
	// context is a restart by the supervisor (a panic), not a new actor.
	actor actor.ReceiverContext
}

// assigned builds the Assigned of an actor that starts now, with the
// latest spec, and records that the actor has it.
func (st *specState) assigned(epoch int64) *rolematchv1.Assigned {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.announced, st.shown, st.epoch = true, st.version, epoch
	m := assigned(st.set, st.role, st.path, st.latest)
	m.Epoch, m.SpecVersion = epoch, st.version
	return m
}

// update makes spec, read at version, the latest, and returns the
// SpecChanged that tells the holder; nil if version is not newer than the
// latest.
func (st *specState) update(spec *rolematchv1.Role, version int64) *rolematchv1.SpecChanged {
	st.mu.Lock()
	defer st.mu.Unlock()
	if version <= st.version {
		return nil
	}
	st.latest, st.version = spec, version
	m := &rolematchv1.SpecChanged{Set: st.set, Role: st.role, Version: version}
	switch s := spec.GetSpec().(type) {
	case *rolematchv1.Role_Data:
		m.Spec = &rolematchv1.SpecChanged_Data{Data: s.Data}
	case *rolematchv1.Role_Message:
		m.Spec = &rolematchv1.SpecChanged_Message{Message: s.Message}
	}
	return m
}

// followSpec is a holder's receiver middleware, outside the tenure's guard:
// it lets a SpecChanged of the role through only to an actor that has had
// its Assigned and has an older spec, stamped with the holding's epoch. An
// actor not yet announced gets the latest spec in its Assigned, which the
// guard hands it first; a SpecChanged the guard puts back for the next
// actor (the lease ran out) meets an actor not yet announced, and goes.
func followSpec(st *specState) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch m := env.Message.(type) {
			case *actor.Started:
				st.mu.Lock()
				// A supervisor's restart (after a panic) keeps the actor's
				// context and its holding: the guard announces a term once,
				// so no second Assigned comes, and the restarted actor must
				// go on getting the changes newer than the spec it was
				// shown. Only a new actor (a new context under the same PID,
				// after the lease ran out) waits for its Assigned.
				if st.actor != ctx {
					st.actor, st.announced, st.shown = ctx, false, 0
				}
				st.mu.Unlock()
			case *rolematchv1.SpecChanged:
				if m.GetSet() == st.set && m.GetRole() == st.role {
					st.mu.Lock()
					pass := st.announced && m.GetVersion() > st.shown
					if pass {
						st.shown = m.GetVersion()
						m = proto.Clone(m).(*rolematchv1.SpecChanged)
						m.Epoch = st.epoch
					}
					st.mu.Unlock()
					if !pass {
						return
					}
					env = &actor.MessageEnvelope{Header: env.Header, Message: m, Sender: env.Sender}
				}
			}
			next(ctx, env)
		}
	}
}

// watchSpec waits, on a goroutine of the application's, for the spec's
// data watch of a held role to fire, and marks the holding's spec stale
// then, for the loop to read it again (rereadSpec). It ends when the watch
// fires, with the holding, or with the application.
func (a *Applicant) watchSpec(ctx context.Context, h *holding, watch <-chan zk.Event) {
	go func() {
		select {
		case <-watch:
		case <-h.tenure.Done():
			return
		case <-ctx.Done():
			return
		}
		a.mu.Lock()
		h.specStale = true
		a.mu.Unlock()
		a.wakeUp()
	}()
}

// followSpecs reads again the specs of the held roles whose data watch
// fired, and tells each holder of a newer spec. One read per holding whose
// spec changed, however many changes the watch window saw: the holder gets
// the latest.
func (a *Applicant) followSpecs(ctx context.Context) error {
	a.mu.Lock()
	var stale []*holding
	for _, h := range a.held {
		if h.specStale && !h.stopping {
			stale = append(stale, h)
		}
	}
	a.mu.Unlock()
	for _, h := range stale {
		if err := a.rereadSpec(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// rereadSpec reads h's spec with a new data watch and sends the holder a
// SpecChanged if it is newer than the one it has. A spec that is gone
// (the role is being removed: the specs listing releases it) is not
// watched: the specs listing tells if it is posted again (refresh). One
// that cannot be decoded, or read, is skipped with a warning, and the
// holder keeps the spec it has.
func (a *Applicant) rereadSpec(ctx context.Context, h *holding) error {
	p := a.r.specPath(a.set, h.role)
	var (
		data  []byte
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err := a.r.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		data, stat, watch, err = conn.GetW(p)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		// Removed: the specs listing releases the role. No exists watch
		// for its return: the role may never come back, and the watch
		// would stay (in go-zookeeper and on the server) for the session's
		// life, one per role that came and went. The specs listing, whose
		// watch the delete fired, tells if it is posted again (refresh).
		a.mu.Lock()
		h.specStale, h.specGone = false, true
		a.mu.Unlock()
		return nil
	}
	if errors.Is(err, zk.ErrNoAuth) {
		// exists needs no permission, and watches the znode.
		var exists bool
		err = a.r.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			exists, _, watch, err = conn.ExistsW(p)
			return err
		})
		if err != nil {
			return err
		}
		if exists {
			a.log.Warn("the role's new spec is not readable by this session: its holder keeps the spec it has", "role", h.role)
		}
		a.specFollowed(ctx, h, watch)
		return nil
	}
	if err != nil {
		return err
	}
	a.specFollowed(ctx, h, watch)
	spec, err := decodeRole(data)
	if err != nil {
		a.log.Warn("the role's new spec cannot be decoded: its holder keeps the spec it has", "role", h.role, "err", err)
		if testHookUnusableSpec != nil {
			testHookUnusableSpec(h.role)
		}
		return nil
	}
	if m := h.spec.update(spec, stat.Mzxid); m != nil {
		a.log.Debug("telling the holder of its role's new spec", "role", h.role, "version", stat.Mzxid)
		a.r.system.Root.Send(h.tenure.PID(), m)
	}
	return nil
}

// fired reports whether the watch w has fired (go-zookeeper sends its one
// event and closes the channel).
func fired(w <-chan zk.Event) bool {
	select {
	case <-w:
		return true
	default:
		return false
	}
}

// specFollowed marks h's spec read, with watch set on it.
func (a *Applicant) specFollowed(ctx context.Context, h *holding, watch <-chan zk.Event) {
	a.mu.Lock()
	h.specStale = false
	a.mu.Unlock()
	h.specWatch = watch
	a.watchSpec(ctx, h, watch)
}
