package chaos

import (
	"strings"
	"testing"
)

// The barrier's and the config's judges over made-up histories: they need
// no ZooKeeper and show that the invariants can fail.

// roundOf3 is round 1 of a barrier of three: every node arrives, passes
// Enter, and calls Leave; the passes of Leave are the caller's.
func roundOf3() []Event {
	return []Event{
		ev(1, "driver", "bround", "1", "n0.1", "n1.1", "n2.1"),
		ev(1.1, "n0.1", "barrive", "1", "1"),
		ev(1.2, "n1.1", "barrive", "1", "1"),
		ev(1.3, "n2.1", "barrive", "1", "1"),
		ev(1.31, "n2.1", "bin", "1", "1"),
		ev(1.32, "n0.1", "bin", "1", "1"),
		ev(1.33, "n1.1", "bin", "1", "1"),
		ev(1.4, "n0.1", "bleaving", "1", "1"),
		ev(1.5, "n1.1", "bleaving", "1", "1"),
	}
}

func barrierCheck(t *testing.T, inv Invariant, events ...Event) []Violation {
	t.Helper()
	r, tr := history(t, events...)
	r.cfg.Barrier, r.cfg.Nodes = true, 3
	tr.healedAt = 100 * s
	return inv.Check(tr)
}

func TestBarrierEnterJudged(t *testing.T) {
	if vs := barrierCheck(t, &barrierEnter{}, roundOf3()...); len(vs) != 0 {
		t.Fatalf("a sound round: got %v", vs)
	}
	// n0 passes before n2 arrives.
	early := append([]Event{}, roundOf3()...)
	early[4] = ev(1.25, "n0.1", "bin", "1", "1")
	early[5] = ev(1.31, "n2.1", "bin", "1", "1")
	vs := barrierCheck(t, &barrierEnter{}, early...)
	if len(vs) != 1 || !strings.Contains(vs[0].What, "n0.1#1 returned from Enter of barrier chaos-1 while at most 2 of its 3") {
		t.Fatalf("an early pass: got %v, want one violation for n0.1", vs)
	}
	// n2 killed after it arrived: its znode counts until its session can
	// have expired.
	killed := append([]Event{}, roundOf3()[:4]...)
	killed = append(killed, ev(1.35, "driver", "dead", "n2.1", "signal:_killed"),
		ev(1.4, "n0.1", "bin", "1", "1"), ev(1.4, "n1.1", "bin", "1", "1"))
	if vs := barrierCheck(t, &barrierEnter{}, killed...); len(vs) != 0 {
		t.Fatalf("a participant killed after it was counted: got %v, want none", vs)
	}
	// A participant that failed (its Enter deleted its znode) before the
	// third arrived does not count.
	failed := []Event{
		ev(1, "driver", "bround", "1", "n0.1", "n1.1", "n2.1"),
		ev(1.1, "n0.1", "barrive", "1", "1"),
		ev(1.15, "n2.1", "barrive", "1", "1"),
		ev(1.18, "n2.1", "bfail", "1", "1", "enter:", "context", "canceled"),
		ev(1.2, "n1.1", "barrive", "1", "1"),
		ev(1.4, "n0.1", "bin", "1", "1"),
	}
	if vs := barrierCheck(t, &barrierEnter{}, failed...); len(vs) != 1 {
		t.Fatalf("a pass counting a failed participant: got %v, want one violation", vs)
	}
}

