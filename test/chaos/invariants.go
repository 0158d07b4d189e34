package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Invariant is a property of the history that must hold after every
// trial. Check is called once the trial's fault has healed; it reports
// what does not hold, made with Trial.Violation (give each a Key so a
// later check does not report the same fault again).
type Invariant interface {
	Name() string
	Check(tr *Trial) []Violation
}

// Settling is implemented by an invariant that waits for the cluster to
// settle (until a deadline counted from Trial.HealedAt) when Settles
// reports true. The driver runs those first, together, and then the
// others over the settled history.
type Settling interface {
	Settles() bool
}

// StoppedInvariant is implemented by an invariant that also has something
// to check once every node has stopped (at the end of a run, or of each
// class with Config.StopEachClass).
type StoppedInvariant interface {
	CheckStopped(tr *Trial) []Violation
}

// DefaultInvariants returns fresh instances of the invariants of issue 8.
func DefaultInvariants() []Invariant {
	return []Invariant{
		&liveGlobal{}, &capable{}, &jobs{}, &leftovers{},
		newOneGlobal(), &epochs{}, &noEphemerals{},
		newOneActivation(), &liveActivation{},
		newOneHolder(), &liveRole{},
		newOneLockHolder(), &liveLock{},
		&queueDelivery{}, &subscribed{},
		&barrierEnter{}, &barrierLeave{}, &liveBarrier{}, &barrierLeftovers{},
		&configStream{}, &configWrites{}, &liveConfig{},
	}
}

// lineLag is how long the driver lets a line travel from a node to the
// history before it judges an instant: a global's gstop written just
// before another's gstart may be read after it.
const lineLag = 300 * time.Millisecond

// oneGlobal (1): never two globals of one name running at once. Terms are
// intervals on the shared clock (see timeline.end for paused processes).
// The same check, over the grain activations' timeline, is one-activation.
type oneGlobal struct {
	seen map[string]bool
	name string                 // the invariant's name
	what string                 // "globals" or "activations of", for reports
	of   func(*state) *timeline // the timeline judged
	// allowance: whether the overlaps that fault classes allow (a foreign
	// delete of a candidate znode) apply. Nothing deletes activations.
	allowance bool
}

func newOneGlobal() *oneGlobal {
	return &oneGlobal{seen: map[string]bool{}, name: "one-global", what: "globals",
		of: func(s *state) *timeline { return s.tl }, allowance: true}
}

func (inv *oneGlobal) Name() string { return inv.name }

func (inv *oneGlobal) Check(tr *Trial) []Violation {
	type overlap struct {
		a, b      Term
		from, upt int64
		ea, eb    string
		why       string
	}
	var found []overlap
	now := Now() - int64(lineLag)
	// The allowance is that of the trial in which the newer term started
	// (read before withState: both take the run's lock).
	var starts []int64
	tr.r.withState(func(s *state) {
		tl := inv.of(s)
		for _, name := range tl.names() {
			for _, t := range tl.terms[name] {
				starts = append(starts, t.Start)
			}
		}
	})
	allowed := map[int64]int64{}
	for _, t := range starts {
		if inv.allowance {
			allowed[t] = int64(max(tr.allowOverlap, tr.r.allowedOverlap(t)))
		}
	}
	tr.r.withState(func(s *state) {
		tl := inv.of(s)
		for _, name := range tl.names() {
			terms := slices.Clone(tl.terms[name])
			sort.SliceStable(terms, func(i, j int) bool { return terms[i].Start < terms[j].Start })
			var active []*Term
			for _, b := range terms {
				keep := active[:0]
				for _, a := range active {
					if tl.end(a, now) > b.Start {
						keep = append(keep, a)
					}
				}
				active = keep
				for _, a := range active {
					upto := min(tl.end(a, now), tl.end(b, now))
					if upto <= b.Start {
						continue
					}
					key := fmt.Sprintf("%s|%s|%d|%d|%s|%d|%d", name, a.Src, a.Epoch, a.Start, b.Src, b.Epoch, b.Start)
					if inv.seen[key] {
						continue
					}
					allow, ok := allowed[b.Start]
					if !ok && inv.allowance { // a term that started since
						allow = int64(tr.allowOverlap)
					}
					if upto-b.Start <= allow {
						if a.End != 0 && b.End != 0 {
							inv.seen[key] = true // within what this fault allows, and over
						}
						continue
					}
					inv.seen[key] = true
					found = append(found, overlap{*a, *b, b.Start, upto,
						tl.explainEnd(a, now, tr.start), tl.explainEnd(b, now, tr.start),
						inFlight(a, b.Start, upto, tr.start)})
				}
				active = append(active, b)
			}
		}
	})
	var vs []Violation
	for _, o := range found {
		vs = append(vs, tr.Violation(inv.Name(), o.from, fmt.Sprintf(
			"two %s %q ran at once for %v: epoch %d on %s (%s; %s) and epoch %d on %s (%s; %s); %s",
			inv.what, o.a.Name, time.Duration(o.upt-o.from).Round(time.Millisecond),
			o.a.Epoch, o.a.Src, o.a.PID, o.ea, o.b.Epoch, o.b.Src, o.b.PID, o.eb, o.why), o.a.Name, o.a.Src, o.b.Src))
	}
	return vs
}

