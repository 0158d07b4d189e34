package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/recipes/barrier"
)

// The barrier: with Config.Barrier, the driver runs rounds of a double
// barrier (package recipes/barrier) of size Config.Nodes, one barrier name
// per round (rounds under one name must not overlap: a participant still
// in Leave would meet the next round's arrivals). A round begins with
// "bround <r> 1" sent to every live node; each enters after a random
// 0–300 ms (so that arrivals are spread and an early pass shows), stays
// inside for 50–150 ms, and leaves.
//
// While nobody is inside, participants still entering may need company
// or may be stragglers (see rounds.progress): when a participant died or
// failed before anyone entered, the driver tells live nodes that take no
// part at the moment to take part ("bround <r> <k>", their k-th
// participation in r); a straggler, cut off after it arrived and back on a
// new session after the others left (the recipe's late arrival, which
// waits for the name's next use), is told to give up once its node is
// connected and quiet for 2 s ("bcancel <r> <k>"). Events name round r's
// barrier, chaos-<r>. The driver records
//
//	bround chaos-<r> <labels...>     a round began with these nodes
//	bjoin chaos-<r> <label> <k>      a node takes part in round r (again)
//	bcancel chaos-<r> <label> <k>    a straggler is told to give up
//	bdone chaos-<r>                  every participation in round r ended: left, failed or dead
//
// and a node reports, for its k-th participation in round r,
//
//	barrive chaos-<r> <k>            it calls Enter
//	bin chaos-<r> <k>                Enter returned nil
//	bleaving chaos-<r> <k>           it calls Leave
//	bout chaos-<r> <k>               Leave returned nil
//	bfail chaos-<r> <k> <error>      Enter or Leave failed (ctx ended: told to give up, or the node stops), or it was busy
//
// The recipe's promise, judged over those events (issue 11):
//
//	barrier-enter: no participant returns from Enter of round r before
//	    size participants of round r were there at once (arrived, and
//	    neither out, failed nor dead; a killed participant counts until its
//	    session can have expired, session timeout + 2 s after the kill, as
//	    its znode does).
//	barrier-leave: no participant returns from Leave of round r while
//	    another participant of r that had entered before has not called
//	    Leave, unless that one's session had ended: dead, failed, or an
//	    expiry whose disconnect or freeze began before.
//	live-barrier: within session timeout + 5 s of the heal, a round begun
//	    after the heal completes, with at least one participant through
//	    both halves.
//	barrier-leftovers: within session timeout + 5 s of the heal, a round
//	    over before the heal left no participant znode, and its ready znode
//	    only if a participant did not finish Leave or its session ended
//	    while it took part (the recipe deletes ready with the last one out;
//	    when the lowest participant's znode goes with its session, the
//	    others' Leave returns and nobody deletes it; a later use of the name
//	    would renew it).
const (
	childBarrierEnv = "ZKACTOR_CHAOS_BARRIER" // the barrier's size ("": the node takes no part)
	barrierPrefix   = "chaos-"                // round r is the barrier chaos-<r>
)

func barrierName(round int) string { return barrierPrefix + strconv.Itoa(round) }

// barrierPart is a node process's side: one round at a time, on request.
type barrierPart struct {
	node   *zka.Node
	root   string
	size   int
	log    *slog.Logger
	out    *emitter
	ctx    context.Context // ends when the node stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	busy    bool
	current string             // "<r> <k>" of the participation under way
	giveUp  context.CancelFunc // ends it (the driver's "bcancel")
}

func startBarrierPart(node *zka.Node, root string, size int, log *slog.Logger, out *emitter) *barrierPart {
	ctx, cancel := context.WithCancel(context.Background())
	return &barrierPart{node: node, root: root, size: size, log: log.With("part", "barrier"), out: out, ctx: ctx, cancel: cancel}
}

// round is the "bround <r>" command: it starts the node's part of round r
// and returns at once.
func (bp *barrierPart) round(arg, k string) (string, error) {
	if bp == nil {
		return "", fmt.Errorf("this node takes no part in barriers")
	}
	r, err := strconv.Atoi(arg)
	if err != nil {
		return "", fmt.Errorf("round %q: %w", arg, err)
	}
	b, err := barrier.New(bp.node.Session(), bp.root, barrierName(r), bp.size, barrier.Options{NodeID: bp.node.NodeID(), Logger: bp.log})
	if err != nil {
		bp.out.emit("bfail", barrierName(r), k, err)
		return "", err
	}
	bp.mu.Lock()
	if bp.busy || bp.ctx.Err() != nil {
		bp.mu.Unlock()
		bp.out.emit("bfail", barrierName(r), k, "busy or stopping")
		return "", fmt.Errorf("round %d: busy or stopping", r)
	}
	ctx, cancel := context.WithCancel(bp.ctx)
	bp.busy, bp.current, bp.giveUp = true, arg+" "+k, cancel
	bp.wg.Add(1)
	bp.mu.Unlock()
	go func() {
		defer bp.wg.Done()
		defer cancel()
		bp.run(ctx, r, k, b)
	}()
	return "", nil
}

