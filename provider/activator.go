package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
	"github.com/zkactor/zkactor/internal/zkutil"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// ActivatorName is the name of every member's activator actor, which
// activates the identities of the kinds its member hosts (ActivateRequest).
const ActivatorName = "zkactor-activator"

// activator is the actor that owns a member's activations; they are its
// children. It never waits on ZooKeeper in Receive: the lookup's goroutines
// do the requests and report back with a message.
//
// One identity's activations on this member follow each other: a new one
// is created only once the previous one's znode is known gone, so the
// activator never deletes a znode that is not the one it created.
type activator struct {
	l       *IdentityLookup
	kinds   map[string]bool
	byKey   map[string]*activation // "<kind>/<identity>" → the activation being made, running or removed
	byID    map[string]*activation // running: PID id → activation
	seq     uint64
	self    *actor.PID
	closing atomic.Bool // the member is going: activate nothing more, delete nothing (the session's end does)
}

type activationState int

const (
	creating activationState = iota
	running
	removing
)

type activation struct {
	info    Activation // PID fixed before the create; Epoch once created
	name    string     // the child's name under the activator
	data    []byte     // the znode's data
	session int64      // owning session, once created
	state   activationState
	waiters []*actor.PID  // requesters waiting for it (nil entries: nobody to answer)
	done    chan struct{} // closed once it stopped running
}

// Messages from the lookup's goroutines back to the activator.
type (
	created struct {
		act     *activation
		err     error
		session int64
		epoch   int64
		other   *Activation // the znode holds another activation
		orphan  bool        // ... which is ours: a leftover of this session
	}
	removed   struct{ act *activation }
	znodeGone struct{ act *activation }
)

func newActivator(l *IdentityLookup, kinds []string) *activator {
	a := &activator{l: l, kinds: map[string]bool{}, byKey: map[string]*activation{}, byID: map[string]*activation{}}
	for _, k := range kinds {
		a.kinds[k] = true
	}
	return a
}

func (a *activator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
	case *pb.ActivateRequest:
		a.request(ctx, m)
	case *created:
		a.created(ctx, m)
	case *removed:
		a.removed(ctx, m.act)
	case *znodeGone:
		if m.act.state == running {
			a.l.log.Warn("an activation's znode is gone (deleted by someone else, or the session ended): stopping it",
				"path", m.act.info.Path, "pid", m.act.info.PID.String())
			ctx.Stop(m.act.info.PID)
		}
	case *actor.Terminated:
		a.terminated(ctx, m.Who)
	}
}

func (a *activator) request(ctx actor.Context, m *pb.ActivateRequest) {
	respondErr := func(err string) {
		if ctx.Sender() != nil {
			ctx.Respond(&pb.ActivateResponse{Error: err})
		}
	}
	switch {
	case a.closing.Load():
		respondErr("the member is shutting down")
		return
	case cluster.ValidateName(m.Kind) != nil || cluster.ValidateName(m.Identity) != nil:
		respondErr(fmt.Sprintf("bad kind or identity name %q/%q", m.Kind, m.Identity))
		return
	case !a.kinds[m.Kind]:
		respondErr(fmt.Sprintf("member %s does not host kind %q", a.l.memberID, m.Kind))
		return
	}
	key := m.Kind + "/" + m.Identity
	if act := a.byKey[key]; act != nil {
		if act.state == running {
			ctx.Respond(a.response(act))
			return
		}
		act.waiters = append(act.waiters, ctx.Sender())
		return
	}
	a.begin(ctx, m.Kind, m.Identity, []*actor.PID{ctx.Sender()})
}

func (a *activator) response(act *activation) *pb.ActivateResponse {
	pid := act.info.PID
	return &pb.ActivateResponse{Pid: &pb.PID{Address: pid.Address, Id: pid.Id}, Epoch: act.info.Epoch, MemberId: act.info.MemberID}
}