// inFlight tells whether the older term a began handling a message while
// the newer one ran (from..upto): the guard let it in; or only finished,
// after the newer one began, a handler it began before (which no guard
// can stop: what it does needs fencing by epoch).
func inFlight(a *Term, from, upto, t0 int64) string {
	rel := func(x int64) string { return fmt.Sprintf("%+.3fs", float64(x-t0)/1e9) }
	i := sort.Search(len(a.activity), func(i int) bool { return a.activity[i] > from })
	if i < len(a.activity) && a.activity[i] < upto {
		return fmt.Sprintf("the older one began handling a message at %s, after the newer one started: the guard let it in", rel(a.activity[i]))
	}
	if i > 0 {
		return fmt.Sprintf("the older one began no handler after the newer one started (its last began at %s): "+
			"a handler in flight outlived the term (only fencing by epoch protects what it does), or its stop took that long", rel(a.activity[i-1]))
	}
	return "the older one handled nothing after Elected"
}

// liveGlobal (2): within session timeout + 1 s of the heal, exactly one
// global per name that has a live candidate, and none for a name that has
// none. Names whose candidacies are in doubt (a failed RegisterCandidate
// or Resign) are judged only if some node is certainly a candidate.
type liveGlobal struct{}

func (*liveGlobal) Name() string  { return "live-global" }
func (*liveGlobal) Settles() bool { return true }

func (inv *liveGlobal) Check(tr *Trial) []Violation {
	names := append([]string{bossName}, tr.r.cfg.Globals...)
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+time.Second)
	var at int64
	var bad []string
	ok, why := tr.Await(deadline+int64(lineLag), func() (bool, string) {
		now := Now()
		at = min(now-int64(lineLag), deadline)
		bad = bad[:0]
		var whys []string
		tr.r.withState(func(s *state) {
			for _, name := range names {
				some, certain := s.candidates(name, at)
				if !certain {
					continue
				}
				running := s.tl.running(name, at, now)
				want := 0
				if some {
					want = 1
				}
				if len(running) != want {
					var rs []string
					for _, t := range running {
						rs = append(rs, t.String())
					}
					bad = append(bad, name)
					whys = append(whys, fmt.Sprintf("%q: %d running, want %d [%s]; candidacies: %s",
						name, len(running), want, strings.Join(rs, "; "), s.describeCandidates(name)))
				}
			}
		})
		return len(whys) == 0, strings.Join(whys, "; ")
	})
	if ok {
		return nil
	}
	return []Violation{tr.Violation(inv.Name(), at,
		fmt.Sprintf("%v after the heal: %s", time.Duration(at-tr.healedAt).Round(time.Millisecond), why),
		bad...).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
}

