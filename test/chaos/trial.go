package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Trial is one fault of one class: the workload runs, the fault is
// injected and held, healed, and then every invariant is checked.
type Trial struct {
	r     *Run
	class FaultClass
	Index int
	// Rand chooses the fault. It is the trial's own (see trialSeed) and is
	// used by the fault class only; the workload has another.
	Rand  *rand.Rand
	wrand *rand.Rand

	start        int64
	healedAt     int64
	faults       int
	allowOverlap time.Duration
	after        []func()
}

func (r *Run) newTrial(c FaultClass, i int) *Trial {
	tr := &Trial{
		r: r, class: c, Index: i,
		Rand:  newRand(r.cfg.Seed, c.Name(), i),
		wrand: newRand(r.cfg.Seed, c.Name()+"/workload", i),
		start: Now(),
	}
	if _, ok := c.(setupClass); ok {
		tr.healedAt = tr.start
	}
	return tr
}

// Run is the run the trial belongs to.
func (tr *Trial) Run() *Run { return tr.r }

// Class is the name of the trial's fault class.
func (tr *Trial) Class() string { return tr.class.Name() }

// Fault records one injected fault (counted in the report) and what it was.
func (tr *Trial) Fault(format string, args ...any) {
	tr.faults++
	tr.r.record("driver", "fault", tr.class.Name(), fmt.Sprintf(format, args...))
}

// Note records something the fault class did, for history excerpts.
func (tr *Trial) Note(format string, args ...any) {
	tr.r.record("driver", "note", fmt.Sprintf(format, args...))
}

// MarkHealed sets the moment the fault counts as healed, for a class whose
// heal function goes on after that (restarting a killed node, say).
// Deadlines of the invariants count from it.
func (tr *Trial) MarkHealed() {
	if tr.healedAt == 0 {
		tr.healedAt = Now()
	}
}

// HealedAt is when the fault was healed.
func (tr *Trial) HealedAt() int64 { return tr.healedAt }

// SessionTimeout is the nodes' requested session timeout.
func (tr *Trial) SessionTimeout() time.Duration { return tr.r.cfg.SessionTimeout }

// Hold keeps the fault for d: a timed part of the fault schedule, not a
// synchronisation.
func (tr *Trial) Hold(d time.Duration) { time.Sleep(d) }

// Between returns a random duration in [lo, hi).
func (tr *Trial) Between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(tr.Rand.Int64N(int64(hi-lo)+1))
}

// After registers f to run once the trial's invariants are checked (to
// remove what the fault left for the checks to meet, say).
func (tr *Trial) After(f func()) { tr.after = append(tr.after, f) }

// AllowOverlap lets two globals of one name overlap by up to d when the
// newer one starts during this trial (from its start to its end): a fault
// that a node can only learn of through a notification (a foreign client
// deleting a leader's znode) cannot be fenced faster. The allowance stays
// with the overlap: a later trial that judges it (the newer term ended
// after this trial's checks) applies it too.
func (tr *Trial) AllowOverlap(d time.Duration) {
	tr.allowOverlap = max(tr.allowOverlap, d)
	tr.r.mu.Lock()
	defer tr.r.mu.Unlock()
	tr.r.allowances = append(tr.r.allowances, allowance{from: tr.start, d: d, tr: tr})
}

// allowance is an overlap allowed to terms that start in [from, to]; to is
// 0 until the trial has ended.
type allowance struct {
	from, to int64
	d        time.Duration
	tr       *Trial
}

// allowedOverlap is the overlap allowed to a term that started at t.
func (r *Run) allowedOverlap(t int64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	for _, a := range r.allowances {
		if t >= a.from && (a.to == 0 || t <= a.to) {
			d = max(d, a.d)
		}
	}
	return d
}

// endAllowances closes the allowances of a trial that has ended.
func (r *Run) endAllowances(tr *Trial, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.allowances {
		if r.allowances[i].tr == tr && r.allowances[i].to == 0 {
			r.allowances[i].to = at
		}
	}
}

