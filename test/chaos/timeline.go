package chaos

import (
	"fmt"
	"slices"
	"sort"
)

// Term is one run of a global actor, as its node reported it: from the
// Elected it handled ("gstart") to the Stopping it handled ("gstop"), or
// to its node's death.
type Term struct {
	Name      string
	Epoch     int64
	Candidate string // the term's candidate znode, from Elected
	Src       string // node label
	PID       string
	Start     int64
	End       int64  // 0 while it runs
	How       string // how it ended: "gstop", "dead", or "" while it runs
	// activity holds when the actor began to handle a message after
	// Elected (its ticks, the boss's delegations, the Submit that led to a
	// stored job), in order.
	activity []int64
	// lastWrite is when the boss last reported a write to the job store
	// (fenced with the candidate znode, so done while the term lasted in
	// ZooKeeper; reported from a continuation, perhaps later).
	lastWrite int64
}

func (t *Term) String() string {
	end := "running"
	if t.End != 0 {
		end = fmt.Sprintf("%s at %d", t.How, t.End)
	}
	return fmt.Sprintf("%s epoch %d on %s (start %d, %s)", t.Name, t.Epoch, t.Src, t.Start, end)
}

type pause struct{ from, to int64 } // to is 0 while paused

// termEvents names the event kinds that begin a term, show it acting, and
// end it: the globals' and the grain activations' terms are judged alike.
type termEvents struct{ start, act, stop string }

var (
	// gstart <name> <epoch> <pid> <candidate>, gtick <name> <epoch> <began>, gstop <name> <epoch>
	globalTerms = termEvents{"gstart", "gtick", "gstop"}
	// astart <kind/identity> <epoch> <pid> <member>, amsg <kind/identity> <epoch> <began>, astop <kind/identity> <epoch>
	activationTerms = termEvents{"astart", "amsg", "astop"}
	// rstart role/<r> <epoch> <pid> <set>, rtick role/<r> <epoch> <began>, rstop role/<r> <epoch>
	roleTerms = termEvents{"rstart", "rtick", "rstop"}
	// lstart lock/<name> <token> <path> <node>, ltick lock/<name> <token> <began>, lstop lock/<name> <token>
	lockTerms = termEvents{"lstart", "ltick", "lstop"}
)

// timeline holds the terms of every name (global names, or grain
// identities) and the pauses of every node, built from the history as it
// arrives.
type timeline struct {
	kinds  termEvents
	terms  map[string][]*Term // by name, in order of arrival
	open   map[candKey]*Term  // by (node, name)
	pauses map[string][]pause // by node
}

func newTimeline(kinds termEvents) *timeline {
	return &timeline{kinds: kinds, terms: map[string][]*Term{}, open: map[candKey]*Term{}, pauses: map[string][]pause{}}
}

func (tl *timeline) add(e Event) {
	switch e.Kind {
	case tl.kinds.start:
		k := candKey{e.Src, e.Arg(0)}
		if t := tl.open[k]; t != nil { // cannot happen: one actor per candidacy
			t.End, t.How = e.T, "gstart"
		}
		t := &Term{Name: e.Arg(0), Epoch: e.Int(1), Src: e.Src, PID: e.Arg(2), Candidate: e.Arg(3), Start: e.T}
		tl.open[k] = t
		tl.terms[t.Name] = append(tl.terms[t.Name], t)
	case tl.kinds.act: // <name> <epoch> <handler began>
		if t := tl.open[candKey{e.Src, e.Arg(0)}]; t != nil {
			t.addActivity(e.Int(2))
		}
	case "jobdeleg": // jobdeleg <job> <epoch> <worker> <handler began>
		if t := tl.open[candKey{e.Src, bossName}]; t != nil && tl.kinds == globalTerms {
			t.addActivity(e.Int(3))
		}
	case "jobstored": // jobstored <job> <epoch> <began>: the Submit handler began then
		if t := tl.open[candKey{e.Src, bossName}]; t != nil && tl.kinds == globalTerms {
			t.addActivity(e.Int(2))
			t.lastWrite = e.T
		}
	case tl.kinds.stop:
		k := candKey{e.Src, e.Arg(0)}
		if t := tl.open[k]; t != nil {
			t.End, t.How = e.T, "gstop"
			delete(tl.open, k)
		}
	case "dead":
		// Recorded once the node's last line is in; T is when it died.
		for k, t := range tl.open {
			if k.src == e.Arg(0) {
				t.End, t.How = e.T, "dead"
				delete(tl.open, k)
			}
		}
		if ps := tl.pauses[e.Arg(0)]; len(ps) > 0 && ps[len(ps)-1].to == 0 {
			ps[len(ps)-1].to = e.T
		}
	case "paused":
		tl.pauses[e.Arg(0)] = append(tl.pauses[e.Arg(0)], pause{from: e.T})
	case "resumed":
		if ps := tl.pauses[e.Arg(0)]; len(ps) > 0 && ps[len(ps)-1].to == 0 {
			ps[len(ps)-1].to = e.T
		}
	}
}