// epochs (3): epochs strictly increase from term to term of a name. The
// same epoch again is allowed only as the same term resumed: the same
// candidate znode (on the same node), which after a lease lapse resumes its
// term with its epoch, as nobody else could lead meanwhile (global/doc.go).
// A lower epoch, or the same epoch from another candidate znode or node, is
// a violation; so is one candidate znode with two epochs, or a term whose
// Elected names no candidate znode (nothing to fence writes with). Also: a
// global's first message is Elected, and only one.
type epochs struct{}

func (*epochs) Name() string { return "epochs" }

func (inv *epochs) Check(tr *Trial) []Violation {
	type bad struct {
		at   int64
		what string
		key  string
		name string
	}
	var found []bad
	tr.r.withState(func(s *state) {
		for _, name := range s.tl.names() {
			terms := slices.Clone(s.tl.terms[name])
			sort.SliceStable(terms, func(i, j int) bool { return terms[i].Start < terms[j].Start })
			var last *Term
			byCandidate := map[string]*Term{} // the first term of each candidate znode
			for _, t := range terms {
				key := fmt.Sprintf("%s|%s|%d|%d", name, t.Src, t.Epoch, t.Start)
				switch {
				case t.Epoch <= 0:
					found = append(found, bad{t.Start, fmt.Sprintf("global %q on %s elected with epoch %d", name, t.Src, t.Epoch), key, name})
				case t.Candidate == "":
					found = append(found, bad{t.Start, fmt.Sprintf("global %q on %s elected (epoch %d) without its candidate znode", name, t.Src, t.Epoch), key, name})
				case last != nil && t.Epoch < last.Epoch:
					found = append(found, bad{t.Start, fmt.Sprintf("global %q: epoch %d on %s (%s) after epoch %d on %s (%s)",
						name, t.Epoch, t.Src, t.Candidate, last.Epoch, last.Src, last.Candidate), key, name})
				case last != nil && t.Epoch == last.Epoch && (t.Candidate != last.Candidate || t.Src != last.Src):
					found = append(found, bad{t.Start, fmt.Sprintf("global %q: epoch %d on %s (%s) and again on %s (%s): not the same term resumed",
						name, t.Epoch, last.Src, last.Candidate, t.Src, t.Candidate), key, name})
				}
				if first := byCandidate[t.Candidate]; t.Candidate != "" && first != nil && first.Epoch != t.Epoch {
					found = append(found, bad{t.Start, fmt.Sprintf("global %q: candidate znode %s elected with epoch %d on %s, then with epoch %d on %s",
						name, t.Candidate, first.Epoch, first.Src, t.Epoch, t.Src), key + "|candidate", name})
				} else if first == nil {
					byCandidate[t.Candidate] = t
				}
				if last == nil || t.Epoch >= last.Epoch {
					last = t
				}
			}
		}
		for _, e := range s.badFirst {
			found = append(found, bad{e.T, fmt.Sprintf("global %q on %s: %s", e.Arg(0), e.Src, e.Rest(2)),
				fmt.Sprintf("gbad|%s|%d", e.Src, e.T), e.Arg(0)})
		}
	})
	var vs []Violation
	for _, b := range found {
		vs = append(vs, tr.Violation(inv.Name(), b.at, b.what, b.name).Key(b.key))
	}
	return vs
}

// capable (4): every live node's GetCapable equals the set of live
// registered PIDs, within session timeout + 3 s of the heal: no PID of a
// stopped actor, an unregistered pair or a dead node, and none missing.
//
// A problem (a PID missing from or extra in a service, a node's lookup
// failing) that persists from trial to trial is reported once, in the
// trial that first found it; if it clears and comes back, again.
type capable struct{ persisting }

func (*capable) Name() string  { return "capable" }
func (*capable) Settles() bool { return true }

func (inv *capable) Check(tr *Trial) []Violation {
	services := append([]string{workerService}, tr.r.cfg.Services...)
	return inv.liveSets(tr, inv.Name(), "capable", "GetCapable(%s)", services)
}