// Await polls cond until it holds or the deadline (a [Now] reading)
// passes, and returns cond's last explanation when it never held.
func (tr *Trial) Await(deadline int64, cond func() (ok bool, why string)) (bool, string) {
	for {
		ok, why := cond()
		if ok {
			return true, ""
		}
		if Now() > deadline {
			return false, why
		}
		time.Sleep(100 * time.Millisecond) // a poll interval; the deadline bounds the wait
	}
}

// Violation makes a violation of inv found in this trial, at time at,
// with an excerpt of the history around it. Events that mention one of
// focus (a global name, a PID, a job id) are preferred in the excerpt.
func (tr *Trial) Violation(inv string, at int64, what string, focus ...string) Violation {
	return Violation{
		Invariant: inv, Class: tr.class.Name(), Trial: tr.Index, Seed: tr.r.cfg.Seed,
		At: at, What: what, Excerpt: tr.r.excerpt(tr, at, focus),
	}
}

// runTrial runs one trial.
func (r *Run) runTrial(tr *Trial) {
	r.setTrial(tr)
	r.record("driver", "trial", tr.class.Name(), tr.Index)
	wl := r.startWorkload(tr)
	tr.Hold(tr.Between(200*time.Millisecond, 600*time.Millisecond))
	heal, err := tr.class.Inject(tr)
	if err != nil {
		r.record("driver", "faulterr", err)
		r.t.Logf("%s trial %d: inject: %v", tr.class.Name(), tr.Index, err)
	}
	if heal != nil {
		heal()
	}
	tr.MarkHealed()
	r.observeAt(tr.healedAt, "driver", "healed", tr.class.Name(), tr.Index)
	wl.stop()
	if err := r.startAll(tr); err != nil { // a slot whose node died
		r.t.Fatal(err)
	}
	r.check(tr)
	for _, f := range tr.after {
		f()
	}
	end := r.record("driver", "trialend", tr.class.Name(), tr.Index)
	r.endAllowances(tr, end.T)
	if r.cfg.Verbose {
		r.t.Logf("%s trial %d: %d fault(s), %.1fs", tr.class.Name(), tr.Index, tr.faults, since(tr.start).Seconds())
	}
}

// check runs every invariant: first those that wait for the cluster to
// settle, together, then those that judge the settled history.
func (r *Run) check(tr *Trial) {
	var wg sync.WaitGroup
	for _, inv := range r.cfg.Invariants {
		if s, ok := inv.(Settling); ok && s.Settles() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.addViolations(tr, inv.Check(tr))
			}()
		}
	}
	wg.Wait()
	for _, inv := range r.cfg.Invariants {
		if s, ok := inv.(Settling); !ok || !s.Settles() {
			r.addViolations(tr, inv.Check(tr))
		}
	}
}

func (r *Run) addViolations(tr *Trial, vs []Violation) {
	row := r.row(tr.class.Name())
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		key := v.Invariant + "|" + v.key
		if v.key != "" && r.reported[key] {
			continue
		}
		r.reported[key] = true
		r.violations = append(r.violations, v)
		row.Violations++
		row.ByInvariant[v.Invariant]++
		r.t.Logf("VIOLATION %s", v.String())
	}
}

// crashed reports a node process that died without being told to.
func (r *Run) crashed(n *nodeProc, what string) {
	r.mu.Lock()
	tr := r.trial
	r.mu.Unlock()
	if tr == nil {
		tr = r.newTrial(setupClass{}, 0)
	}
	v := tr.Violation("processes", Now(), what, n.label)
	v.key = "crash " + n.label
	r.addViolations(tr, []Violation{v})
}

// workload is the background activity of a trial: registrations,
// candidacies, jobs and lookups on random live nodes.
type workload struct {
	stopCh chan struct{}
	done   chan struct{}
	ops    sync.WaitGroup // operations waiting for their answer
}

func (r *Run) startWorkload(tr *Trial) *workload {
	wl := &workload{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(wl.done)
		jobs := 0
		for {
			select {
			case <-wl.stopCh:
				return
			case <-time.After(time.Duration(30+tr.wrand.IntN(120)) * time.Millisecond):
			}
			r.workOnce(tr, wl, &jobs)
		}
	}()
	return wl
}