// addActivity notes that a handler began at b. A stored job is reported
// when its write returns, after later ticks: keep the slice sorted.
func (t *Term) addActivity(b int64) {
	i := sort.Search(len(t.activity), func(i int) bool { return t.activity[i] > b })
	t.activity = slices.Insert(t.activity, i, b)
}

// end is when a term stopped acting, as of now. A frozen process does not
// act; a global whose process was paused and that handled no message after
// the process was thawed stopped acting when it was frozen. (Its Stopping
// comes after the thaw, but the guard stopped it before any other message,
// which is what the library promises.)
func (tl *timeline) end(t *Term, now int64) int64 {
	end := t.End
	if end == 0 {
		end = now
	}
	for _, p := range tl.pauses[t.Src] {
		if p.from <= t.Start || p.from >= end {
			continue
		}
		if p.to == 0 || !activeIn(t.activity, p.to, end) {
			return p.from
		}
	}
	return end
}

// explainEnd says how end(t, now) was decided, for reports.
func (tl *timeline) explainEnd(t *Term, now int64, t0 int64) string {
	rel := func(x int64) string { return fmt.Sprintf("%+.3fs", float64(x-t0)/1e9) }
	end := t.End
	how := t.How
	if end == 0 {
		end, how = now, "still running"
	}
	for _, p := range tl.pauses[t.Src] {
		if p.from <= t.Start || p.from >= end {
			continue
		}
		if p.to == 0 {
			return fmt.Sprintf("frozen at %s and not thawed", rel(p.from))
		}
		i := sort.Search(len(t.activity), func(i int) bool { return t.activity[i] > p.to })
		if i < len(t.activity) && t.activity[i] <= end {
			return fmt.Sprintf("frozen %s..%s, then handled a message at %s; %s at %s",
				rel(p.from), rel(p.to), rel(t.activity[i]), how, rel(end))
		}
		return fmt.Sprintf("frozen at %s, handled nothing after the thaw at %s (%s at %s)", rel(p.from), rel(p.to), how, rel(end))
	}
	s := fmt.Sprintf("started %s, %s at %s", rel(t.Start), how, rel(end))
	if n := len(t.activity); n > 0 {
		s += fmt.Sprintf(", its last handler began at %s", rel(t.activity[n-1]))
	}
	if t.lastWrite != 0 {
		s += fmt.Sprintf(", last wrote the job store at %s", rel(t.lastWrite))
	}
	return s
}

// activeIn reports whether some activity lies in (from, to].
func activeIn(activity []int64, from, to int64) bool {
	i := sort.Search(len(activity), func(i int) bool { return activity[i] > from })
	return i < len(activity) && activity[i] <= to
}

// running returns the terms of name that were acting at time at.
func (tl *timeline) running(name string, at, now int64) []*Term {
	var out []*Term
	for _, t := range tl.terms[name] {
		if t.Start <= at && tl.end(t, now) > at {
			out = append(out, t)
		}
	}
	return out
}

// names returns every global name that has had a term.
func (tl *timeline) names() []string {
	var out []string
	for n := range tl.terms {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
