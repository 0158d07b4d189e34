package chaos

import (
	"fmt"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// FaultClass is a kind of fault. Inject applies one fault of the class,
// chosen with Trial.Rand, records it with Trial.Fault, holds it as long as
// it needs (Trial.Hold), and returns the function that heals it (nil for a
// fault that heals by itself). Available tells whether the class can run
// on this harness (nil) or why not.
type FaultClass interface {
	Name() string
	Available(r *Run) error
	Inject(tr *Trial) (heal func(), err error)
}

// fault is a FaultClass made of functions.
type fault struct {
	name      string
	available func(*Run) error
	inject    func(*Trial) (func(), error)
}

func (f fault) Name() string { return f.name }
func (f fault) Available(r *Run) error {
	if f.available == nil {
		return nil
	}
	return f.available(r)
}
func (f fault) Inject(tr *Trial) (func(), error) { return f.inject(tr) }

// setupClass and finalClass name the checks after the first start and
// after the last stop; they inject nothing.
type setupClass struct{}

func (setupClass) Name() string                  { return "setup" }
func (setupClass) Available(*Run) error          { return nil }
func (setupClass) Inject(*Trial) (func(), error) { return nil, nil }

type finalClass struct{}

func (finalClass) Name() string                  { return "final" }
func (finalClass) Available(*Run) error          { return nil }
func (finalClass) Inject(*Trial) (func(), error) { return nil, nil }

// DefaultFaultClasses returns every fault class of issue 8, cheapest first.
func DefaultFaultClasses() []FaultClass {
	return []FaultClass{
		killNode, pauseLong, pauseShort,
		proxyCut, blackholeShort, sessionExpiry, oneWayTo, oneWayFrom, delayReplies,
		zkRestart, zkLeader, zkPause, quorumPartition,
		deleteCandidate, deleteRegistration, garbage,
		burstCandidates, burstRegistrations,
		deleteActivation, deleteMember, deleteAssignment,
	}
}

// pickNode chooses a live node: with even odds one that runs a global now
// (a leader is the interesting victim), else any.
func (tr *Trial) pickNode() (*nodeProc, error) {
	nodes := tr.r.liveNodes()
	if len(nodes) == 0 {
		return nil, errNoLiveNode
	}
	if tr.Rand.IntN(2) == 0 {
		names := append([]string{bossName}, tr.r.cfg.Globals...)
		name := names[tr.Rand.IntN(len(names))]
		var leader string
		tr.r.withState(func(s *state) {
			// Running just now (at == now would exclude every open term:
			// running wants it to end after at).
			now := Now()
			if rs := s.tl.running(name, now-1, now); len(rs) == 1 {
				leader = rs[0].Src
			}
		})
		for _, n := range nodes {
			if n.label == leader {
				return n, nil
			}
		}
	}
	return nodes[tr.Rand.IntN(len(nodes))], nil
}

// proxiesOf returns the node's proxies, one per server.
func (tr *Trial) proxiesOf(n *nodeProc) []*zktest.Proxy { return tr.r.proxies[n.slot] }

var killNode = fault{name: "kill", inject: func(tr *Trial) (func(), error) {
	n, err := tr.pickNode()
	if err != nil {
		return nil, err
	}
	tr.Fault("kill -9 %s", n.label)
	n.kill()
	tr.Hold(tr.Between(0, tr.SessionTimeout()))
	return func() {
		// Nothing is left to heal; the slot gets a new node (startAll).
		tr.MarkHealed()
	}, nil
}}

func pauseFor(name string, lo, hi float64) fault {
	return fault{name: name, inject: func(tr *Trial) (func(), error) {
		n, err := tr.pickNode()
		if err != nil {
			return nil, err
		}
		st := tr.SessionTimeout()
		d := tr.Between(time.Duration(lo*float64(st)), time.Duration(hi*float64(st)))
		tr.Fault("SIGSTOP %s for %v", n.label, d)
		n.pause()
		tr.Hold(d)
		return n.resume, nil
	}}
}

var (
	// pauseLong freezes a node past its session timeout.
	pauseLong = pauseFor("pause", 1.2, 2)
	// pauseShort freezes a node for less than its session timeout, but
	// longer than the third after which the session counts as paused.
	pauseShort = pauseFor("pause-short", 0.2, 0.7)
)

// proxyFault applies do to a random non-empty subset of a node's proxies
// (all of them when all is set) for a random hold, and heals with Restore.
func proxyFault(name string, all bool, lo, hi float64, do func(tr *Trial, p *zktest.Proxy) string) fault {
	return fault{name: name, inject: func(tr *Trial) (func(), error) {
		n, err := tr.pickNode()
		if err != nil {
			return nil, err
		}
		ps := tr.proxiesOf(n)
		mask := 1<<len(ps) - 1
		if !all {
			mask = 1 + tr.Rand.IntN(mask)
		}
		st := tr.SessionTimeout()
		hold := tr.Between(time.Duration(lo*float64(st)), time.Duration(hi*float64(st)))
		var hit []*zktest.Proxy
		var what string
		for i, p := range ps {
			if mask&(1<<i) != 0 {
				what = do(tr, p)
				hit = append(hit, p)
			}
		}
		tr.Fault("%s: %s to %d of %d servers for %v", n.label, what, len(hit), len(ps), hold)
		tr.Hold(hold)
		return func() {
			for _, p := range hit {
				p.Restore() // ends Delay too
			}
		}, nil
	}}
}

var (
	proxyCut = proxyFault("cut", false, 0.3, 2, func(_ *Trial, p *zktest.Proxy) string {
		p.Cut()
		return "connections refused"
	})
	blackholeShort = proxyFault("blackhole", false, 0.2, 0.6, func(_ *Trial, p *zktest.Proxy) string {
		p.Blackhole()
		return "blackhole"
	})
	// sessionExpiry blackholes every server of a node past its timeout.
	sessionExpiry = proxyFault("expiry", true, 1.5, 2, func(_ *Trial, p *zktest.Proxy) string {
		p.Blackhole()
		return "blackhole (session expiry)"
	})
	// oneWayTo drops a node's requests (and pings): the servers hear
	// nothing, the client still hears what was in flight.
	oneWayTo = proxyFault("oneway-to", true, 0.5, 2, func(_ *Trial, p *zktest.Proxy) string {
		p.DropToTarget()
		return "requests dropped"
	})
	// oneWayFrom drops the replies: the servers execute a node's requests
	// and keep its session alive, but the node hears nothing.
	oneWayFrom = proxyFault("oneway-from", true, 0.5, 2, func(_ *Trial, p *zktest.Proxy) string {
		p.DropFromTarget()
		return "replies dropped"
	})
	// delayReplies holds back every reply to a node by a fifth to four
	// fifths of its session timeout.
	delayReplies = proxyFault("delay", true, 1, 3, func(tr *Trial, p *zktest.Proxy) string {
		st := tr.SessionTimeout()
		d := tr.Between(st/5, st*4/5)
		p.Delay(d)
		return fmt.Sprintf("replies delayed %v", d)
	})
)

var zkRestart = fault{name: "zk-restart", inject: func(tr *Trial) (func(), error) {
	i := tr.Rand.IntN(tr.r.ens.Len())
	tr.Fault("kill -9 ZooKeeper server %d", i)
	tr.r.ens.Kill(i)
	tr.Hold(tr.Between(tr.SessionTimeout()/2, 2*tr.SessionTimeout()))
	return func() { tr.r.ens.Restart(i) }, nil
}}

var zkLeader = fault{name: "zk-leader", inject: func(tr *Trial) (func(), error) {
	i := tr.r.ens.Leader(tr.r.t)
	tr.Fault("kill -9 the quorum leader, server %d", i)
	tr.r.ens.Kill(i)
	tr.Hold(tr.Between(tr.SessionTimeout()/2, 2*tr.SessionTimeout()))
	return func() { tr.r.ens.Restart(i) }, nil
}}

// zkPause freezes a ZooKeeper server (the quorum leader with even odds)
// for a half to twice the session timeout: every client of it is dropped.
var zkPause = fault{name: "zk-pause", inject: func(tr *Trial) (func(), error) {
	i := tr.Rand.IntN(tr.r.ens.Len())
	if tr.Rand.IntN(2) == 0 {
		i = tr.r.ens.Leader(tr.r.t)
	}
	tr.Fault("SIGSTOP ZooKeeper server %d", i)
	tr.r.ens.Pause(i)
	tr.Hold(tr.Between(tr.SessionTimeout()/2, 2*tr.SessionTimeout()))
	return func() {
		tr.r.ens.Resume(i)
		tr.r.ens.WaitServing(tr.r.t, i)
	}, nil
}}

// quorumPartition cuts a follower off its ensemble while it keeps serving
// its clients (for syncLimit ticks), and makes a node (a leader, if the
// pick says so) talk to that follower only.
var quorumPartition = fault{
	name: "quorum",
	inject: func(tr *Trial) (func(), error) {
		q := tr.r.ens
		leader := tr.r.ens.Leader(tr.r.t)
		follower := (leader + 1 + tr.Rand.IntN(tr.r.ens.Len()-1)) % tr.r.ens.Len()
		n, err := tr.pickNode()
		if err != nil {
			return nil, err
		}
		ps := tr.proxiesOf(n)
		for i, p := range ps {
			if i != follower {
				p.Cut()
			}
		}
		tr.Fault("%s talks to server %d only; server %d's quorum links isolated", n.label, follower, follower)
		q.IsolateQuorum(follower)
		tr.Hold(tr.Between(3*tr.SessionTimeout()/2, 3*tr.SessionTimeout()))
		return func() {
			q.HealQuorum(follower)
			for _, p := range ps {
				p.Restore()
			}
			q.WaitServing(tr.r.t, follower)
		}, nil
	},
}