// stop ends the workload and waits until every operation it started has
// been answered (or its node has died).
func (wl *workload) stop() {
	close(wl.stopCh)
	<-wl.done
	wl.ops.Wait()
}

func (wl *workload) await(ch <-chan Event) {
	wl.ops.Add(1)
	go func() {
		defer wl.ops.Done()
		select {
		case <-ch:
		case <-time.After(3 * commandWait): // only a node frozen for long gets here
		}
	}()
}

func (r *Run) workOnce(tr *Trial, wl *workload, jobs *int) {
	rng := tr.wrand
	nodes := r.liveNodes()
	if len(nodes) == 0 {
		return
	}
	n := nodes[rng.IntN(len(nodes))]
	idle := func(key string) bool {
		busy := false
		r.withState(func(s *state) { busy = s.pending[n.label+" "+key] > 0 })
		return !busy
	}
	svc := r.cfg.Services[rng.IntN(len(r.cfg.Services))]
	switch x := rng.IntN(100); {
	case x < 40: // registrations: spawn, stop, unregister, register again
		ids := r.actorsOf(n)
		if len(ids) < 4 || rng.IntN(3) == 0 {
			wl.await(r.spawn(n, svc))
			return
		}
		id := ids[rng.IntN(len(ids))]
		if !idle(id) {
			return
		}
		svc = r.serviceOf(n, id)
		switch rng.IntN(3) {
		case 0:
			wl.await(r.op(n, id, "stop", id))
		case 1:
			wl.await(r.op(n, id, "unregister", svc, id))
		case 2:
			wl.await(r.op(n, id, "register", svc, id))
		}
	case x < 60: // candidacies
		names := append([]string{bossName}, r.cfg.Globals...)
		name := names[rng.IntN(len(names))]
		if !idle(name) {
			return
		}
		var st status
		r.withState(func(s *state) { st = s.cands[candKey{n.label, name}] })
		if st == present && rng.IntN(2) == 0 {
			wl.await(r.op(n, name, "resign", name))
		} else if st != present {
			wl.await(r.op(n, name, "cand", name))
		}
	case x < 80:
		*jobs++
		wl.await(n.send("submit", fmt.Sprintf("job-%s-%d-%d", tr.class.Name(), tr.Index, *jobs)))
	case x < 86 && r.cfg.Grains:
		wl.await(n.send("grain", grainIdentity(rng.IntN(grainCount))))
	case x < 91 && r.cfg.Config: // a compare-and-set write: the record, or the node's override
		switch rng.IntN(3) {
		case 0:
			wl.await(n.send("cset"))
		case 1: // two writers of the record at once, most likely at one version: one is told of the conflict
			wl.await(n.send("cset"))
			wl.await(nodes[rng.IntN(len(nodes))].send("cset"))
		case 2:
			wl.await(n.send("cover"))
		}
	case x < 96 && r.cfg.Queue:
		*jobs++
		wl.await(n.send("put", fmt.Sprintf("k-%s-%d-%d", tr.class.Name(), tr.Index, *jobs)))
	default:
		wl.await(n.send("capable", svc))
	}
}

// actorsOf lists the service actors of n that have not been stopped.
func (r *Run) actorsOf(n *nodeProc) []string {
	var ids []string
	r.withState(func(s *state) {
		seen := map[string]bool{}
		for k := range s.regs {
			if k.src != n.label || k.service == workerService {
				continue
			}
			id := k.pid[strings.LastIndexByte(k.pid, '/')+1:]
			if !seen[id] && !s.stoppedActor(n.label, k.pid) {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	})
	slices.Sort(ids)
	return ids
}

// serviceOf is the service an actor was spawned for.
func (r *Run) serviceOf(n *nodeProc, id string) string {
	svc := ""
	r.withState(func(s *state) {
		for k := range s.regs {
			if k.src == n.label && strings.HasSuffix(k.pid, "/"+id) {
				svc = k.service
			}
		}
	})
	return svc
}
