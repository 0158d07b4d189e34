package chaos

import (
	"time"

	"fmt"
	"slices"
	"strings"
)

// status of a registration or a candidacy, as the driver knows it from
// the history.
type status int

const (
	unknown status = iota // an operation failed, or its outcome is not in yet
	present               // registered / candidate, acknowledged
	absent                // removed / resigned (or never), acknowledged
)

type regKey struct{ src, service, pid string }
type candKey struct{ src, name string }

// state is what the history says should be true now: which registrations
// and candidacies are live, which jobs were acknowledged and done. The
// driver keeps it under Run.mu, fed by every event (Run.observe).
type state struct {
	nodeState map[string]string            // label -> "running", "paused", "dead"
	regs      map[regKey]status            // by (node, service, pid)
	cands     map[candKey]status           // by (node, name)
	candSince map[candKey]int64            // when each candidacy was acknowledged
	pending   map[string]int               // operations in flight by "<label> <key>"
	jobsAcked map[string]int64             // job id -> when acknowledged
	jobsDone  map[string]int64             // job id -> first jobdo
	served    map[string]int64             // worker pid -> highest epoch it did a job for
	fence     []Event                      // jobdo events below a worker's served epoch
	tl        *timeline                    // the globals' terms
	atl       *timeline                    // the grain activations' terms
	rtl       *timeline                    // the roles' holdings
	ltl       *timeline                    // the lock's tenures
	qput      map[string]int64             // work queue items whose Put returned nil, by key: when
	qdone     map[string]bool              // work queue items acknowledged by a taker, by key
	sbad      []Event                      // subscribers' reports of a broken stream, not yet judged
	bar       *barrierHistory              // the barrier's rounds
	cfg       *configHistory               // the configs' writes and subscribers' messages
	deadAt    map[string]int64             // label -> when the node died (SIGKILL, or its exit)
	sessions  map[int64]string             // ZooKeeper session id -> label
	badFirst  []Event                      // gbad events
	lookups   map[string]map[string]string // label -> service -> last capable result
	stopped   map[string]bool              // "<label> <pid>" of stopped service actors
}

func newState() *state {
	return &state{
		nodeState: map[string]string{},
		regs:      map[regKey]status{},
		cands:     map[candKey]status{},
		candSince: map[candKey]int64{},
		pending:   map[string]int{},
		jobsAcked: map[string]int64{},
		jobsDone:  map[string]int64{},
		served:    map[string]int64{},
		tl:        newTimeline(globalTerms),
		atl:       newTimeline(activationTerms),
		rtl:       newTimeline(roleTerms),
		ltl:       newTimeline(lockTerms),
		qput:      map[string]int64{},
		qdone:     map[string]bool{},
		bar:       newBarrierHistory(),
		cfg:       newConfigHistory(),
		deadAt:    map[string]int64{},
		sessions:  map[int64]string{},
		lookups:   map[string]map[string]string{},
		stopped:   map[string]bool{},
	}
}