func (a *activator) answer(ctx actor.Context, waiters []*actor.PID, res *pb.ActivateResponse) {
	for _, w := range waiters {
		if w != nil {
			ctx.Send(w, res)
		}
	}
}

// begin creates the znode of a new activation, on a lookup goroutine.
func (a *activator) begin(ctx actor.Context, kind, identity string, waiters []*actor.PID) {
	a.seq++
	name := kind + "/" + identity + "$" + strconv.FormatUint(a.seq, 36)
	act := &activation{
		info: Activation{
			Kind: kind, Identity: identity,
			PID:      actor.NewPID(a.self.Address, a.self.Id+"/"+name),
			MemberID: a.l.memberID,
			Path:     ActivationPath(a.l.layout, kind, identity),
		},
		name:    name,
		waiters: waiters,
		done:    make(chan struct{}),
	}
	data, err := proto.Marshal(&pb.Activation{
		Kind: kind, Identity: identity,
		Pid:         &pb.PID{Address: act.info.PID.Address, Id: act.info.PID.Id},
		MemberId:    a.l.memberID,
		ActivatedAt: timestamppb.Now(),
	})
	if err != nil {
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: err.Error()})
		return
	}
	act.data = data
	a.byKey[kind+"/"+identity] = act
	system, self := ctx.ActorSystem(), ctx.Self()
	if !a.l.goWork(func() { system.Root.Send(self, a.l.create(act)) }) {
		delete(a.byKey, kind+"/"+identity)
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: "the member is shutting down"})
	}
}

func (a *activator) created(ctx actor.Context, c *created) {
	act := c.act
	key := act.info.Kind + "/" + act.info.Identity
	waiters := act.waiters
	act.waiters = nil
	switch {
	case c.err != nil:
		a.l.log.Warn("activation failed", "path", act.info.Path, "err", c.err)
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: c.err.Error()})
		// The create may have been applied (a lost connection): make sure.
		a.remove(ctx, act, act.info.PID.Id)
		return
	case c.orphan:
		// Our session holds an activation this activator does not know (a
		// create whose outcome was unknown): delete it, then start again.
		act.waiters = waiters
		a.remove(ctx, act, c.other.PID.Id)
		return
	case c.other != nil:
		delete(a.byKey, key)
		other := c.other
		a.answer(ctx, waiters, &pb.ActivateResponse{
			Pid: &pb.PID{Address: other.PID.Address, Id: other.PID.Id}, Epoch: other.Epoch, MemberId: other.MemberID,
		})
		return
	case a.closing.Load():
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: "the member is shutting down"})
		a.remove(ctx, act, act.info.PID.Id)
		return
	case !leaseHolds(a.l.s, c.session):
		// It could not stop before ZooKeeper might hand it to another.
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: "the member cannot vouch for its ZooKeeper session right now"})
		a.remove(ctx, act, act.info.PID.Id)
		return
	}
	kind, ok := a.l.cluster.TryGetClusterKind(act.info.Kind)
	if !ok {
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: fmt.Sprintf("unknown kind %q", act.info.Kind)})
		a.remove(ctx, act, act.info.PID.Id)
		return
	}
	act.session, act.info.Epoch = c.session, c.epoch
	props := pcluster.WithClusterIdentity(kind.Props, pcluster.NewClusterIdentity(act.info.Identity, act.info.Kind))
	props = withActivation(props, act.info).Configure(actor.WithReceiverMiddleware(guard(a.l.s, c.session, a.l.log)))
	pid, err := ctx.SpawnNamed(props, act.name)
	if err != nil {
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: fmt.Sprintf("spawn: %v", err)})
		a.remove(ctx, act, act.info.PID.Id)
		return
	}
	kind.Inc()
	act.state = running
	a.byID[pid.Id] = act
	a.l.leases.add(c.session, pid)
	if a.closing.Load() {
		// The member died while it spawned (stopActivations may have
		// missed it): its waiters retry elsewhere.
		ctx.Stop(pid)
		a.answer(ctx, waiters, &pb.ActivateResponse{Error: "the member is shutting down"})
		return
	}
	a.answer(ctx, waiters, a.response(act))
	a.l.log.Debug("activated", "path", act.info.Path, "pid", pid.String(), "epoch", act.info.Epoch)
	system, self := ctx.ActorSystem(), ctx.Self()
	a.l.goWork(func() {
		if why := a.l.watchOwn(act); why != "" {
			system.Root.Send(self, &znodeGone{act})
		}
	})
}

