package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Violation is an invariant that did not hold.
type Violation struct {
	Invariant string
	Class     string // the fault class of the trial that found it
	Trial     int
	Seed      uint64
	At        int64  // when, on the shared clock
	What      string // what did not hold
	Excerpt   string // the history around At
	key       string // identifies it, so a later check does not report it again
}

// Key sets the identity of a violation, so that the same fault seen by a
// later check is not reported twice.
func (v Violation) Key(key string) Violation {
	v.key = key
	return v
}

func (v Violation) String() string {
	return fmt.Sprintf("[%s] class %s, trial %d (reproduce: -seed=%d -classes=%s -trials=%d): %s\n%s",
		v.Invariant, v.Class, v.Trial, v.Seed, v.Class, v.Trial+1, v.What, v.Excerpt)
}

// Row is one fault class's line of the report.
type Row struct {
	Class       string
	Trials      int
	Faults      int
	Violations  int
	ByInvariant map[string]int
	Skipped     string // why the class did not run
}

// Report is what a run found.
type Report struct {
	Seed       uint64
	Rows       []Row
	Violations []Violation
	// What the history held, so that a clean table shows what was judged.
	GlobalTerms, Activations, GrainRequests, Holdings, LockTenures, ItemsPut, ItemsDone int
	// Barrier rounds over, and passes through both halves; config writes
	// acknowledged, and configs the subscribers received.
	BarrierRounds, BarrierPasses, ConfigWrites, ConfigsReceived int
}

// Table renders the report's rows.
func (rep *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d terms of globals, %d grain activations, %d grain requests handled, %d holdings of roles, %d tenures of the lock, %d work items put (acknowledged) and %d done\n",
		rep.Seed, rep.GlobalTerms, rep.Activations, rep.GrainRequests, rep.Holdings, rep.LockTenures, rep.ItemsPut, rep.ItemsDone)
	fmt.Fprintf(&b, "%d barrier rounds over with %d passes through both halves, %d config writes acknowledged, %d configs received by subscribers\n",
		rep.BarrierRounds, rep.BarrierPasses, rep.ConfigWrites, rep.ConfigsReceived)
	fmt.Fprintf(&b, "%-20s %7s %7s %10s  %s\n", "class", "trials", "faults", "violations", "by invariant")
	for _, r := range rep.Rows {
		if r.Skipped != "" {
			fmt.Fprintf(&b, "%-20s %7s %7s %10s  skipped: %s\n", r.Class, "-", "-", "-", r.Skipped)
			continue
		}
		var by []string
		for inv, n := range r.ByInvariant {
			by = append(by, fmt.Sprintf("%s:%d", inv, n))
		}
		slices.Sort(by)
		fmt.Fprintf(&b, "%-20s %7d %7d %10d  %s\n", r.Class, r.Trials, r.Faults, r.Violations, strings.Join(by, " "))
	}
	return b.String()
}

// noisy kinds are left out of excerpts unless they mention the focus.
var noisy = map[string]bool{"gtick": true, "ans": true, "capable": true, "jobstored": true}

// excerpt renders the history from 1 s before the trial (or 4 s before
// at, if that is earlier) until 1 s after at: the driver's events, the
// sessions' and those that mention focus, at most 80 lines, nearest at.
func (r *Run) excerpt(tr *Trial, at int64, focus []string) string {
	from := min(tr.start-int64(time.Second), at-int64(4*time.Second))
	to := at + int64(time.Second)
	mentions := func(e Event) bool {
		if len(focus) == 0 {
			return true
		}
		s := e.Src + " " + strings.Join(e.Args, " ")
		for _, f := range focus {
			if f != "" && strings.Contains(s, f) {
				return true
			}
		}
		return false
	}
	var picked []Event
	for _, e := range r.events() {
		if e.T < from || e.T > to {
			continue
		}
		relevant := e.Src == "driver" || mentions(e) || e.Kind == "session"
		if noisy[e.Kind] && !(mentions(e) && len(focus) > 0 && e.Kind != "gtick") {
			continue
		}
		if relevant {
			picked = append(picked, e)
		}
	}
	slices.SortStableFunc(picked, func(a, b Event) int { return compare(a.T, b.T) })
	const most = 80
	for len(picked) > most { // drop the line farthest from at
		if at-picked[0].T > picked[len(picked)-1].T-at {
			picked = picked[1:]
		} else {
			picked = picked[:len(picked)-1]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    history (seconds from the trial's start, shared monotonic clock; violation at %+.3fs):\n",
		float64(at-tr.start)/1e9)
	for _, e := range picked {
		b.WriteString("    ")
		b.WriteString(e.format(tr.start))
		b.WriteByte('\n')
	}
	return b.String()
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