func TestBarrierLeaveJudged(t *testing.T) {
	sound := append(roundOf3(), ev(1.6, "n2.1", "bleaving", "1", "1"), ev(1.7, "n0.1", "bout", "1", "1"))
	if vs := barrierCheck(t, &barrierLeave{}, sound...); len(vs) != 0 {
		t.Fatalf("a sound round: got %v", vs)
	}
	// n0 leaves while n2, inside, has not called Leave.
	early := append(roundOf3(), ev(1.6, "n0.1", "bout", "1", "1"), ev(1.7, "n2.1", "bleaving", "1", "1"))
	vs := barrierCheck(t, &barrierLeave{}, early...)
	if len(vs) != 1 || !strings.Contains(vs[0].What, "n0.1#1 returned from Leave of barrier chaos-1 while n2.1#1") {
		t.Fatalf("an early pass: got %v, want one violation for n0.1 and n2.1", vs)
	}
	// n2 was cut off inside and its session expired: not waited for.
	expired := append(roundOf3(),
		ev(1.45, "n2.1", "session", "disconnected", "7", "false"),
		ev(1.6, "n0.1", "bout", "1", "1"),
		ev(4, "n2.1", "session", "expired", "7", "false"))
	if vs := barrierCheck(t, &barrierLeave{}, expired...); len(vs) != 0 {
		t.Fatalf("a participant whose session ended inside: got %v, want none", vs)
	}
	// n2 was frozen inside past its session timeout: it reports the
	// disconnect and the expiry after the thaw.
	frozen := append(roundOf3(),
		ev(1.45, "driver", "paused", "n2.1"),
		ev(1.6, "n0.1", "bout", "1", "1"),
		ev(4, "driver", "resumed", "n2.1"),
		ev(4.01, "n2.1", "session", "paused", "7", "false"),
		ev(4.02, "n2.1", "session", "disconnected", "7", "false"),
		ev(4.03, "n2.1", "session", "expired", "7", "false"))
	if vs := barrierCheck(t, &barrierLeave{}, frozen...); len(vs) != 0 {
		t.Fatalf("a participant frozen inside past its session: got %v, want none", vs)
	}
	// A short disconnect, no expiry: its znode stayed, it must be waited for.
	back := append(roundOf3(),
		ev(1.45, "n2.1", "session", "disconnected", "7", "false"),
		ev(1.5, "n2.1", "session", "connected", "7", "false"),
		ev(1.6, "n0.1", "bout", "1", "1"))
	if vs := barrierCheck(t, &barrierLeave{}, back...); len(vs) != 1 {
		t.Fatalf("a participant that kept its session: got %v, want one violation", vs)
	}
}

func configCheck(t *testing.T, events ...Event) []Violation {
	t.Helper()
	r, tr := history(t, events...)
	r.cfg.Config = true
	return (&configStream{}).Check(tr)
}

// cgot is a subscriber's message with the record of write w and the
// override of write o ("" for absent), merged as it reports.
func cgot(at float64, src, rev, w, o, merged string) Event {
	rec, ovr := "{}", "{}"
	recExists, ovrExists := "false", "false"
	if w != "" {
		rec, recExists = canonical(recValues(w)), "true"
	}
	if o != "" {
		ovr, ovrExists = canonical(ovrValues(o)), "true"
	}
	return ev(at, src, "cgot", rev, recExists, "0", rec, ovrExists, "0", ovr, merged, "-")
}

func TestConfigStreamJudged(t *testing.T) {
	writes := []Event{
		ev(1, "n0.1", "cwrite", "rec", "n0.1-r1", "-1"),
		ev(1.1, "n1.1", "cwrite", "ovr", "n1.1-o1", "-1"),
	}
	good := canonical(mergedValues("n0.1-r1", "n1.1-o1"))
	if !strings.Contains(good, `"obj":{"a":"n0.1-r1","b":"n1.1-o1"}`) || strings.Contains(good, "del") {
		t.Fatalf("merge by hand = %s", good)
	}
	sound := append(writes, cgot(2, "n1.1", "10", "n0.1-r1", "", canonical(recValues("n0.1-r1"))),
		cgot(3, "n1.1", "11", "n0.1-r1", "n1.1-o1", good))
	if vs := configCheck(t, sound...); len(vs) != 0 {
		t.Fatalf("a sound stream: got %v", vs)
	}
	for name, bad := range map[string]Event{
		"a revision that does not grow": cgot(3, "n1.1", "10", "n0.1-r1", "n1.1-o1", good),
		"a merge that replaced obj":     cgot(3, "n1.1", "11", "n0.1-r1", "n1.1-o1", `{"obj":{"b":"n1.1-o1"},"ovr":"n1.1-o1","rec":"n0.1-r1","shared":"n1.1-o1"}`),
		"another process's override":    cgot(3, "n2.1", "11", "n0.1-r1", "n1.1-o1", good),
		"a write never issued":          cgot(3, "n1.1", "11", "n0.1-r9", "", canonical(recValues("n0.1-r9"))),
	} {
		events := append(append([]Event{}, writes...), cgot(2, "n1.1", "10", "n0.1-r1", "", canonical(recValues("n0.1-r1"))), bad)
		if vs := configCheck(t, events...); len(vs) != 1 {
			t.Errorf("%s: got %v, want one violation", name, vs)
		}
	}
}
