package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// These tests judge made-up histories: they need no ZooKeeper and show
// that the invariants can fail.

const s = int64(time.Second)

// history builds a run whose history is events, at times given in
// seconds from a base, and a trial to judge it in.
func history(t *testing.T, events ...Event) (*Run, *Trial) {
	t.Helper()
	r := &Run{st: newState(), reported: map[string]bool{}, rows: map[string]*Row{}, cfg: Config{SessionTimeout: 2 * time.Second}}
	for _, e := range events {
		r.applyLocked(e)
	}
	tr := r.newTrial(setupClass{}, 0)
	tr.start = 0
	return r, tr
}

func ev(at float64, src, kind string, args ...string) Event {
	return Event{T: int64(at * float64(s)), Src: src, Kind: kind, Args: args}
}

func overlaps(t *testing.T, events ...Event) []Violation {
	t.Helper()
	_, tr := history(t, events...)
	return newOneGlobal().Check(tr)
}

func TestOverlapFound(t *testing.T) {
	vs := overlaps(t,
		ev(1, "n0.1", "gstart", "g0", "5", "p0"),
		ev(2, "n1.1", "gstart", "g0", "6", "p1"),
		ev(3, "n0.1", "gstop", "g0", "5"),
		ev(4, "n1.1", "gstop", "g0", "6"),
	)
	if len(vs) != 1 || !strings.Contains(vs[0].What, "ran at once for 1s") {
		t.Fatalf("got %v, want one overlap of 1s", vs)
	}
}

func TestNoOverlapBackToBack(t *testing.T) {
	if vs := overlaps(t,
		ev(1, "n0.1", "gstart", "g0", "5", "p0"),
		ev(2, "n0.1", "gstop", "g0", "5"),
		ev(2.001, "n1.1", "gstart", "g0", "6", "p1"),
		ev(3, "n2.1", "gstart", "g1", "7", "p2"), // another name
	); len(vs) != 0 {
		t.Fatalf("got %v, want none", vs)
	}
}

// A global frozen with its process, and stopped after the thaw before it
// handled anything, stopped acting when it was frozen.
func TestPausedGlobalEndsAtFreeze(t *testing.T) {
	base := []Event{
		ev(1, "n0.1", "gstart", "g0", "5", "p0"),
		ev(1.5, "n0.1", "gtick", "g0", "5", "1500000000"),
		ev(2, "driver", "paused", "n0.1"),
		ev(5, "n1.1", "gstart", "g0", "6", "p1"),
		ev(8, "driver", "resumed", "n0.1"),
	}
	if vs := overlaps(t, append(base, ev(8.1, "n0.1", "gstop", "g0", "5"))...); len(vs) != 0 {
		t.Fatalf("stopped after the thaw without acting: got %v, want none", vs)
	}
	// A tick whose handler began before the freeze, reported after the thaw.
	if vs := overlaps(t, append(base, ev(8.05, "n0.1", "gtick", "g0", "5", "1900000000"), ev(8.1, "n0.1", "gstop", "g0", "5"))...); len(vs) != 0 {
		t.Fatalf("a handler begun before the freeze: got %v, want none", vs)
	}
	// A tick handled after the thaw: the global acted beside the new one.
	vs := overlaps(t, append(base, ev(8.05, "n0.1", "gtick", "g0", "5", "8050000000"), ev(8.1, "n0.1", "gstop", "g0", "5"))...)
	if len(vs) != 1 || !strings.Contains(vs[0].What, "handled a message") {
		t.Fatalf("acted after the thaw: got %v, want one overlap", vs)
	}
	// Killed while frozen.
	if vs := overlaps(t, append(base[:4], ev(6, "driver", "dead", "n0.1", "killed"))...); len(vs) != 0 {
		t.Fatalf("killed while frozen: got %v, want none", vs)
	}
}

func TestEpochs(t *testing.T) {
	check := func(events ...Event) []Violation {
		_, tr := history(t, events...)
		return (&epochs{}).Check(tr)
	}
	const c5, c5b, c9 = "/r/globals/g0/_c_a-c-0000000005", "/r/globals/g0/_c_b-c-0000000006", "/r/globals/g0/_c_c-c-0000000009"
	if vs := check(
		ev(1, "n0.1", "gstart", "g0", "5", "p0", c5), ev(2, "n0.1", "gstop", "g0", "5"),
		ev(3, "n0.1", "gstart", "g0", "5", "p0", c5), ev(4, "n0.1", "gstop", "g0", "5"), // resumed term
		ev(5, "n1.1", "gstart", "g0", "9", "p1", c9),
	); len(vs) != 0 {
		t.Fatalf("increasing epochs, and a term resumed: got %v", vs)
	}
	if vs := check(
		ev(1, "n0.1", "gstart", "g0", "5", "p0", c5), ev(2, "n0.1", "gstop", "g0", "5"),
		ev(3, "n1.1", "gstart", "g0", "4", "p1", c9),
	); len(vs) != 1 {
		t.Fatalf("a lower epoch: got %v, want one violation", vs)
	}
	if vs := check(
		ev(1, "n0.1", "gstart", "g0", "5", "p0", c5), ev(2, "n0.1", "gstop", "g0", "5"),
		ev(3, "n1.1", "gstart", "g0", "5", "p1", c5b),
	); len(vs) != 1 {
		t.Fatalf("one epoch on two nodes: got %v, want one violation", vs)
	}
	if vs := check(
		ev(1, "n0.1", "gstart", "g0", "5", "p0", c5), ev(2, "n0.1", "gstop", "g0", "5"),
		ev(3, "n0.1", "gstart", "g0", "5", "p0", c5b), // the same node, another candidacy
	); len(vs) != 1 || !strings.Contains(vs[0].What, "not the same term resumed") {
		t.Fatalf("one epoch for two candidate znodes of one node: got %v, want one violation", vs)
	}
	if vs := check(
		ev(1, "n0.1", "gstart", "g0", "5", "p0", c5), ev(2, "n0.1", "gstop", "g0", "5"),
		ev(3, "n0.1", "gstart", "g0", "7", "p0", c5), // the same znode, another epoch
	); len(vs) != 1 {
		t.Fatalf("one candidate znode with two epochs: got %v, want one violation", vs)
	}
	if vs := check(ev(1, "n0.1", "gstart", "g0", "5", "p0")); len(vs) != 1 {
		t.Fatalf("Elected without a candidate znode: got %v, want one violation", vs)
	}
	if vs := check(ev(1, "n0.1", "gbad", "g0", "0", "message", "before", "Elected")); len(vs) != 1 {
		t.Fatalf("a message before Elected: got %v, want one violation", vs)
	}
}