// liveSets checks that, within session timeout + 3 s of the heal, every
// live node's answer to "<verb> <service>" (PIDs, comma-separated) is the
// set of live registered PIDs: those acknowledged on live nodes, with
// those in doubt allowed either way. label names the lookup in reports,
// with the service for %s. capable and subscription judge by it.
func (p *persisting) liveSets(tr *Trial, inv, verb, label string, services []string) []Violation {
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+3*time.Second)
	var probs []problem
	ok, why := tr.Await(deadline, func() (bool, string) {
		probs = probs[:0]
		type query struct {
			n   *nodeProc
			svc string
			ch  <-chan Event
		}
		var qs []query
		for _, n := range tr.r.liveNodes() {
			for _, svc := range services {
				qs = append(qs, query{n, svc, n.send(verb, svc)})
			}
		}
		for _, q := range qs {
			lookup := fmt.Sprintf(label, q.svc)
			var e Event
			select {
			case e = <-q.ch:
			case <-time.After(2 * commandWait):
				return false, fmt.Sprintf("%s: %s %s: no answer", q.n.label, verb, q.svc)
			}
			if e.Arg(1) != "ok" {
				probs = append(probs, problem{key: "err|" + q.n.label + "|" + q.svc,
					what: fmt.Sprintf("%s: %s: %s", q.n.label, lookup, e.Rest(2))})
				continue
			}
			got := map[string]bool{}
			for _, pid := range strings.Split(e.Rest(2), ",") {
				if pid != "" && pid != "-" {
					got[pid] = true
				}
			}
			var must, may map[string]bool
			tr.r.withState(func(s *state) { must, may = s.registered(q.svc) })
			for pid := range must {
				if !got[pid] {
					probs = append(probs, problem{key: "missing|" + q.svc + "|" + pid, focus: pid,
						what: fmt.Sprintf("%s: %s misses %s", q.n.label, lookup, pid)})
				}
			}
			for pid := range got {
				if !must[pid] && !may[pid] {
					probs = append(probs, problem{key: "extra|" + q.svc + "|" + pid, focus: pid,
						what: fmt.Sprintf("%s: %s has extra %s", q.n.label, lookup, pid)})
				}
			}
		}
		slices.SortFunc(probs, func(a, b problem) int { return strings.Compare(a.what, b.what) })
		return len(probs) == 0, ""
	})
	if ok {
		p.clear()
		return nil
	}
	if why != "" { // no answer: nothing to compare
		return []Violation{tr.Violation(inv, deadline, why).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
	}
	return p.report(tr, inv, deadline, probs)
}

// problem is one thing an invariant found wrong; key identifies it from
// one check to the next.
type problem struct {
	key, what, focus string
}

// persisting reports a problem that persists over several checks once:
// when it is first found, and again only after a check found it gone.
type persisting struct{ seen map[string]bool }

func (p *persisting) clear() { p.seen = nil }

// report returns one violation listing the problems not reported before
// (nil if there are none), and forgets those that have cleared.
func (p *persisting) report(tr *Trial, inv string, at int64, probs []problem) []Violation {
	now := map[string]bool{}
	var fresh, whats, focus []string
	for _, pr := range probs {
		if now[pr.key] {
			continue // several nodes see the same
		}
		now[pr.key] = true
		if p.seen[pr.key] {
			continue
		}
		fresh = append(fresh, pr.key)
		whats = append(whats, pr.what)
		if pr.focus != "" {
			focus = append(focus, pr.focus)
		}
	}
	p.seen = now
	if len(fresh) == 0 {
		return nil
	}
	what := strings.Join(whats, "; ")
	if old := len(now) - len(fresh); old > 0 {
		what += fmt.Sprintf(" (and %d problem(s) already reported, persisting)", old)
	}
	return []Violation{tr.Violation(inv, at, what, focus...).Key(strings.Join(fresh, " "))}
}

// jobs (6): every acknowledged job is done at least once (within the
// boss's failover and one redelivery of the heal, provided some running
// node is a candidate for the boss), and no worker does a task delegated
// by a boss older than one it already served.
type jobs struct{}

