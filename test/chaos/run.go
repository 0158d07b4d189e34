package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// Config configures a Run.
type Config struct {
	Seed           uint64        // every random choice of the run derives from it
	Trials         int           // trials per fault class
	Classes        []string      // fault classes to run, by name; nil = all available
	Nodes          int           // node processes
	SessionTimeout time.Duration // the nodes' requested ZooKeeper session timeout
	Globals        []string      // global names every node stands for, besides the boss
	Services       []string      // service names the workload registers under
	// StopEachClass stops every node after each class, checks the
	// invariants that need them all stopped, and starts new ones. Without
	// it that happens once, at the end of the run.
	StopEachClass bool
	Verbose       bool // log every trial and the nodes' debug logs
	// Grains runs a protoactor cluster member on zkactor's provider in every
	// node process, with its workload and invariants (grains.go).
	Grains bool
	// Roles makes every node process apply for the roles of a role set
	// (package recipes/rolematch), with their invariants (roles.go).
	Roles bool
	// Locks runs a locker in every node process (package recipes/lock),
	// with its invariants (locks.go).
	Locks bool
	// Queue runs a work queue taker in every node process (package
	// recipes/workqueue), puts in the workload, and its invariant (queue.go).
	Queue bool
	// Subscriptions makes every node process subscribe to the workload's
	// services (package recipes/subscription), with its invariant
	// (subscriptions.go).
	Subscriptions bool
	// Barrier runs rounds of a double barrier of size Nodes (package
	// recipes/barrier), driven by the driver, with its invariants
	// (barrier.go).
	Barrier bool
	// Config makes every node process subscribe to a service's config
	// (package recipes/config) and write it, with its invariants
	// (config.go).
	Config       bool
	Invariants   []Invariant
	FaultClasses []FaultClass
}

// Run is one run of the checker: an ensemble, a proxy per (node, server),
// the node processes, and the history of everything that happened.
type Run struct {
	t       testing.TB
	cfg     Config
	ens     *zktest.Cluster
	proxies [][]*zktest.Proxy // [node slot][server]
	foreign *zk.Conn          // a client of no node: the tree walker and the fault maker
	root    string
	logDir  string
	t0      int64
	wg      sync.WaitGroup // the node readers

	mu         sync.Mutex
	history    []Event
	st         *state
	opKeys     map[string]string // "<label> <seq>" -> the key its answer settles
	nodes      []*nodeProc       // the current incarnation of each slot
	all        []*nodeProc
	incs       []int
	trial      *Trial // the trial running, for crashes to be charged to
	violations []Violation
	reported   map[string]bool // violations already reported, by key
	allowances []allowance     // overlaps allowed by fault classes (Trial.AllowOverlap)
	rows       map[string]*Row
	rowOrder   []string
	rounds     *rounds // with Config.Barrier: the barrier's rounds
}

// Start starts the ensemble, the proxies and the nodes, and waits until
// every node has joined.
func Start(t testing.TB, cfg Config) *Run {
	t.Helper()
	if cfg.Nodes < 2 {
		cfg.Nodes = 2
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 2 * time.Second
	}
	if cfg.Globals == nil {
		cfg.Globals = []string{"g0", "g1", "g2"}
	}
	if cfg.Services == nil {
		cfg.Services = []string{"svc0", "svc1", "svc2"}
	}
	if cfg.Invariants == nil {
		cfg.Invariants = DefaultInvariants()
	}
	if cfg.FaultClasses == nil {
		cfg.FaultClasses = DefaultFaultClasses()
	}
	r := &Run{
		t: t, cfg: cfg, t0: Now(),
		st:       newState(),
		opKeys:   map[string]string{},
		incs:     make([]int, cfg.Nodes),
		nodes:    make([]*nodeProc, cfg.Nodes),
		reported: map[string]bool{},
		rows:     map[string]*Row{},
	}
	var err error
	if r.logDir, err = os.MkdirTemp("", "zkactor-chaos-"); err != nil {
		t.Fatal(err)
	}
	r.ens = zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies())
	for range cfg.Nodes {
		var ps []*zktest.Proxy
		for _, addr := range r.ens.Addrs() {
			ps = append(ps, zktest.NewProxy(t, addr))
		}
		r.proxies = append(r.proxies, ps)
	}
	r.foreign = r.dialForeign()
	r.root = zktest.Root(t)
	for _, p := range []string{"/t", r.root, path.Join(r.root, jobsDir)} {
		if _, err := r.foreign.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	t.Cleanup(r.cleanup)
	r.record("driver", "run", "seed", cfg.Seed, "root", r.root, "logs", r.logDir)
	setup := r.newTrial(setupClass{}, 0)
	if err := r.startAll(setup); err != nil {
		t.Fatal(err)
	}
	setup.healedAt = Now()
	r.row(setup.class.Name()).Trials++
	if cfg.Barrier {
		r.rounds = r.startRounds()
		t.Cleanup(r.rounds.stop) // before r.cleanup, which kills the nodes
	}
	r.check(setup)
	return r
}

