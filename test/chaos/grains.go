package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zkactor/zkactor/provider"
)

// Grains: with Config.Grains, every node process also runs a protoactor-go
// cluster member on zkactor's provider (package provider), under
// <root>/grains, kept alive by provider.Supervise (a member that dies comes
// back as a new one on the same port). Its grains are counters of one kind;
// the workload requests identities c0..c5 from random nodes. The member's
// session goes through the node's proxies, so every network fault, freeze
// and kill hits it as it hits the node.
//
// A grain reports its activation's term as a global reports its own:
//
//	astart <kind/identity> <epoch> <pid> <member id>   Started: the activation began
//	amsg <kind/identity> <epoch> <began>               it began handling a request
//	astop <kind/identity> <epoch>                      Stopping: it ended
//
// and the invariants of issue 10 judge them:
//
//	one-activation: never two activations of one identity at once (the
//	    one-global check over the activations' timeline, with no allowance).
//	live-activation: within session timeout + 5 s of the heal, a request for
//	    every identity succeeds from every live node, and in one round all
//	    the nodes reach the same activation (member and epoch).
//
// Two fault classes of their own hit the provider's znodes with a client of
// no node: delete-activation (a grain's znode: it must stop, with the
// notification's latency allowed as overlap) and delete-member (a member's
// node znode: the member is dead, and comes back as a new one).
const (
	childGrainsEnv = "ZKACTOR_CHAOS_GRAINS" // "1": the node process runs a grains member too
	grainKind      = "counter"
	grainCount     = 6 // identities c0 .. c5
)

func grainIdentity(i int) string { return fmt.Sprintf("c%d", i) }

// startGrains starts the node process's cluster member, supervised.
func startGrains(ctx context.Context, servers []string, root string, timeout time.Duration, log *slog.Logger, out *emitter) (*provider.Supervisor, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := provider.Config{Servers: servers, Root: root + "/grains", SessionTimeout: timeout, Logger: log.With("part", "grains")}
	return provider.Supervise(ctx, cfg, func(p *provider.Provider) (*pcluster.Cluster, error) {
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}))
		return pcluster.New(system, pcluster.Configure("chaos", p, p.IdentityLookup(),
			remote.Configure("127.0.0.1", port),
			pcluster.WithKinds(pcluster.NewKind(grainKind, grainProps(out))))), nil
	})
}

// freePort picks a loopback port for the member's remote: Supervise brings
// a dead member back on the same one.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// grainProps is the grain: it counts "incr" requests and answers
// "<count> <member id> <epoch>".
func grainProps(out *emitter) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var (
			count int
			a     provider.Activation
			name  string
		)
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				a, _ = provider.ActivationOf(ctx)
				name = a.Kind + "/" + a.Identity
				out.emit("astart", name, a.Epoch, pidString(ctx.Self()), a.MemberID)
			case *actor.Stopping:
				out.emit("astop", name, a.Epoch)
			case *wrapperspb.StringValue:
				out.emit("amsg", name, a.Epoch, Now())
				if m.Value == "incr" {
					count++
				}
				ctx.Respond(wrapperspb.String(fmt.Sprintf("%d %s %d", count, a.MemberID, a.Epoch)))
			}
		})
	})
}

// requestGrain is the node's "grain <identity>" command: one request,
// answered with "<member id> <epoch>" of the activation that handled it.
func requestGrain(sup *provider.Supervisor, identity string) (string, error) {
	if sup == nil {
		return "", fmt.Errorf("this node runs no grains member")
	}
	res, err := sup.Cluster().Request(identity, grainKind, wrapperspb.String("incr"), pcluster.WithTimeout(commandWait/2))
	if err != nil {
		return "", err
	}
	s, ok := res.(*wrapperspb.StringValue)
	if !ok {
		return "", fmt.Errorf("grain %s answered %T", identity, res)
	}
	f := strings.Fields(s.Value)
	if len(f) != 3 {
		return "", fmt.Errorf("grain %s answered %q", identity, s.Value)
	}
	return f[1] + " " + f[2], nil
}