// apply updates the state with one event.
func (s *state) apply(e Event) {
	s.tl.add(e)
	s.atl.add(e)
	s.rtl.add(e)
	s.ltl.add(e)
	s.bar.apply(e)
	s.cfg.apply(e)
	switch e.Kind {
	case "qput": // qput <key> ok <id>
		if e.Arg(1) == "ok" {
			s.qput[e.Arg(0)] = e.T
		}
	case "qack": // qack <key> <id>
		s.qdone[e.Arg(0)] = true
	case "sbad":
		s.sbad = append(s.sbad, e)
	case "ready":
		s.nodeState[e.Src] = "running"
		s.sessions[e.Int(2)] = e.Src
	case "session":
		s.sessions[e.Int(1)] = e.Src
	case "paused":
		s.nodeState[e.Arg(0)] = "paused"
	case "resumed":
		s.nodeState[e.Arg(0)] = "running"
	case "dead", "killed":
		label := e.Arg(0)
		s.nodeState[label] = "dead"
		if _, ok := s.deadAt[label]; !ok || e.Kind == "dead" {
			s.deadAt[label] = e.T // "dead" carries the SIGKILL's time or the exit's
		}
		for k := range s.regs {
			if k.src == label {
				s.regs[k] = absent
			}
		}
		for k := range s.cands {
			if k.src == label {
				s.cands[k] = absent
			}
		}
	case "reg":
		s.regs[regKey{e.Src, e.Arg(0), e.Arg(1)}] = present
	case "regfail":
		s.regs[regKey{e.Src, e.Arg(0), e.Arg(1)}] = unknown
	case "unreg", "unregfail":
		// A failed Unregister deletes the znode in the background
		// (Registry.Unregister): absent either way, once settled.
		s.regs[regKey{e.Src, e.Arg(0), e.Arg(1)}] = absent
	case "stopped":
		s.stopped[e.Src+" "+e.Arg(0)] = true
		for k := range s.regs {
			if k.src == e.Src && k.pid == e.Arg(0) {
				s.regs[k] = absent
			}
		}
	case "cand":
		st := present
		if e.Arg(1) != "ok" {
			st = unknown
		}
		s.cands[candKey{e.Src, e.Arg(0)}] = st
		s.candSince[candKey{e.Src, e.Arg(0)}] = e.T
	case "resign":
		st := absent
		if e.Arg(1) != "ok" {
			st = unknown
		}
		s.cands[candKey{e.Src, e.Arg(0)}] = st
	case "capable":
		if s.lookups[e.Src] == nil {
			s.lookups[e.Src] = map[string]string{}
		}
		s.lookups[e.Src][e.Arg(0)] = e.Rest(1)
	case "jobacc":
		if _, ok := s.jobsAcked[e.Arg(0)]; !ok {
			s.jobsAcked[e.Arg(0)] = e.T
		}
	case "jobdo":
		id, epoch, worker := e.Arg(0), e.Int(1), e.Arg(2)
		if _, ok := s.jobsDone[id]; !ok {
			s.jobsDone[id] = e.T
		}
		if epoch < s.served[worker] {
			s.fence = append(s.fence, e)
		} else {
			s.served[worker] = epoch
		}
	case "gbad":
		s.badFirst = append(s.badFirst, e)
	}
}

// live lists the labels of the running nodes, sorted.
func (s *state) live() []string {
	var out []string
	for l, st := range s.nodeState {
		if st == "running" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// registered returns, for service, the PIDs that must be registered (live
// nodes, acknowledged, nothing in flight) and those that may or may not be.
func (s *state) registered(service string) (must, may map[string]bool) {
	must, may = map[string]bool{}, map[string]bool{}
	for k, st := range s.regs {
		if k.service != service || s.nodeState[k.src] == "dead" {
			continue
		}
		id := k.pid[strings.LastIndexByte(k.pid, '/')+1:]
		switch {
		case s.pending[k.src+" "+id] > 0 || st == unknown:
			may[k.pid] = true
		case st == present:
			must[k.pid] = true
		}
	}
	return must, may
}

// candidates tells whether some running node is certainly a candidate for
// name at the instant at, and whether the answer is certain (no
// candidacy in doubt, none too young to have led by then).
func (s *state) candidates(name string, at int64) (some, certain bool) {
	certain = true
	for k, st := range s.cands {
		if k.name != name || s.nodeState[k.src] != "running" {
			continue
		}
		switch {
		case s.pending[k.src+" "+name] > 0 || st == unknown:
			certain = false
		case st == present && s.candSince[k] > at-int64(candidateGrace):
			// Acknowledged just before (or after) the instant judged: its
			// term may not have begun by then.
			certain = false
		case st == present:
			some = true
		}
	}
	return some, certain || some
}

// candidateGrace is how long after its acknowledgement a candidacy is
// expected to have led, when no other candidate leads.
const candidateGrace = time.Second

// stoppedActor reports whether a service actor was stopped.
func (s *state) stoppedActor(label, pid string) bool { return s.stopped[label+" "+pid] }

// describeCandidates lists every known node's candidacy for name.
func (s *state) describeCandidates(name string) string {
	var out []string
	for k, st := range s.cands {
		if k.name != name {
			continue
		}
		what := [...]string{"in doubt", "candidate", "not candidate"}[st]
		if s.pending[k.src+" "+name] > 0 {
			what = "in flight"
		}
		out = append(out, fmt.Sprintf("%s(%s) %s", k.src, s.nodeState[k.src], what))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