func (*jobs) Name() string  { return "jobs" }
func (*jobs) Settles() bool { return true }

func (inv *jobs) Check(tr *Trial) []Violation {
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+time.Second+redeliverAfter+3*time.Second)
	var undone []string
	var boss bool
	tr.Await(deadline, func() (bool, string) {
		undone = undone[:0]
		tr.r.withState(func(s *state) {
			for id := range s.jobsAcked {
				if _, ok := s.jobsDone[id]; !ok {
					undone = append(undone, id)
				}
			}
			boss, _ = s.candidates(bossName, Now())
		})
		return len(undone) == 0, ""
	})
	if !boss {
		// No running node is certainly a candidate for the boss (the
		// workload resigned them all): nobody can do the jobs, which wait
		// in the store. Judged again after a later trial, when one is.
		undone = nil
	}
	slices.Sort(undone)
	var vs []Violation
	for _, id := range undone {
		var acked int64
		tr.r.withState(func(s *state) { acked = s.jobsAcked[id] })
		vs = append(vs, tr.Violation(inv.Name(), acked,
			fmt.Sprintf("job %s, acknowledged %v before the heal, not done %v after it", id,
				time.Duration(tr.healedAt-acked).Round(time.Millisecond), time.Duration(deadline-tr.healedAt)),
			id, bossName).Key("undone|"+id))
	}
	var fence []Event
	tr.r.withState(func(s *state) { fence = slices.Clone(s.fence) })
	for _, e := range fence {
		vs = append(vs, tr.Violation(inv.Name(), e.T,
			fmt.Sprintf("worker %s did job %s for boss epoch %d after serving a newer boss", e.Arg(2), e.Arg(0), e.Int(1)),
			e.Arg(2)).Key(fmt.Sprintf("fence|%s|%d", e.Src, e.T)))
	}
	return vs
}

// noEphemerals (5): once every node has stopped, nothing ephemeral is left
// under the root (after the sessions of killed nodes have expired).
type noEphemerals struct{}

func (*noEphemerals) Name() string             { return "no-ephemerals" }
func (*noEphemerals) Check(*Trial) []Violation { return nil }
func (*noEphemerals) String() string           { return "no-ephemerals" }
func (inv *noEphemerals) Settles() bool        { return false }
func (inv *noEphemerals) CheckStopped(tr *Trial) []Violation {
	r := tr.r
	deadline := Now() + int64(2*r.cfg.SessionTimeout+2*time.Second)
	var left []string
	ok, why := tr.Await(deadline, func() (bool, string) {
		left = left[:0]
		var whys []string
		err := r.walk(r.root, func(p string, st *zk.Stat) {
			if st.EphemeralOwner != 0 {
				var owner string
				r.withState(func(s *state) { owner = s.sessions[st.EphemeralOwner] })
				left = append(left, p)
				whys = append(whys, fmt.Sprintf("%s (session %#x of %s)", p, st.EphemeralOwner, orUnknown(owner)))
			}
		})
		if err != nil {
			return false, fmt.Sprintf("walk %s: %v", r.root, err)
		}
		return len(whys) == 0, strings.Join(whys, "; ")
	})
	if ok {
		return nil
	}
	return []Violation{tr.Violation(inv.Name(), Now(), "ephemeral znodes left after every node stopped: "+why, left...).
		Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
}

func orUnknown(s string) string {
	if s == "" {
		return "no node of this run"
	}
	return s
}

// walk calls fn for every znode under (and including) p.
func (r *Run) walk(p string, fn func(string, *zk.Stat)) error {
	var children []string
	var st *zk.Stat
	err := r.foreignDo("children "+p, func(c *zk.Conn) error {
		var err error
		children, st, err = c.Children(p)
		return err
	})
	if err == zk.ErrNoNode {
		return nil
	}
	if err != nil {
		return err
	}
	fn(p, st)
	for _, ch := range children {
		if err := r.walk(p+"/"+ch, fn); err != nil {
			return err
		}
	}
	return nil
}
