package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
)

// Roles: with Config.Roles, every node process posts the roles r0..r3 of
// the set "chaos" (package recipes/rolematch; posting again is harmless)
// and applies to hold up to two of them. So while at least two nodes live,
// every role must be held, each by exactly one holder. A holder reports
// its holding as a global reports its term:
//
//	rstart role/<r> <epoch> <pid> <set>     it handled Assigned (its first message)
//	rtick role/<r> <epoch> <began>          it handled a tick (every 100 ms)
//	rstop role/<r> <epoch>                  it handled Stopping
//
// and two invariants judge them (issue 11):
//
//	one-holder: never two holders of one role at once (one-global's check
//	    over the holdings, with the allowance of a foreign delete).
//	live-role: within session timeout + 3 s of the heal, every role is held
//	    by a holder on a live node, as long as the live nodes have room for
//	    every role (two each); else as many roles as they have room for.
//
// The fault class delete-assignment deletes a holder's assignment znode
// with a client of no node.
const (
	childRolesEnv = "ZKACTOR_CHAOS_ROLES" // "1": the node process applies for roles
	roleSet       = "chaos"
	roleCount     = 4
	roleLimit     = 2
)

func roleName(i int) string { return fmt.Sprintf("r%d", i) }

// startRoles posts the roles and applies for them.
func startRoles(ctx context.Context, node *zka.Node, log *slog.Logger, out *emitter) (*rolematch.Roles, error) {
	roles := rolematch.New(node.System(), node.Registry(), node.Elections(), rolematch.Options{Logger: log.With("part", "roles")})
	var posted []rolematch.Role
	for i := range roleCount {
		posted = append(posted, rolematch.Role{Name: roleName(i), Data: []byte("spec of " + roleName(i))})
	}
	err := roles.Post(ctx, roleSet, posted...)
	if err == nil {
		_, err = roles.Apply(ctx, roleSet, roleLimit, holderProps(out))
	}
	if err != nil {
		_ = roles.Close(ctx)
		return nil, err
	}
	return roles, nil
}

// holderProps is a role's holder: it reports its holding and ticks.
func holderProps(out *emitter) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var (
			name     string
			epoch    int64
			assigned bool
			stop     func()
		)
		return actor.ReceiveFunc(func(ctx actor.Context) {
			began := Now()
			switch m := ctx.Message().(type) {
			case *rolematchv1.Assigned:
				if assigned {
					out.emit("gbad", name, epoch, "second Assigned, epoch", m.Epoch)
					return
				}
				name, epoch, assigned = "role/"+m.Role, m.Epoch, true
				out.emit("rstart", name, epoch, pidString(ctx.Self()), m.Set)
				stop = startTicker(ctx.ActorSystem(), ctx.Self())
			case tick:
				if assigned {
					out.emit("rtick", name, epoch, began)
				}
			case *actor.Stopping:
				if stop != nil {
					stop()
				}
				if assigned {
					out.emit("rstop", name, epoch)
				}
			}
		})
	})
}

// newOneHolder is one-global over the roles' holdings.
func newOneHolder() *oneGlobal {
	return &oneGlobal{seen: map[string]bool{}, name: "one-holder", what: "holders of",
		of: func(s *state) *timeline { return s.rtl }, allowance: true}
}

// liveRole: every role held after the heal, while the live nodes have room.
type liveRole struct{ persisting }

func (*liveRole) Name() string  { return "live-role" }
func (*liveRole) Settles() bool { return true }

func (inv *liveRole) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Roles {
		return nil
	}
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+3*time.Second)
	var probs []problem
	ok, _ := tr.Await(deadline, func() (bool, string) {
		probs = probs[:0]
		live := map[string]bool{}
		for _, n := range tr.r.liveNodes() {
			live[n.label] = true
		}
		want := min(roleCount, roleLimit*len(live)) // the live nodes' room
		held := 0
		var unheld []problem
		now := Now()
		at := now - int64(lineLag) // a holder's rstop may still be on its way
		tr.r.withState(func(s *state) {
			for i := range roleCount {
				role := "role/" + roleName(i)
				var on []string
				for _, t := range s.rtl.running(role, at, now) {
					if live[t.Src] {
						on = append(on, fmt.Sprintf("%s (epoch %d)", t.Src, t.Epoch))
					}
				}
				switch len(on) {
				case 0:
					unheld = append(unheld, problem{key: "unheld|" + role, focus: role, what: role + " is held by no live node"})
				case 1:
					held++
				default: // one-holder reports the overlap; this is the state after the heal
					probs = append(probs, problem{key: "two|" + role, focus: role, what: fmt.Sprintf("%s is held %d times: %v", role, len(on), on)})
				}
			}
		})
		if held < want {
			probs = append(probs, unheld...)
		}
		return len(probs) == 0, ""
	})
	if ok {
		inv.clear()
		return nil
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}

func rolesOn(r *Run) error {
	if !r.cfg.Roles {
		return errors.New("the node processes apply for no roles (-roles=false)")
	}
	return nil
}

// deleteAssignment deletes a random role's assignment znode with a client
// of no node: its holder must stop, and the role is taken again.
var deleteAssignment = fault{name: "delete-assignment", available: rolesOn, inject: func(tr *Trial) (func(), error) {
	dir := path.Join(tr.r.root, "roles", roleSet, "assignments")
	kids, err := tr.r.children(dir)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		tr.Note("no assignment to delete")
		return nil, nil
	}
	victim := kids[tr.Rand.IntN(len(kids))]
	// The holder can only learn of the delete from its watch: allow the
	// notification's latency as overlap, as for a global's candidate.
	tr.AllowOverlap(500 * time.Millisecond)
	tr.Fault("foreign client deletes assignment %s/%s", roleSet, victim)
	if err := tr.r.foreignDelete(path.Join(dir, victim)); err != nil {
		return nil, err
	}
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}
