package global_test

// Attack 11: globals under faults. Each test names the promise it attacks.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// znodesOf lists the children of a global's directory owned by session.
func znodesOf(t testing.TB, raw *zk.Conn, root, name string, session int64) []string {
	t.Helper()
	var out []string
	for _, n := range candidates(t, raw, root, name) {
		_, st, err := raw.Get(root + "/globals/" + name + "/" + n)
		if err == nil && st.EphemeralOwner == session {
			out = append(out, n)
		}
	}
	return out
}

// Promise 3 (and 2): a create whose reply is lost while the candidacy ends
// leaves a stray znode. It was deleted by the Elections' sweeper, which
// Close stopped: with the registry (and its session) outliving the
// Elections the stray stayed in the queue for good, and every candidate
// behind it waited for a session that never ends. Now the candidacy waits
// for the reply, and the session deletes what comes later.
func TestAttack11StrayCreateSurvivesEnd(t *testing.T) {
	for _, how := range []string{"resign", "close"} {
		t.Run(how, func(t *testing.T) {
			zkc := zktest.Shared(t)
			root := zktest.Root(t)
			raw := zkc.Connect(t)
			proxy := zktest.NewProxy(t, zkc.Addrs()[0])
			var j journal
			// b leads first (it makes the directory, so that a's create is
			// one request the server applies).
			b := newNode(t, zkc.Addrs(), root, 4*time.Second)
			a := newNode(t, []string{proxy.Addr()}, root, 10*time.Second)
			ctx := ctxT(t)
			if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
				t.Fatal(err)
			}
			j.oneRunning(t)
			session := a.Session.ID()
			proxy.DropFromTarget() // a's requests reach the server, replies are lost
			short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := a.Elections.RegisterCandidate(short, "boss", j.props("a"))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("RegisterCandidate with replies dropped: %v, want DeadlineExceeded", err)
			}
			zktest.Eventually(t, 5*time.Second, func() error {
				if n := znodesOf(t, raw, root, "boss", session); len(n) != 1 {
					return fmt.Errorf("a's znodes %v, want its create applied", n)
				}
				return nil
			})
			endCtx, cancelEnd := context.WithTimeout(ctx, time.Second)
			if how == "close" {
				_ = a.Elections.Close(endCtx) // may report the deletes it could not make
			} else {
				_ = a.Elections.Resign(endCtx, "boss")
			}
			cancelEnd()
			proxy.Restore()
			zktest.Eventually(t, 10*time.Second, func() error {
				if !a.Session.Connected() {
					return errors.New("a not reconnected")
				}
				return nil
			})
			if a.Session.ID() != session {
				t.Fatalf("a's session changed (%#x → %#x): the test needs it to outlive the fault", session, a.Session.ID())
			}
			// Well within a's 10 s session, which does not end anyway.
			zktest.Eventually(t, 8*time.Second, func() error {
				if n := znodesOf(t, raw, root, "boss", session); len(n) != 0 {
					return fmt.Errorf("a's candidacy ended (%s) but its znodes %v remain", how, n)
				}
				return nil
			})
		})
	}
}