func (a *activator) terminated(ctx actor.Context, who *actor.PID) {
	act := a.byID[who.Id]
	if act == nil {
		return
	}
	delete(a.byID, who.Id)
	a.l.leases.remove(act.session, who)
	close(act.done)
	if kind, ok := a.l.cluster.TryGetClusterKind(act.info.Kind); ok {
		kind.Dec()
	}
	a.l.log.Debug("activation stopped", "path", act.info.Path, "pid", who.String())
	a.remove(ctx, act, act.info.PID.Id)
}

// remove deletes act's znode (if it still holds the activation pidID of our
// session) on a lookup goroutine; removed follows. While the member is
// closing nothing is deleted: the session's end does it, at once.
func (a *activator) remove(ctx actor.Context, act *activation, pidID string) {
	act.state = removing
	system, self := ctx.ActorSystem(), ctx.Self()
	if a.closing.Load() || !a.l.goWork(func() {
		a.l.deleteActivation(act.info.Path, pidID)
		system.Root.Send(self, &removed{act})
	}) {
		a.removed(ctx, act)
	}
}

func (a *activator) removed(ctx actor.Context, act *activation) {
	key := act.info.Kind + "/" + act.info.Identity
	if a.byKey[key] == act {
		delete(a.byKey, key)
	}
	if len(act.waiters) > 0 {
		if a.closing.Load() {
			a.answer(ctx, act.waiters, &pb.ActivateResponse{Error: "the member is shutting down"})
			return
		}
		a.begin(ctx, act.info.Kind, act.info.Identity, act.waiters)
	}
}

// create makes act's znode: the spawn lock and the directory record at
// once. It reports whether the znode is act's (with its session and epoch)
// or another activation's. The usual case is one request: a multi of the
// create and a set of the same data, whose reply carries the znode's stat
// (go-zookeeper's create does not return it).
func (l *IdentityLookup) create(act *activation) *created {
	ctx, cancel := context.WithTimeout(l.life, l.p.cfg.RequestTimeout)
	defer cancel()
	path := act.info.Path
	var res created
	err := l.s.Do(ctx, cluster.Op{Name: "create", Path: path, Idempotent: true}, func(c *zk.Conn) error {
		res = created{}
		for attempt := 0; ; attempt++ {
			session := c.SessionID()
			ops, err := c.Multi(
				&zk.CreateRequest{Path: path, Data: act.data, Acl: l.s.ACL(), Flags: zk.FlagEphemeral},
				&zk.SetDataRequest{Path: path, Data: act.data, Version: 0},
			)
			switch {
			case err == nil && len(ops) == 2 && ops[1].Stat != nil:
				res.session, res.epoch = session, ops[1].Stat.Czxid
				return nil
			case errors.Is(err, zk.ErrNoNode):
				// The kind's container is missing (its first activation,
				// or it was reaped empty): make it with the znode.
				if _, err := zkutil.CreateWithParents(c, l.layout.Root, path, act.data, zk.FlagEphemeral, l.s.ACL()); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					return err
				}
			case !errors.Is(err, zk.ErrNodeExists):
				if err == nil {
					err = fmt.Errorf("%w: an unexpected reply to the create", ErrActivationFailed)
				}
				return err
			}
			// Ours (made just above, or by an earlier try whose reply was
			// lost), or another's: the data and owner tell.
			data, stat, err := c.Get(path)
			if errors.Is(err, zk.ErrNoNode) && attempt < 3 {
				continue // deleted in between: try again
			}
			if err != nil {
				return err
			}
			if stat.EphemeralOwner == session && bytes.Equal(data, act.data) {
				res.session, res.epoch = session, stat.Czxid
				return nil
			}
			rec, err := records.Activation(data)
			if err != nil {
				return fmt.Errorf("%w: the znode holds data zkactor cannot read: %w", ErrActivationFailed, err)
			}
			res.other = &Activation{
				Kind: rec.Kind, Identity: rec.Identity,
				PID:      actor.NewPID(rec.Pid.Address, rec.Pid.Id),
				MemberID: rec.MemberId, Epoch: stat.Czxid, Path: path,
			}
			res.orphan = stat.EphemeralOwner == session && rec.MemberId == act.info.MemberID
			return nil
		}
	})
	if err != nil {
		return &created{act: act, err: err}
	}
	res.act = act
	return &res
}

