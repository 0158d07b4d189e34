package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	subscriptionv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
)

// Subscriptions: with Config.Subscriptions, every node process subscribes
// an actor to each of the workload's services (package
// recipes/subscription) and keeps the set of PIDs the messages describe. A
// message that breaks the promise (a sequence number out of turn, a join of
// a member it holds, a leave of one it does not) is reported at once:
//
//	sbad <service> <what>                  the subscriber saw a broken stream
//
// and the command "subset <service>" answers the subscriber's set. One
// invariant judges them (issue 11):
//
//	subscription: no sbad ever; and within session timeout + 3 s of the
//	    heal, every live node's subscribed set is what GetCapable must
//	    return (the capable invariant's rule: acknowledged registrations on
//	    live nodes, with those in doubt allowed either way).
const (
	childSubscriptionsEnv = "ZKACTOR_CHAOS_SUBSCRIPTIONS" // the services to subscribe to, comma-separated ("": none)
)

// subscriber is a node process's subscriptions.
type subscriber struct {
	subs *subscription.Subscriptions

	mu   sync.Mutex
	sets map[string]map[string]string // service -> member id -> PID
}

func startSubscriber(node *zka.Node, services []string, out *emitter) (*subscriber, error) {
	sub := &subscriber{subs: subscription.New(node.System(), node.Registry(), subscription.Options{}), sets: map[string]map[string]string{}}
	for _, svc := range services {
		pid := node.System().Root.Spawn(actor.PropsFromFunc(sub.receive(svc, out)))
		// The ctx is the subscription's lifetime (it ends with Close); the
		// first listing waits at most the session's request timeout.
		_, err := sub.subs.Subscribe(context.Background(), svc, pid)
		if err != nil {
			sub.subs.Close()
			return nil, err
		}
	}
	return sub, nil
}

// receive is the subscribing actor of one service: it rebuilds the set
// and checks the stream.
func (sub *subscriber) receive(svc string, out *emitter) actor.ReceiveFunc {
	var (
		seq uint64
		id  uint64
	)
	bad := func(format string, args ...any) { out.emit("sbad", svc, fmt.Sprintf(format, args...)) }
	return func(c actor.Context) {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		set := sub.sets[svc]
		if set == nil {
			set = map[string]string{}
			sub.sets[svc] = set
		}
		next := func(sid, s uint64) {
			if sid != id || s != seq+1 {
				bad("message %d of subscription %d after %d of %d", s, sid, seq, id)
			}
			seq = s
		}
		switch m := c.Message().(type) {
		case *subscriptionv1.Snapshot:
			if seq != 0 || m.Seq != 1 {
				bad("snapshot with seq %d after %d", m.Seq, seq)
			}
			id, seq = m.Subscription, m.Seq
			clear(set)
			for _, mem := range m.Members {
				set[mem.Id] = memberPID(mem)
			}
		case *subscriptionv1.Joined:
			next(m.Subscription, m.Seq)
			if _, ok := set[m.Member.Id]; ok {
				bad("join of %s, which it holds", m.Member.Id)
			}
			set[m.Member.Id] = memberPID(m.Member)
		case *subscriptionv1.Left:
			next(m.Subscription, m.Seq)
			if _, ok := set[m.Member.Id]; !ok {
				bad("leave of %s, which it does not hold", m.Member.Id)
			}
			delete(set, m.Member.Id)
		}
	}
}

func memberPID(m *subscriptionv1.Member) string {
	if r := m.GetRegistration(); r != nil && r.Pid != nil {
		return r.Pid.Address + "/" + r.Pid.Id
	}
	return "?"
}

// set is the "subset <service>" command: the PIDs, sorted, comma-separated.
func (sub *subscriber) set(svc string) (string, error) {
	if sub == nil {
		return "", fmt.Errorf("this node subscribes to nothing")
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	var pids []string
	for _, p := range sub.sets[svc] {
		pids = append(pids, p)
	}
	slices.Sort(pids)
	return strings.Join(pids, ","), nil
}

func (sub *subscriber) stop() { sub.subs.Close() }

// subscribed: the subscribers' streams are sound, and their sets settle on
// the live registrations.
type subscribed struct{ persisting }

func (*subscribed) Name() string  { return "subscription" }
func (*subscribed) Settles() bool { return true }

func (inv *subscribed) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Subscriptions {
		return nil
	}
	var vs []Violation
	tr.r.withState(func(s *state) {
		for _, e := range s.sbad {
			vs = append(vs, tr.Violation(inv.Name(), e.T, fmt.Sprintf("%s's subscription to %s: %s", e.Src, e.Arg(0), e.Rest(1)), e.Arg(0)).
				Key(fmt.Sprintf("sbad|%s|%d", e.Src, e.T)))
		}
		s.sbad = nil
	})
	return append(vs, inv.liveSets(tr, inv.Name(), "subset", "the subscription to %s", tr.r.cfg.Services)...)
}