// giveUpRound is the "bcancel <r> <k>" command: the participation gives up
// (Enter or Leave returns ctx's error), as a caller may.
func (bp *barrierPart) giveUpRound(r, k string) (string, error) {
	if bp == nil {
		return "", fmt.Errorf("this node takes no part in barriers")
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if !bp.busy || bp.current != r+" "+k {
		return "", fmt.Errorf("round %s %s is not under way", r, k)
	}
	bp.giveUp()
	return "", nil
}

// run is one round: enter, stay inside a little, leave. The events are
// emitted around the calls, so the history brackets what ZooKeeper saw.
func (bp *barrierPart) run(ctx context.Context, r int, k string, b *barrier.Barrier) {
	name := barrierName(r)
	done := func(kind string, args ...any) {
		// Not busy before the last event: the driver may start the next
		// round as soon as it reads it.
		bp.mu.Lock()
		bp.busy = false
		bp.mu.Unlock()
		bp.out.emit(kind, append([]any{name, k}, args...)...)
	}
	if !bp.pause(ctx, time.Duration(rand.N(300))*time.Millisecond) {
		done("bfail", "stopping before Enter")
		return
	}
	bp.out.emit("barrive", name, k)
	if err := b.Enter(ctx); err != nil {
		done("bfail", fmt.Errorf("enter: %w", err))
		return
	}
	bp.out.emit("bin", name, k)
	bp.pause(ctx, 50*time.Millisecond+time.Duration(rand.N(100))*time.Millisecond)
	for {
		bp.out.emit("bleaving", name, k)
		err := b.Leave(ctx)
		if err == nil {
			done("bout")
			return
		}
		if ctx.Err() != nil {
			done("bfail", fmt.Errorf("leave: %w", err))
			return
		}
		// Leave returns only when ctx ends or the session closes; should
		// it fail otherwise, call it again as the recipe says.
		bp.pause(ctx, 100*time.Millisecond)
	}
}

// pause waits d, or less if ctx ends; false if it ends.
func (bp *barrierPart) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop ends the round under way (its Enter or Leave fails with ctx's
// error) and waits for it.
func (bp *barrierPart) stop() {
	bp.mu.Lock()
	bp.cancel()
	bp.mu.Unlock()
	bp.wg.Wait()
}

// bpart is one participation in one round, as the history tells it: a
// node (label) told for the k-th time (key "<label>#<k>"); times are [Now]
// readings, 0 for never.
type bpart struct {
	label                    string
	joined                   int64 // the driver told it (bround or bjoin)
	arrive, in, leaving, out int64
	fail                     int64
	failWhy                  string
	judgedEnter, judgedLeave bool
}

// bround is one round of the barrier.
type bround struct {
	n       int
	started int64
	done    int64 // bdone, 0 while it runs
	parts   map[string]*bpart
	order   []string // keys, in order of joining
	clean   bool     // barrier-leftovers found its directory clean
}

// barrierHistory is the barrier's part of the derived state.
type barrierHistory struct {
	rounds   map[int]*bround
	last     int
	sessions map[string]Event // label -> its last session event
}

func newBarrierHistory() *barrierHistory {
	return &barrierHistory{rounds: map[int]*bround{}, sessions: map[string]Event{}}
}

func (h *barrierHistory) part(round int, label, k string) *bpart {
	rd := h.rounds[round]
	if rd == nil {
		return nil
	}
	key := label + "#" + k
	if p := rd.parts[key]; p != nil {
		return p
	}
	p := &bpart{label: label}
	rd.parts[key] = p
	rd.order = append(rd.order, key)
	return p
}

// roundOf is the round of a barrier name ("chaos-7" -> 7), 0 for none.
func roundOf(name string) int {
	r, _ := strconv.Atoi(strings.TrimPrefix(name, barrierPrefix))
	return r
}

func (h *barrierHistory) apply(e Event) {
	switch e.Kind {
	case "session": // session <kind> ...: the barrier's driver waits for stragglers to settle
		h.sessions[e.Src] = e
	case "bround": // bround <name> <labels...>: each told for the first time
		r := roundOf(e.Arg(0))
		h.rounds[r] = &bround{n: r, started: e.T, parts: map[string]*bpart{}}
		h.last = max(h.last, r)
		for _, l := range e.Args[1:] {
			h.part(r, l, "1").joined = e.T
		}
	case "bjoin": // bjoin <r> <label> <k>
		if p := h.part(roundOf(e.Arg(0)), e.Arg(1), e.Arg(2)); p != nil {
			p.joined = e.T
		}
	case "bdone":
		if rd := h.rounds[roundOf(e.Arg(0))]; rd != nil {
			rd.done = e.T
		}
	case "barrive", "bin", "bleaving", "bout", "bfail": // <kind> <r> <k> ...
		p := h.part(roundOf(e.Arg(0)), e.Src, e.Arg(1))
		if p == nil {
			return
		}
		switch e.Kind {
		case "barrive":
			p.arrive = e.T
		case "bin":
			p.in = e.T
		case "bleaving":
			if p.leaving == 0 {
				p.leaving = e.T
			}
		case "bout":
			p.out = e.T
		case "bfail":
			p.fail, p.failWhy = e.T, e.Rest(2)
		}
	}
}

// rounds is the driver's side: it runs rounds one after the other until
// stopped. It is owned by the Run (Start starts it, Finish and cleanup stop
// it).
type rounds struct {
	r      *Run
	stopCh chan struct{}
	done   chan struct{}
	once   sync.Once
	// stragglers told to give up, by round: "<label> <k>" (the loop's own)
	cancelled map[int]map[string]bool
}

func (r *Run) startRounds() *rounds {
	rs := &rounds{r: r, stopCh: make(chan struct{}), done: make(chan struct{})}
	go rs.loop()
	return rs
}

func (rs *rounds) stop() {
	rs.once.Do(func() { close(rs.stopCh) })
	<-rs.done
}

// roundTick is the loop's poll interval: a round's progress is read from
// the history.
const roundTick = 50 * time.Millisecond

func (rs *rounds) loop() {
	defer close(rs.done)
	r := rs.r
	round := 0
	for {
		// A round begins with the live nodes; none, none yet.
		nodes := r.liveNodes()
		if len(nodes) > 0 {
			round++
			var labels []any
			for _, n := range nodes {
				labels = append(labels, n.label)
			}
			r.record("driver", "bround", append([]any{barrierName(round)}, labels...)...)
			for _, n := range nodes {
				n.send("bround", strconv.Itoa(round), "1")
			}
		}
		for len(nodes) > 0 {
			select {
			case <-rs.stopCh:
				return
			case <-time.After(roundTick):
			}
			if rs.progress(round) {
				r.record("driver", "bdone", barrierName(round))
				break
			}
		}
		if len(nodes) == 0 {
			select {
			case <-rs.stopCh:
				return
			case <-time.After(roundTick):
			}
		}
	}
}

// straggleGrace is how long the driver lets a straggler settle (see
// progress) before it tells it to give up.
const straggleGrace = 2 * time.Second

// progress reports whether round is over: every participation out, failed
// or dead. While nobody is inside, participants still entering are of two
// kinds:
//
//   - Nobody of the round has entered yet: they wait for company, since a
//     participant died or failed before the count. The driver tells live
//     nodes that take no part at the moment to take part (again), up to
//     size.
//   - Someone has entered (and all have left since): they are stragglers,
//     cut off (frozen, partitioned) after they arrived, whose sessions
//     expired before they saw the opening. Back on a new session, one
//     either passes (the barrier admitted its old znode) or arrives again
//     at the back and waits for size participants of the name's next use,
//     as the recipe documents; company would then meet a straggler that
//     passed late and is in Leave, two uses of one name at once. So once a
//     straggler's node is connected and quiet for straggleGrace, the
//     driver tells it to give up ("bcancel"), as a caller would.
func (rs *rounds) progress(round int) bool {
	r := rs.r
	over, entered := true, false
	inside, entering := 0, 0
	active := map[string]bool{} // labels with a participation under way
	told := map[string]int{}    // labels -> times told
	var settled []string        // "<label> <k>" of stragglers that may be told to give up
	now := Now()
	r.withState(func(s *state) {
		rd := s.bar.rounds[round]
		var lastOut int64
		for _, key := range rd.order {
			lastOut = max(lastOut, rd.parts[key].out)
		}
		for _, key := range rd.order {
			p := rd.parts[key]
			told[p.label]++
			if p.in != 0 {
				entered = true
			}
			if p.out != 0 || p.fail != 0 || s.nodeState[p.label] == "dead" {
				continue
			}
			over = false
			active[p.label] = true
			if p.in != 0 {
				inside++
				continue
			}
			entering++
			sess := s.bar.sessions[p.label]
			quiet := max(lastOut, p.arrive, sess.T)
			if s.nodeState[p.label] == "running" && sess.Arg(0) != "disconnected" && now-quiet > int64(straggleGrace) {
				settled = append(settled, p.label+" "+key[strings.IndexByte(key, '#')+1:])
			}
		}
	})
	if over || inside > 0 {
		return over
	}
	if entered {
		for _, st := range settled {
			if rs.cancelled[round][st] {
				continue
			}
			if rs.cancelled[round] == nil {
				rs.cancelled = map[int]map[string]bool{round: {}}
			}
			rs.cancelled[round][st] = true
			label, k, _ := strings.Cut(st, " ")
			for _, n := range r.liveNodes() {
				if n.label == label {
					r.record("driver", "bcancel", barrierName(round), label, k)
					n.send("bcancel", strconv.Itoa(round), k)
				}
			}
		}
		return false
	}
	if entering >= r.cfg.Nodes {
		return false
	}
	for _, n := range r.liveNodes() {
		if entering >= r.cfg.Nodes {
			break
		}
		if active[n.label] {
			continue
		}
		k := strconv.Itoa(told[n.label] + 1)
		r.record("driver", "bjoin", barrierName(round), n.label, k)
		n.send("bround", strconv.Itoa(round), k)
		entering++
	}
	return false
}

// nodeEnds lists, for a node, the instants from which its session may have
// ended while it lived: for every "session expired" it reported, the
// first disconnect or freeze since it was last connected (or the expiry
// itself). A frozen process reports its disconnect only after the thaw.
func nodeEnds(events []Event, label string) []int64 {
	var ends []int64
	var gap int64
	for _, e := range events {
		switch {
		case e.Src == label && e.Kind == "session" && (e.Arg(0) == "disconnected" || e.Arg(0) == "paused"),
			e.Src == "driver" && e.Kind == "paused" && e.Arg(0) == label:
			if gap == 0 {
				gap = e.T
			}
		case e.Src == label && e.Kind == "session" && e.Arg(0) == "connected":
			gap = 0
		case e.Src == label && e.Kind == "session" && e.Arg(0) == "expired":
			if gap == 0 {
				gap = e.T
			}
			ends = append(ends, gap)
			gap = 0
		}
	}
	return ends
}

// barrierEnter: no participant passes Enter before size participants were
// there at once.
type barrierEnter struct{}

func (*barrierEnter) Name() string { return "barrier-enter" }

// CheckStopped judges the passes since the last trial's check.
func (inv *barrierEnter) CheckStopped(tr *Trial) []Violation { return inv.Check(tr) }

func (inv *barrierEnter) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Barrier {
		return nil
	}
	size := tr.r.cfg.Nodes
	slack := int64(tr.r.cfg.SessionTimeout + 2*time.Second)
	var fs []finding
	tr.r.withState(func(s *state) {
		for _, rd := range s.bar.rounds {
			for _, l := range rd.order {
				p := rd.parts[l]
				if p.in == 0 || p.judgedEnter {
					continue
				}
				p.judgedEnter = true
				// Presence intervals [arrive, end): count at every arrival
				// up to p's pass.
				type iv struct{ from, to int64 }
				var ivs []iv
				for _, ol := range rd.order {
					o := rd.parts[ol]
					if o.arrive == 0 {
						continue
					}
					end := int64(1<<63 - 1)
					if o.out != 0 {
						end = o.out
					}
					if o.fail != 0 {
						end = min(end, o.fail)
					}
					if d := s.deadAt[o.label]; d != 0 {
						end = min(end, d+slack)
					}
					ivs = append(ivs, iv{o.arrive, end})
				}
				most := 0
				for _, a := range ivs {
					if a.from > p.in {
						continue
					}
					n := 0
					for _, b := range ivs {
						if b.from <= a.from && a.from < b.to {
							n++
						}
					}
					most = max(most, n)
				}
				if most < size {
					fs = append(fs, finding{p.in, fmt.Sprintf(
						"%s returned from Enter of barrier %s while at most %d of its %d participants had been there at once",
						l, barrierName(rd.n), most, size), fmt.Sprintf("%d|%s", rd.n, l), []string{barrierName(rd.n)}})
				}
			}
		}
	})
	return tr.findings(inv.Name(), fs)
}

// barrierLeave: no participant passes Leave while another live participant
// that had entered has not begun to leave.
type barrierLeave struct{}

func (*barrierLeave) Name() string { return "barrier-leave" }

func (inv *barrierLeave) Check(tr *Trial) []Violation { return inv.judge(tr, tr.healedAt) }

// CheckStopped judges the passes since the last trial's heal.
func (inv *barrierLeave) CheckStopped(tr *Trial) []Violation { return inv.judge(tr, Now()) }

// judge judges the passes of Leave before the instant before: the
// expiries that may excuse another participant are reported by then.
func (inv *barrierLeave) judge(tr *Trial, before int64) []Violation {
	if !tr.r.cfg.Barrier {
		return nil
	}
	events := tr.r.events()
	ends := map[string][]int64{}
	lastSession := map[string]string{}
	for _, e := range events {
		if e.Kind == "session" {
			lastSession[e.Src] = e.Arg(0)
		}
	}
	var fs []finding
	tr.r.withState(func(s *state) {
		for _, rd := range s.bar.rounds {
			for _, l := range rd.order {
				p := rd.parts[l]
				if p.out == 0 || p.judgedLeave || p.out >= before {
					continue
				}
				p.judgedLeave = true
				for _, ol := range rd.order {
					o := rd.parts[ol]
					if o.label == p.label || o.in == 0 || o.in > p.out || (o.leaving != 0 && o.leaving < p.out) {
						continue
					}
					if o.fail != 0 && o.fail < p.out {
						continue
					}
					if d := s.deadAt[o.label]; d != 0 && d < p.out {
						continue
					}
					if _, ok := ends[o.label]; !ok {
						ends[o.label] = nodeEnds(events, o.label)
					}
					gone := false
					for _, x := range ends[o.label] {
						// Its session ended (the disconnect or freeze that
						// led to an expiry began) after it arrived and
						// before p passed: Leave does not wait for it.
						if x >= o.arrive && x < p.out {
							gone = true
						}
					}
					if gone {
						continue
					}
					if lastSession[o.label] == "disconnected" && s.nodeState[o.label] != "dead" {
						p.judgedLeave = false // an expiry may yet be reported: judge it later
						continue
					}
					fs = append(fs, finding{p.out, fmt.Sprintf(
						"%s returned from Leave of barrier %s while %s, inside since %+.3fs and live, had not begun to leave",
						l, barrierName(rd.n), ol, float64(o.in-tr.start)/1e9), fmt.Sprintf("%d|%s|%s", rd.n, l, ol), []string{barrierName(rd.n)}})
				}
			}
		}
	})
	return tr.findings(inv.Name(), fs)
}

// liveBarrier: after the heal, rounds complete again.
type liveBarrier struct{}

func (*liveBarrier) Name() string  { return "live-barrier" }
func (*liveBarrier) Settles() bool { return true }

func (inv *liveBarrier) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Barrier {
		return nil
	}
	wait := tr.r.cfg.SessionTimeout + 5*time.Second
	deadline := tr.healedAt + int64(wait)
	var why string
	ok, _ := tr.Await(deadline, func() (bool, string) {
		if len(tr.r.liveNodes()) == 0 {
			return true, ""
		}
		done := false
		tr.r.withState(func(s *state) {
			why = "no round begun since the heal"
			for _, rd := range s.bar.rounds {
				if rd.started <= tr.healedAt {
					continue
				}
				through := 0
				for _, p := range rd.parts {
					if p.in != 0 && p.out != 0 {
						through++
					}
				}
				if rd.done != 0 && through > 0 {
					done = true
				}
			}
			if rd := s.bar.rounds[s.bar.last]; rd != nil {
				why = fmt.Sprintf("round %d (begun %+.3fs): %s", rd.n, float64(rd.started-tr.start)/1e9, describeRound(rd, s))
			}
		})
		return done, ""
	})
	if ok {
		return nil
	}
	return []Violation{tr.Violation(inv.Name(), deadline,
		fmt.Sprintf("no barrier round begun after the heal completed within %v of it; the last is %s", wait, why), barrierPrefix).
		Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
}

func describeRound(rd *bround, s *state) string {
	var out []string
	for _, l := range rd.order {
		p := rd.parts[l]
		st := "told"
		switch {
		case p.out != 0:
			st = "out"
		case p.fail != 0:
			st = "failed: " + p.failWhy
		case p.leaving != 0:
			st = "leaving"
		case p.in != 0:
			st = "inside"
		case p.arrive != 0:
			st = "entering"
		}
		out = append(out, fmt.Sprintf("%s(%s) %s", l, s.nodeState[p.label], st))
	}
	return strings.Join(out, ", ")
}

// barrierLeftovers: a finished round leaves no participant znode behind,
// and its ready znode only if a participant's session ended inside.
type barrierLeftovers struct {
	persisting
}

func (*barrierLeftovers) Name() string  { return "barrier-leftovers" }
func (*barrierLeftovers) Settles() bool { return true }

func (inv *barrierLeftovers) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Barrier {
		return nil
	}
	// Rounds over before the heal: the sessions of their dead participants
	// have expired by the deadline.
	return inv.judge(tr, tr.healedAt, tr.healedAt+int64(tr.r.cfg.SessionTimeout+5*time.Second))
}