func TestRegisteredState(t *testing.T) {
	r, _ := history(t,
		ev(0, "n0.1", "ready", "addr0", "id0", "1"),
		ev(0, "n1.1", "ready", "addr1", "id1", "2"),
		ev(1, "n0.1", "reg", "svc", "addr0/a1"),
		ev(1, "n0.1", "reg", "svc", "addr0/a2"),
		ev(1, "n1.1", "reg", "svc", "addr1/a1"),
		ev(2, "n0.1", "unreg", "svc", "addr0/a2"),
		ev(2, "n0.1", "regfail", "svc", "addr0/a3"),
		ev(3, "driver", "dead", "n1.1", "killed"),
	)
	must, may := r.st.registered("svc")
	if len(must) != 1 || !must["addr0/a1"] || len(may) != 1 || !may["addr0/a3"] {
		t.Fatalf("must %v, may %v; want must {addr0/a1}, may {addr0/a3}", must, may)
	}
	r.st.pending["n0.1 a1"]++
	if must, may = r.st.registered("svc"); len(must) != 0 || !may["addr0/a1"] {
		t.Fatalf("in flight: must %v, may %v; want a1 in doubt", must, may)
	}
}

func TestZkactorRace(t *testing.T) {
	ours := `WARNING: DATA RACE
Read at 0x00c00049a510 by main goroutine:
  runtime.chansend()
      /usr/local/go/src/runtime/chan.go:176 +0x0
  github.com/zkactor/zkactor/actor.(*Node).stopActors()
      /work/main/actor/node.go:287 +0x44

Previous write at 0x00c00049a510 by goroutine 453:
  runtime.closechan()
      /usr/local/go/src/runtime/chan.go:414 +0x0
  github.com/asynkron/protoactor-go/remote.(*endpointReader).Receive.func1()
      /root/go/pkg/mod/github.com/asynkron/protoactor-go/remote/endpoint_reader.go:43 +0xa8
`
	if !zktest.ZkactorRace(ours) {
		t.Error("a race with an access in zkactor's code was ignored")
	}
	theirs := strings.Replace(ours, "github.com/zkactor/zkactor/actor.(*Node).stopActors()", "github.com/asynkron/protoactor-go/remote.(*endpointManager).stop.func1()", 1)
	if zktest.ZkactorRace(theirs) {
		t.Error("a race inside protoactor-go (behind runtime frames) was charged to zkactor")
	}
}

func TestTwoActivationsFound(t *testing.T) {
	_, tr := history(t,
		ev(1, "n0.1", "astart", "counter/c0", "5", "p0", "m0"),
		ev(1.5, "n0.1", "amsg", "counter/c0", "5", "1500000000"),
		ev(2, "n1.1", "astart", "counter/c0", "6", "p1", "m1"),
		ev(2.5, "n0.1", "astop", "counter/c0", "5"),
		ev(3, "n2.1", "astart", "counter/c1", "7", "p2", "m2"), // another identity
		ev(4, "n1.1", "astop", "counter/c0", "6"),
	)
	vs := newOneActivation().Check(tr)
	if len(vs) != 1 || !strings.Contains(vs[0].What, `two activations of "counter/c0" ran at once for 500ms`) {
		t.Fatalf("got %v, want one overlap of 500ms", vs)
	}
	if vs := newOneGlobal().Check(tr); len(vs) != 0 {
		t.Fatalf("one-global judged activations: %v", vs)
	}
}

func TestActivationFrozenThenStoppedIsNoOverlap(t *testing.T) {
	// The member's process is frozen at 1.5 s; its grain handles nothing
	// after the thaw (the lease guard stops it first), so its activation
	// ended at the freeze although its astop comes later.
	_, tr := history(t,
		ev(1, "n0.1", "astart", "counter/c0", "5", "p0", "m0"),
		ev(1.5, "driver", "paused", "n0.1"),
		ev(4, "n1.1", "astart", "counter/c0", "6", "p1", "m1"),
		ev(5, "driver", "resumed", "n0.1"),
		ev(5.1, "n0.1", "astop", "counter/c0", "5"),
	)
	if vs := newOneActivation().Check(tr); len(vs) != 0 {
		t.Fatalf("got %v, want none", vs)
	}
}