// Promise 1 / the queue rule: a foreign client replaces the leader's
// candidate znode, atomically, by an ephemeral znode of its own with the
// same name (and the same data). By the doc's rule that znode is a live
// candidate of another client heading the queue, so nobody of ours may
// lead, and WhereisGlobal names what its data says. The next candidate,
// woken by the delete of its predecessor at the head, resumes from its old
// reading ("znodes created since have higher sequence numbers") without
// looking: it leads while the foreign znode heads the queue, and
// WhereisGlobal names the old leader's PID (a stand-in) instead of the
// running global.
func TestAttack11ForeignRecreatesLeaderZnode(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	first := j.oneRunning(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	p := leaderPath(t, raw, root, "boss", first.epoch)
	zktest.Eventually(t, 10*time.Second, func() error {
		if ok, err := zkc.Watching(0, p, b.Session.ID()); err != nil || !ok {
			return fmt.Errorf("b does not watch %s yet (%v)", p, err)
		}
		return nil
	})
	data, _, err := raw.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	foreign := zktest.Dial(t, zkc.Addrs(), 10*time.Second)
	if _, err := foreign.Multi(
		&zk.DeleteRequest{Path: p, Version: -1},
		&zk.CreateRequest{Path: p, Data: data, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral},
	); err != nil {
		t.Fatalf("replace %s: %v", p, err)
	}
	// Either b leads, or it watches the foreign znode that now heads the
	// queue (as it would after listing the queue again).
	var bLeads bool
	zktest.Eventually(t, 10*time.Second, func() error {
		for _, r := range j.running() {
			if r.node == "b" {
				bLeads = true
				return nil
			}
		}
		if ok, err := zkc.Watching(0, p, b.Session.ID()); err == nil && ok {
			return nil
		}
		return errors.New("b neither leads nor watches the foreign znode")
	})
	zktest.Eventually(t, 5*time.Second, func() error {
		for _, r := range j.all() {
			if r.node == "a" && r.stop.IsZero() {
				return errors.New("a's global still runs after its znode was deleted")
			}
		}
		return nil
	})
	q, _ := b.Elections.Queue(ctx, "boss")
	var heads []string
	for _, c := range q {
		heads = append(heads, fmt.Sprintf("%s(%s)", c.NodeID, c.PID))
	}
	if bLeads {
		where, err := b.Elections.WhereisGlobal(ctx, "boss")
		t.Errorf("b leads while a foreign ephemeral znode heads the queue (queue %v); WhereisGlobal = %v, %v (a's old PID %v)",
			heads, where, err, first.pid)
	}
}

// Promise 5: ValidateName accepts exactly what ZooKeeper (with
// go-zookeeper's client check) accepts, at every boundary of the refused
// ranges, for names of one component.
func TestAttack11ValidateNameMatchesZooKeeper(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	if _, err := raw.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	runes := []rune{0x01, 0x1f, 0x20, 0x2e, 0x7e, 0x7f, 0x9f, 0xa0, 0xd7ff, 0xe000, 0xefff, 0xf000, 0xf8ff, 0xf900,
		0xfeff, 0xffef, 0xfff0, 0xfffd, 0xfffe, 0xffff, 0x10000, 0x1f600, 0x10ffff}
	var names []string
	for _, r := range runes {
		names = append(names, "a"+string(r)+"b", string(r))
	}
	names = append(names, ".", "..", "...", ". ", " .", ".a", "a.", "..a", "a..", "zookeeper", "_c_", "a b",
		strings.Repeat("x", cluster.MaxNameLength))
	for i, name := range names {
		valid := cluster.ValidateName(name) == nil
		p := fmt.Sprintf("%s/n%d-%s", root, i, name) // a prefix keeps "." and ".." components whole
		if name == "." || name == ".." || strings.HasPrefix(name, ".") {
			p = root + "/" + name
		}
		_, err := raw.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		if err == nil {
			_ = raw.Delete(p, -1)
		}
		accepted := err == nil || errors.Is(err, zk.ErrNodeExists)
		if valid != accepted {
			t.Errorf("name %q (%U…): ValidateName accepts=%v, ZooKeeper create %q: %v", name, []rune(name), valid, p, err)
		}
	}
	// A global with a name at the top of the accepted range works end to end.
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	name := "\uffef\u00a0\u00e9x"
	pid, err := a.Elections.RegisterCandidate(ctxT(t), name, actor.PropsFromFunc(func(actor.Context) {}))
	if err != nil {
		t.Fatalf("RegisterCandidate(%q): %v", name, err)
	}
	whereis(t, a, name, pid)
	if _, err := a.Elections.WhereisGlobal(ctxT(t), "\uffff"); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("WhereisGlobal(U+FFFF): %v, want ErrBadName", err)
	}
	_ = global.ErrNotFound
}