// dialForeign connects a plain go-zookeeper client straight to the servers.
func (r *Run) dialForeign() *zk.Conn {
	conn, events, err := zk.Connect(r.ens.Addrs(), 10*time.Second, zk.WithLogger(quietLogger{r}))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		conn.Close()
		for range events { // closed once go-zookeeper's goroutines are done
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline:
			r.t.Fatal("foreign client: no session within 30s")
		}
	}
}

type quietLogger struct{ r *Run }

func (l quietLogger) Printf(format string, args ...any) {
	if l.r.cfg.Verbose {
		l.r.t.Logf("foreign zk: "+format, args...)
	}
}

// cleanup stops whatever still runs; the logs stay if a violation was found.
func (r *Run) cleanup() {
	r.mu.Lock()
	nodes := append([]*nodeProc(nil), r.all...)
	r.mu.Unlock()
	for _, n := range nodes {
		n.kill()
	}
	r.wg.Wait()
	if len(r.violations) == 0 && !r.t.Failed() {
		_ = os.RemoveAll(r.logDir)
	} else {
		r.t.Logf("node logs kept in %s", r.logDir)
	}
}

// record adds an event of the driver's (or of src) to the history, now.
func (r *Run) record(src, kind string, args ...any) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addLocked(Now(), src, kind, args...)
}

// observeAt records an event that happened at t.
func (r *Run) observeAt(t int64, src, kind string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(t, src, kind, args...)
}

func (r *Run) addLocked(t int64, src, kind string, args ...any) Event {
	e := Event{T: t, Src: src, Kind: kind}
	for _, a := range args {
		e.Args = append(e.Args, fmt.Sprint(a))
	}
	r.applyLocked(e)
	return e
}

// observe records an event a node reported.
func (r *Run) observe(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyLocked(e)
}

func (r *Run) applyLocked(e Event) {
	r.history = append(r.history, e)
	switch e.Kind {
	case "ans":
		k := e.Src + " " + e.Arg(0)
		if key, ok := r.opKeys[k]; ok {
			delete(r.opKeys, k)
			r.st.pending[e.Src+" "+key]--
		}
	case "dead":
		for k := range r.opKeys {
			if strings.HasPrefix(k, e.Arg(0)+" ") {
				delete(r.opKeys, k)
			}
		}
	}
	r.st.apply(e)
	if r.cfg.Verbose && e.Kind != "gtick" && e.Kind != "ans" {
		r.t.Logf("%s", e.format(r.t0))
	}
}

// op sends a command whose outcome changes what must be registered or who
// is a candidate; key (an actor id or a global name) stays in doubt until
// the answer is in.
func (r *Run) op(n *nodeProc, key, verb string, args ...string) <-chan Event {
	return n.sendKeyed(key, verb, args...)
}

// events returns the history so far. Events are only ever appended, so
// the slice stays valid.
func (r *Run) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.history[:len(r.history):len(r.history)]
}

// withState runs f with the derived state locked.
func (r *Run) withState(f func(*state)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.st)
}

// liveNodes returns the current incarnation of every slot that runs.
func (r *Run) liveNodes() []*nodeProc {
	r.mu.Lock()
	nodes := append([]*nodeProc(nil), r.nodes...)
	r.mu.Unlock()
	var out []*nodeProc
	for _, n := range nodes {
		if n != nil && n.live() {
			out = append(out, n)
		}
	}
	return out
}

// startAll starts a node in every slot without one and prepares it.
func (r *Run) startAll(tr *Trial) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for slot := range r.cfg.Nodes {
		r.mu.Lock()
		n := r.nodes[slot]
		r.mu.Unlock()
		if n != nil && !isClosed(n.exited) {
			continue
		}
		// Chosen here: the trial's Rand is not safe for concurrent use.
		svc := r.cfg.Services[tr.Rand.IntN(len(r.cfg.Services))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.startPrepared(slot, svc); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startPrepared starts the next incarnation of slot and waits until it has
// its worker, its candidacies and one service actor, registered under svc.
func (r *Run) startPrepared(slot int, svc string) (*nodeProc, error) {
	n, err := r.startNode(slot)
	if err != nil {
		return nil, err
	}
	if err := n.waitReady(60 * time.Second); err != nil {
		return nil, err
	}
	wait := func(ch <-chan Event) {
		select {
		case <-ch:
		case <-time.After(2 * commandWait):
		}
	}
	wait(r.op(n, workerService, "worker"))
	for _, name := range append([]string{bossName}, r.cfg.Globals...) {
		wait(r.op(n, name, "cand", name))
	}
	wait(r.spawn(n, svc))
	if r.cfg.Config { // the record and this process's override, written at least once
		wait(n.send("cset"))
		wait(n.send("cover"))
	}
	return n, nil
}

// spawn starts a service actor on n, registered under svc.
func (r *Run) spawn(n *nodeProc, svc string) <-chan Event {
	n.mu.Lock()
	n.actors++
	id := fmt.Sprintf("a%d", n.actors)
	n.mu.Unlock()
	return r.op(n, id, "spawn", svc, id)
}

// stopAll stops every node gracefully.
func (r *Run) stopAll() {
	r.mu.Lock()
	nodes := append([]*nodeProc(nil), r.nodes...)
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.stop(30 * time.Second)
		}()
	}
	wg.Wait()
}