// newOneActivation is one-global over the activations' timeline. The
// overlap a foreign delete of an activation's znode allows (the grain
// learns of it from a watch) is granted by deleteActivation.
func newOneActivation() *oneGlobal {
	return &oneGlobal{seen: map[string]bool{}, name: "one-activation", what: "activations of",
		of: func(s *state) *timeline { return s.atl }, allowance: true}
}

func grainsOn(r *Run) error {
	if !r.cfg.Grains {
		return errors.New("the node processes run no grains member (-grains=false)")
	}
	return nil
}

// deleteActivation deletes a random activation's znode with a client of
// no node: its grain must stop, and the identity is activated again.
var deleteActivation = fault{name: "delete-activation", available: grainsOn, inject: func(tr *Trial) (func(), error) {
	dir := path.Join(tr.r.root, "grains", "activations", grainKind)
	kids, err := tr.r.children(dir)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		tr.Note("no activation to delete")
		return nil, nil
	}
	victim := kids[tr.Rand.IntN(len(kids))]
	// The grain can only learn of the delete from its watch: allow the
	// notification's latency as overlap, as for a global's candidate.
	tr.AllowOverlap(500 * time.Millisecond)
	tr.Fault("foreign client deletes activation %s/%s", grainKind, victim)
	if err := tr.r.foreignDelete(path.Join(dir, victim)); err != nil {
		return nil, err
	}
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}

// deleteMember deletes a random member's node znode: the member is dead
// (package provider), stops its grains before its activations' znodes go,
// and comes back as a new member (Supervise).
var deleteMember = fault{name: "delete-member", available: grainsOn, inject: func(tr *Trial) (func(), error) {
	dir := path.Join(tr.r.root, "grains", "nodes")
	kids, err := tr.r.children(dir)
	if err != nil {
		return nil, err
	}
	var members []string
	for _, k := range kids {
		if !strings.HasSuffix(k, "-singletons") {
			members = append(members, k)
		}
	}
	if len(members) == 0 {
		tr.Note("no member to delete")
		return nil, nil
	}
	victim := members[tr.Rand.IntN(len(members))]
	tr.Fault("foreign client deletes member %s", victim)
	if err := tr.r.foreignDelete(path.Join(dir, victim)); err != nil {
		return nil, err
	}
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}

// liveActivation: every identity answers from every live node after the
// heal, all of them from one activation.
type liveActivation struct{ persisting }

func (*liveActivation) Name() string  { return "live-activation" }
func (*liveActivation) Settles() bool { return true }

func (inv *liveActivation) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Grains {
		return nil
	}
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+5*time.Second)
	var probs []problem
	ok, why := tr.Await(deadline, func() (bool, string) {
		probs = probs[:0]
		type query struct {
			n  *nodeProc
			id string
			ch <-chan Event
		}
		var qs []query
		for _, n := range tr.r.liveNodes() {
			for i := range grainCount {
				qs = append(qs, query{n, grainIdentity(i), n.send("grain", grainIdentity(i))})
			}
		}
		where := map[string]string{} // identity -> "<member> <epoch>" of the first answer
		for _, q := range qs {
			var e Event
			select {
			case e = <-q.ch:
			case <-time.After(2 * commandWait):
				return false, fmt.Sprintf("%s: grain %s: no answer", q.n.label, q.id)
			}
			if e.Arg(1) != "ok" {
				probs = append(probs, problem{key: "err|" + q.id, focus: q.id,
					what: fmt.Sprintf("%s: request to %s failed: %s", q.n.label, q.id, e.Rest(2))})
				continue
			}
			got := e.Rest(2)
			if first, seen := where[q.id]; !seen {
				where[q.id] = got
			} else if first != got {
				probs = append(probs, problem{key: "two|" + q.id, focus: q.id,
					what: fmt.Sprintf("%s reached by one round of requests at two activations (member, epoch): %s and %s (%s)", q.id, first, got, q.n.label)})
			}
		}
		return len(probs) == 0, ""
	})
	if ok {
		inv.clear()
		return nil
	}
	if why != "" {
		return []Violation{tr.Violation(inv.Name(), deadline, why).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}