// Promises 3 and 4 under interleavings: RegisterCandidate and Resign for
// one name from several goroutines, some callers giving up at once. Once
// they are done, a last RegisterCandidate leaves a live candidacy that
// leads, exactly one znode of the node's session is queued, never did two
// of the node's globals run at once, and after a last Resign nothing is
// left.
func TestAttack11ConcurrentRegisterResign(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	errs := make(chan error, 64)
	done := make(chan struct{})
	var (
		mu       sync.Mutex
		returned []string
	)
	const workers, rounds = 4, 12
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range rounds {
				c := ctx
				if (w+i)%3 == 0 {
					c = gaveUp
				}
				if (w*7+i)%2 == 0 {
					p, err := a.Elections.RegisterCandidate(c, "boss", j.props("a"))
					// A concurrent Resign may end the candidacy before it
					// entered: the call then fails with ErrResigned.
					if err != nil && c == ctx && !errors.Is(err, global.ErrResigned) {
						errs <- fmt.Errorf("worker %d round %d: RegisterCandidate: %w", w, i, err)
					}
					if err == nil {
						mu.Lock()
						returned = append(returned, p.Id)
						mu.Unlock()
					}
				} else {
					err := a.Elections.Resign(c, "boss")
					if err != nil && c == ctx && !errors.Is(err, global.ErrNotCandidate) {
						errs <- fmt.Errorf("worker %d round %d: Resign: %w", w, i, err)
					}
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, ok := a.Elections.Epoch("boss"); !ok {
			return fmt.Errorf("the last candidacy does not lead (queue %v)", candidates(t, raw, root, "boss"))
		}
		if n := znodesOf(t, raw, root, "boss", a.Session.ID()); len(n) != 1 {
			return fmt.Errorf("znodes of a's session %v, want the last candidacy's alone", n)
		}
		if r := j.running(); len(r) != 1 || !r[0].pid.Equal(pid) {
			var pids []string
			for _, x := range r {
				pids = append(pids, fmt.Sprintf("%s(epoch %d)", x.pid.Id, x.epoch))
			}
			var hist []string
			for _, x := range j.all() {
				hist = append(hist, fmt.Sprintf("%s(epoch %d, stopped %v)", x.pid.Id, x.epoch, !x.stop.IsZero()))
			}
			epoch, _ := a.Elections.Epoch("boss")
			where, werr := a.Elections.WhereisGlobal(ctx, "boss")
			q, _ := a.Elections.Queue(ctx, "boss")
			var qs []string
			for _, c := range q {
				qs = append(qs, c.PID.Id)
			}
			return fmt.Errorf("running %v, want the last candidacy's global %s (Epoch %d; WhereisGlobal %v, %v; ending %d; queue %v; all terms %v; returned %v; state %s)",
				pids, pid.Id, epoch, where, werr, global.Ending(a.Elections), qs, hist, returned, global.Attack11State(a.Elections, "boss"))
		}
		return nil
	})
	whereis(t, a, "boss", pid)
	j.noOverlap(t)
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if n := candidates(t, raw, root, "boss"); len(n) != 0 {
			return fmt.Errorf("znodes left after the last Resign: %v", n)
		}
		if n := global.Ending(a.Elections); n != 0 {
			return fmt.Errorf("%d ending candidacies kept", n)
		}
		if r := j.running(); len(r) != 0 {
			return fmt.Errorf("%d globals still running", len(r))
		}
		return nil
	})
}

// The doc: a term's actor gets *zkactorv1.Elected{epoch} first. A global
// that panics in a handler is restarted by its supervisor (protoactor's
// default): the new incarnation is the term's global too, under the same
// PID, but the guard announced the epoch once per term, so it never learns
// its epoch and cannot fence its writes.
func TestAttack11RestartedGlobalLearnsItsEpoch(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	type incarnation struct {
		started chan struct{}
		elected chan int64
	}
	incs := make(chan *incarnation, 4)
	props := actor.PropsFromProducer(func() actor.Actor {
		inc := &incarnation{started: make(chan struct{}), elected: make(chan int64, 1)}
		incs <- inc
		return actor.ReceiveFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case *actor.Started:
				close(inc.started)
			case *pb.Elected:
				inc.elected <- m.Epoch
			case string:
				if m == "boom" {
					panic("a bug in a handler")
				}
			}
		})
	})
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", props)
	if err != nil {
		t.Fatal(err)
	}
	first := <-incs
	var epoch int64
	select {
	case epoch = <-first.elected:
	case <-time.After(10 * time.Second): // a hang detector
		t.Fatal("the first incarnation never got Elected")
	}
	a.System.Root.Send(pid, "boom")
	var second *incarnation
	select {
	case second = <-incs:
	case <-time.After(10 * time.Second): // a hang detector
		t.Fatal("the global was not restarted")
	}
	<-second.started
	a.System.Root.Send(pid, "ping") // a message: the guard's moment to announce
	if e, ok := a.Elections.Epoch("boss"); !ok || e != epoch {
		t.Fatalf("after the restart Epoch = %d, %v; want the same term %d", e, ok, epoch)
	}
	select {
	case got := <-second.elected:
		if got != epoch {
			t.Errorf("restarted incarnation got epoch %d, want %d", got, epoch)
		}
	case <-time.After(3 * time.Second): // a hang detector; the guard announces before the next message
		t.Errorf("the restarted global (same term, epoch %d) never got Elected", epoch)
	}
}