// RunClass runs cfg.Trials trials of a fault class.
func (r *Run) RunClass(c FaultClass) {
	row := r.row(c.Name())
	if err := c.Available(r); err != nil {
		row.Skipped = err.Error()
		return
	}
	for i := range r.cfg.Trials {
		tr := r.newTrial(c, i)
		r.runTrial(tr)
		row.Trials++
		row.Faults += tr.faults
	}
	if r.cfg.StopEachClass {
		r.stopAndCheck(r.newTrial(c, r.cfg.Trials))
	}
}

// Finish stops every node, checks what needs them all stopped, and returns
// the report.
func (r *Run) Finish() *Report {
	if r.rounds != nil {
		r.rounds.stop()
	}
	if !r.cfg.StopEachClass || len(r.rowOrder) == 0 {
		r.stopAndCheck(r.newTrial(finalClass{}, 0))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{Seed: r.cfg.Seed, Violations: append([]Violation(nil), r.violations...)}
	for _, ts := range r.st.tl.terms {
		rep.GlobalTerms += len(ts)
	}
	for _, ts := range r.st.atl.terms {
		rep.Activations += len(ts)
	}
	for _, ts := range r.st.rtl.terms {
		rep.Holdings += len(ts)
	}
	for _, ts := range r.st.ltl.terms {
		rep.LockTenures += len(ts)
	}
	rep.ItemsPut, rep.ItemsDone = len(r.st.qput), len(r.st.qdone)
	for _, rd := range r.st.bar.rounds {
		if rd.done != 0 {
			rep.BarrierRounds++
		}
		for _, p := range rd.parts {
			if p.out != 0 {
				rep.BarrierPasses++
			}
		}
	}
	rep.ConfigWrites, rep.ConfigsReceived = r.st.cfg.ackedN, r.st.cfg.gotN
	for _, e := range r.history {
		if e.Kind == activationTerms.act {
			rep.GrainRequests++
		}
	}
	for _, name := range r.rowOrder {
		rep.Rows = append(rep.Rows, *r.rows[name])
	}
	return rep
}

// stopAndCheck stops every node, runs the invariants that need every node
// stopped, and starts new nodes (unless the run is over).
func (r *Run) stopAndCheck(tr *Trial) {
	r.setTrial(tr)
	r.stopAll()
	for _, inv := range r.cfg.Invariants {
		if s, ok := inv.(StoppedInvariant); ok {
			r.addViolations(tr, s.CheckStopped(tr))
		}
	}
	if _, final := tr.class.(finalClass); !final {
		if err := r.startAll(tr); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *Run) row(class string) *Row {
	r.mu.Lock()
	defer r.mu.Unlock()
	row := r.rows[class]
	if row == nil {
		row = &Row{Class: class, ByInvariant: map[string]int{}}
		r.rows[class] = row
		r.rowOrder = append(r.rowOrder, class)
	}
	return row
}

func (r *Run) setTrial(tr *Trial) {
	r.mu.Lock()
	r.trial = tr
	r.mu.Unlock()
}

// trialSeed derives a trial's randomness from the run's seed, the class
// and the trial's index, so "-seed S -classes C -trials N" replays the
// first N trials of class C of any run with seed S.
func trialSeed(seed uint64, class string, i int) (uint64, uint64) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", class, i)
	return seed, h.Sum64()
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// foreignDo runs one request of the foreign client, retrying while the
// ensemble is between leaders, for at most 10 s.
func (r *Run) foreignDo(what string, fn func(*zk.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := fn(r.foreign)
		if err == nil || !(errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrSessionMoved)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// newRand is the trial's random source.
func newRand(seed uint64, class string, i int) *rand.Rand {
	return rand.New(rand.NewPCG(trialSeed(seed, class, i)))
}