// CheckStopped judges the rounds that finished since, once every node
// has stopped.
func (inv *barrierLeftovers) CheckStopped(tr *Trial) []Violation {
	if !tr.r.cfg.Barrier {
		return nil
	}
	now := Now()
	return inv.judge(tr, now, now+int64(2*tr.r.cfg.SessionTimeout+3*time.Second))
}

func (inv *barrierLeftovers) judge(tr *Trial, before, deadline int64) []Violation {
	r := tr.r
	type roundInfo struct {
		n          int
		readyMayBe bool
	}
	var judge []roundInfo
	events := r.events()
	r.withState(func(s *state) {
		for _, rd := range s.bar.rounds {
			if rd.done == 0 || rd.done > before || rd.clean {
				continue
			}
			ri := roundInfo{n: rd.n}
			for _, p := range rd.parts {
				if p.arrive == 0 {
					continue
				}
				if p.out == 0 {
					// It never finished Leave (dead, failed or stopped, inside
					// or counted while entering): if it was the lowest, the
					// others' Leave returned when its znode went, and nobody
					// deleted ready.
					ri.readyMayBe = true
				}
				for _, x := range nodeEnds(events, p.label) {
					if x >= p.arrive && (p.out == 0 || x < p.out) {
						ri.readyMayBe = true // its session ended inside
					}
				}
			}
			judge = append(judge, ri)
		}
	})
	slices.SortFunc(judge, func(a, b roundInfo) int { return a.n - b.n })
	var probs []problem
	var clean []int
	ok, why := tr.Await(deadline, func() (bool, string) {
		probs, clean = probs[:0], clean[:0]
		for _, ri := range judge {
			dir := barrier.Path(r.root, barrierName(ri.n))
			var children []string
			err := r.foreignDo("children "+dir, func(c *zk.Conn) error {
				var err error
				children, _, err = c.Children(dir)
				return err
			})
			if errors.Is(err, zk.ErrNoNode) {
				clean = append(clean, ri.n)
				continue
			}
			if err != nil {
				return false, err.Error()
			}
			var left []string
			for _, c := range children {
				if c == "ready" && ri.readyMayBe {
					continue
				}
				left = append(left, c)
			}
			if len(left) == 0 {
				clean = append(clean, ri.n)
				continue
			}
			slices.Sort(left)
			probs = append(probs, problem{key: fmt.Sprintf("round %d", ri.n), focus: barrierName(ri.n),
				what: fmt.Sprintf("barrier %s finished and left %s", barrierName(ri.n), strings.Join(left, ", "))})
		}
		return len(probs) == 0, ""
	})
	r.withState(func(s *state) {
		for _, n := range clean {
			s.bar.rounds[n].clean = true
		}
	})
	if ok {
		inv.clear()
		return nil
	}
	if why != "" {
		return []Violation{tr.Violation(inv.Name(), deadline, "cannot read the barriers: "+why).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}

// finding is a violation found under the run's lock: Trial.Violation cuts
// the history excerpt, which takes the lock, so it is made after.
type finding struct {
	at    int64
	what  string
	key   string
	focus []string
}

func (tr *Trial) findings(inv string, fs []finding) []Violation {
	var vs []Violation
	for _, f := range fs {
		vs = append(vs, tr.Violation(inv, f.at, f.what, f.focus...).Key(f.key))
	}
	return vs
}