// Promise 2 (and 1) with many names at once: node a leads 16 names, b
// queues for all; a's link is blackholed until its globals have stopped
// (the lease), then restored, and later a's session is expired. After each
// heal every name has exactly one global within the session timeout + 1 s,
// and no two globals of a name ever overlapped.
func TestAttack11ManyNamesUnderFaults(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	const timeout = 3 * time.Second
	a := newNode(t, []string{proxy.Addr()}, root, timeout)
	b := newNode(t, zkc.Addrs(), root, timeout)
	ctx := ctxT(t)
	const n = 16
	js := make([]*journal, n)
	name := func(i int) string { return fmt.Sprintf("g%02d", i) }
	for i := range n {
		js[i] = &journal{}
		if _, err := a.Elections.RegisterCandidate(ctx, name(i), js[i].props("a")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		js[i].oneRunning(t)
		if _, err := b.Elections.RegisterCandidate(ctx, name(i), js[i].props("b")); err != nil {
			t.Fatal(err)
		}
	}
	allOne := func(phase string, healed time.Time) {
		t.Helper()
		zktest.Eventually(t, timeout+time.Second, func() error {
			for i := range n {
				if r := js[i].running(); len(r) != 1 || r[0].epoch == 0 {
					return fmt.Errorf("%s: %s has %d globals running (%v after the heal)", phase, name(i), len(r), time.Since(healed).Round(time.Millisecond))
				}
			}
			return nil
		})
		for i := range n {
			js[i].noOverlap(t)
		}
	}
	// 1. A partition shorter than the session: the lease ends every term.
	proxy.Blackhole()
	zktest.Eventually(t, 2*timeout, func() error {
		for i := range n {
			if r := js[i].running(); len(r) != 0 {
				return fmt.Errorf("%s still runs %d globals during the partition", name(i), len(r))
			}
		}
		return nil
	})
	proxy.Restore()
	allOne("after the partition", time.Now())
	// 2. Expiry of a's session.
	zkc.ExpireSession(t, proxy, a.Session.ID())
	allOne("after the expiry", time.Now())
	zktest.Eventually(t, 2*timeout, func() error {
		for i := range n {
			q, err := b.Elections.Queue(ctx, name(i))
			if err != nil {
				return err
			}
			if len(q) != 2 {
				return fmt.Errorf("%s queue has %d candidates, want 2", name(i), len(q))
			}
		}
		return nil
	})
}

// Promise 4/6 (and 3): a candidacy resigned while its create is in flight
// finished at once, and the create's reply, arriving later, turned its
// znode into a stray for a sweeper, so "finished" did not mean "its znode
// is gone": the next candidacy of the node entered behind the stray, and
// its RegisterCandidate named the stray's PID, a candidacy that had ended
// (its stand-in removed: messages went to dead letters), instead of its
// own. Now finish waits for the reply and deletes the znode first.
func TestAttack11LateCreateOfResignedCandidacy(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, 10*time.Second)
	ctx := ctxT(t)
	noop := actor.PropsFromFunc(func(actor.Context) {})
	// The directory exists, so that the create is one request.
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", noop); err != nil {
		t.Fatal(err)
	}
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	proxy.Delay(400 * time.Millisecond) // replies come late; requests go at once
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := a.Elections.RegisterCandidate(short, "boss", noop)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first RegisterCandidate: %v, want DeadlineExceeded", err)
	}
	zktest.Eventually(t, 5*time.Second, func() error { // its create is applied
		if n := len(candidates(t, raw, root, "boss")); n != 1 {
			return fmt.Errorf("%d candidate znodes, want the first's", n)
		}
		return nil
	})
	if err := a.Elections.Resign(ctx, "boss"); err != nil { // returns once it has finished
		t.Fatal(err)
	}
	left := candidates(t, raw, root, "boss")
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", noop)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Delay(0)
	var leader *actor.PID
	zktest.Eventually(t, 10*time.Second, func() error {
		l, err := a.Elections.WhereisGlobal(ctx, "boss")
		if err != nil {
			return err
		}
		if _, ok := a.Elections.Epoch("boss"); !ok {
			return errors.New("the new candidacy does not lead yet")
		}
		leader = l
		return nil
	})
	if !pid.Equal(leader) {
		t.Errorf("RegisterCandidate returned %v, but the node's global is %v (znodes when the resigned candidacy had finished: %v)", pid.Id, leader.Id, left)
	}
	if len(left) != 0 {
		t.Errorf("Resign returned (the candidacy finished) while its znode %v remained", left)
	}
}