// watchOwn watches a running activation's znode until it stops running
// (""), or the znode is gone or another's (the reason). A data change by
// someone else re-arms the watch. The first watch is armed after the grain
// started: off the activation's critical path. A failed arm is tried
// again (after a short pause) for as long as the lease of the
// activation's session holds; once it ends, the guard and the lease watch
// stop the grain anyway.
func (l *IdentityLookup) watchOwn(act *activation) string {
	backoff := ownWatchBackoff
	for {
		var (
			found bool
			stat  *zk.Stat
			watch <-chan zk.Event
		)
		ctx, cancel := context.WithTimeout(l.life, l.p.cfg.RequestTimeout)
		err := l.s.Do(ctx, cluster.Op{Name: "exists", Path: act.info.Path, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			found, stat, watch, err = c.ExistsW(act.info.Path)
			return err
		})
		cancel()
		switch {
		case err != nil:
			if errors.Is(err, cluster.ErrClosed) || !leaseHolds(l.s, act.session) {
				// The lease decides from here: past it, the grain stops.
				return ""
			}
			l.log.Debug("arming the watch on an activation's znode", "path", act.info.Path, "err", err)
			select {
			case <-act.done:
				return ""
			case <-l.life.Done():
				return ""
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, ownWatchMaxBackoff)
			continue
		case !found || stat.EphemeralOwner != act.session || stat.Czxid != act.info.Epoch:
			return "the znode is gone"
		}
		backoff = ownWatchBackoff
		select {
		case <-act.done:
			return ""
		case <-l.life.Done():
			return ""
		case ev := <-watch:
			if ev.Type != zk.EventNodeDataChanged {
				return fmt.Sprintf("%v %v", ev.Type, ev.State)
			}
		}
	}
}

// The pauses between failed arms of an activation's own-znode watch.
const (
	ownWatchBackoff    = 20 * time.Millisecond
	ownWatchMaxBackoff = 200 * time.Millisecond
)

// deleteActivation deletes path if it holds activation pidID of our
// current session, retrying until it is gone, is not ours, or the lookup
// shuts down. A znode of an earlier session went with it.
func (l *IdentityLookup) deleteActivation(path, pidID string) {
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		ctx, cancel := context.WithTimeout(l.life, l.p.cfg.RequestTimeout)
		err := l.s.Do(ctx, cluster.Op{Name: "delete", Path: path, Idempotent: true}, func(c *zk.Conn) error {
			data, stat, err := c.Get(path)
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			if err != nil {
				return err
			}
			if stat.EphemeralOwner != c.SessionID() {
				return nil
			}
			if rec, err := records.Activation(data); err != nil || rec.Pid.Id != pidID {
				return nil
			}
			return zkutil.Delete(c, path, stat.Version)
		})
		cancel()
		if err == nil || l.life.Err() != nil || errors.Is(err, cluster.ErrClosed) {
			return
		}
		l.log.Warn("deleting an activation znode", "path", path, "err", err)
		select {
		case <-l.life.Done():
			return
		case <-time.After(backoff):
		}
	}
}
