package global_test

// Regression tests for the faults of the globals issue: each failed before
// the election was restructured.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// candidates lists the candidate znodes under a global's directory.
func candidates(t testing.TB, raw *zk.Conn, root, name string) []string {
	t.Helper()
	dir := root + "/globals/" + name
	names, _, err := raw.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return names
}

// leaderPath returns the path of the znode of the running global's candidate.
func leaderPath(t testing.TB, raw *zk.Conn, root, name string, epoch int64) string {
	t.Helper()
	dir := root + "/globals/" + name
	for _, n := range candidates(t, raw, root, name) {
		_, st, err := raw.Get(dir + "/" + n)
		if err == nil && st.Czxid == epoch {
			return dir + "/" + n
		}
	}
	t.Fatalf("no candidate znode with czxid %d under %s", epoch, dir)
	return ""
}

// 1. A leader whose candidate znode is deleted by someone else stops its
// global within a second, and only then, give or take the notification
// latency, does the next candidate's run.
func TestLeaderStopsWhenItsZnodeIsDeleted(t *testing.T) {
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
	deleted := time.Now()
	if err := raw.Delete(p, -1); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		for _, r := range j.all() {
			if r.epoch == first.epoch && !r.stop.IsZero() {
				return nil
			}
		}
		return errors.New("the deposed global still runs")
	})
	second := j.oneRunning(t)
	if second.node != "b" {
		t.Errorf("after the delete %s leads, want b (a re-enters at the back)", second.node)
	}
	var stopped time.Time
	for _, r := range j.all() {
		if r.epoch == first.epoch {
			stopped = r.stop
		}
	}
	if d := stopped.Sub(deleted); d > time.Second {
		t.Errorf("the deposed global stopped %v after its znode was deleted, want within 1s", d)
	}
	overlap := stopped.Sub(second.start)
	t.Logf("deposed global stopped %v after the delete; overlap with the next: %v", stopped.Sub(deleted).Round(time.Microsecond), overlap.Round(time.Microsecond))
	if overlap > 100*time.Millisecond {
		t.Errorf("two globals ran together for %v after the delete, more than the notification latency", overlap)
	}
	// a is a candidate again, behind b.
	zktest.Eventually(t, 5*time.Second, func() error {
		if n := len(candidates(t, raw, root, "boss")); n != 2 {
			return fmt.Errorf("%d candidate znodes, want 2 (b leading, a queued again)", n)
		}
		return nil
	})
}

// 2. RegisterCandidate then Resign, repeated, never leaves our znode
// behind at the head of the queue: a node that stands meanwhile leads in
// the end. (The old loop forgot its znode when Resign cancelled the check
// it made before leading.)
func TestRegisterResignChurnLeavesNoLeaderless(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	for i := range 100 {
		if i == 50 {
			if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := a.Elections.Resign(ctx, "boss"); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].node != "b" {
			return fmt.Errorf("running: %v, want b alone", r)
		}
		if names := candidates(t, raw, root, "boss"); len(names) != 1 {
			return fmt.Errorf("candidate znodes %v, want b's alone", names)
		}
		return nil
	})
	l, err := a.Elections.Leader(ctx, "boss")
	if err != nil || l.PID == nil || !l.PID.Equal(j.running()[0].pid) {
		t.Errorf("a's WhereisGlobal: %+v, %v; want b's global", l, err)
	}
	j.noOverlap(t)
}

// stopOnCommand is a global that stops itself on a *pb.PID{Id: "stop"}.
func stopOnCommand(stopped chan<- struct{}) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *pb.PID:
			if m.Id == "stop" {
				c.Stop(c.Self())
			}
		case *actor.Stopped:
			stopped <- struct{}{}
		}
	})
}

// 3. A global stops itself and the node at once stands again: the call's
// nil error means a live candidacy, which leads again.
func TestRegisterCandidateRightAfterTheGlobalStopped(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	for trial := range 20 {
		stopped := make(chan struct{}, 1)
		pid, err := a.Elections.RegisterCandidate(ctx, "boss", stopOnCommand(stopped))
		if err != nil {
			t.Fatal(err)
		}
		zktest.Eventually(t, 5*time.Second, func() error {
			if _, ok := a.Elections.Epoch("boss"); !ok {
				return errors.New("not leading")
			}
			return nil
		})
		a.System.Root.Send(pid, &pb.PID{Id: "stop"})
		<-stopped // a supervisor restarting its candidacy
		if _, err := a.Elections.RegisterCandidate(ctx, "boss", stopOnCommand(make(chan struct{}, 1))); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		zktest.Eventually(t, 5*time.Second, func() error {
			if _, ok := a.Elections.Epoch("boss"); !ok {
				return fmt.Errorf("trial %d: the node neither leads nor queues (%d candidate znodes)", trial, len(candidates(t, raw, root, "boss")))
			}
			if _, err := a.Elections.WhereisGlobal(ctx, "boss"); err != nil {
				return err
			}
			return nil
		})
		if err := a.Elections.Resign(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
	}
}

// 10. RegisterCandidate racing an unfinished Resign starts a new candidacy.
func TestRegisterCandidateDuringResign(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	for trial := range 20 {
		if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
			t.Fatal(err)
		}
		j.oneRunning(t)
		// A Resign whose caller stops waiting at once: the candidacy is
		// still finishing when RegisterCandidate comes.
		gaveUp, cancel := context.WithCancel(ctx)
		cancel()
		if err := a.Elections.Resign(gaveUp, "boss"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Resign with a cancelled ctx: %v", err)
		}
		pid, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a"))
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		zktest.Eventually(t, 5*time.Second, func() error {
			got, err := a.Elections.WhereisGlobal(ctx, "boss")
			if err != nil {
				return err
			}
			if !got.Equal(pid) {
				// What a failure needs to be understood: the queue in
				// ZooKeeper, and whether the node thinks it leads.
				epoch, leads := a.Elections.Epoch("boss")
				return fmt.Errorf("trial %d: global %v, want the new candidacy's %v (queue in ZooKeeper: %v; leads: %v, epoch %d; running: %d)",
					trial, got, pid, candidates(t, raw, root, "boss"), leads, epoch, len(j.running()))
			}
			return nil
		})
		if err := a.Elections.Resign(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
	}
	j.noOverlap(t)
}

// 11. Foreign children at the head of the queue: a persistent znode of the
// candidate shape and a znode of another shape are never waited for; an
// ephemeral one of another client holds its place while its session lives
// (WhereisGlobal names no global meanwhile), and no longer.
func TestForeignZnodesInTheQueue(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	dir := root + "/globals/boss"
	for _, p := range []string{"/t", root, root + "/globals", dir} {
		if _, err := raw.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	hex := strings.Repeat("ab", 16)
	// A persistent znode of the candidate shape, with a candidate's data.
	if _, err := raw.Create(dir+"/_c_"+hex+"-c-0000000000", []byte{0x0a, 0x01, 'x'}, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// Not of the candidate shape at all.
	if _, err := raw.Create(dir+"/lock-0000000001", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// An ephemeral one of another client, with garbage data.
	other := zktest.Dial(t, zkc.Addrs(), 4*time.Second)
	if _, err := other.Create(dir+"/_c_"+strings.Repeat("cd", 16)+"-c-", []byte("garbage"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Elections.WhereisGlobal(ctx, "boss"); !errors.Is(err, global.ErrNotFound) {
		t.Errorf("WhereisGlobal with an unreadable head: %v, want ErrNotFound", err)
	}
	if len(j.all()) != 0 {
		t.Fatal("a leads while another session's candidate heads the queue")
	}
	other.Close() // its znode goes with its session
	leader := j.oneRunning(t)
	whereis(t, a, "boss", leader.pid)
}

// Overwriting the leader's data (zkCli set, another client) does not make
// the next candidate lead beside it: whether a znode takes part rests on
// nothing anybody can change after the create.
func TestLeaderDataOverwrittenLeavesOneGlobal(t *testing.T) {
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
	// b waits on a's znode: only then does the write below wake it (before,
	// b would read the garbage when it first looks, and not look again).
	zktest.Eventually(t, 10*time.Second, func() error {
		if ok, err := zkc.Watching(0, p, b.Session.ID()); err != nil || !ok {
			return fmt.Errorf("b does not watch %s yet (%v)", p, err)
		}
		return nil
	})
	before := plumbing.Requests(b.Session)
	if _, err := raw.Set(p, []byte("garbage"), -1); err != nil {
		t.Fatal(err)
	}
	// b's watch on a's znode fires; b looks at the queue again (children,
	// then its predecessor) and goes back to waiting.
	zktest.Eventually(t, 5*time.Second, func() error {
		if n := plumbing.Requests(b.Session) - before; n < 2 {
			return fmt.Errorf("b made %d requests since the write", n)
		}
		return nil
	})
	if r := j.running(); len(r) != 1 || r[0].node != "a" {
		t.Fatalf("running after the overwrite: %v, want a alone", r)
	}
	j.noOverlap(t)
}

// 12. Messages sent to a queued candidate's PID in a steady stream all
// reach its global, in order, across the hand-over.
func TestHandOverUnderAStreamOfMessages(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var j journal
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	var (
		mu  sync.Mutex
		got []int
	)
	bProps := actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*pb.PID); ok {
			var n int
			fmt.Sscan(m.Id, &n)
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		}
	})
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", bProps); err != nil {
		t.Fatal(err)
	}
	staged := stagedPID(t, zkc.Connect(t), root, "boss", b)
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.System.Root.Send(staged, &pb.PID{Id: fmt.Sprint(i)})
			sent.Store(int64(i))
			if i%64 == 0 {
				time.Sleep(50 * time.Microsecond) // a steady stream, not a flood
			}
		}
	}()
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, ok := b.Elections.Epoch("boss"); !ok {
			return errors.New("b does not lead yet")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 1000 {
			return fmt.Errorf("b's global handled %d messages so far", len(got))
		}
		return nil
	})
	close(stop)
	<-done
	n := int(sent.Load())
	zktest.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != n {
			return fmt.Errorf("b's global handled %d of %d messages", len(got), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("message %d arrived as number %d: lost or reordered", i+1, v)
		}
	}
}

// stagedPID reads the PID n's candidacy for name stands under.
func stagedPID(t testing.TB, raw *zk.Conn, root, name string, n *node) *actor.PID {
	t.Helper()
	dir := root + "/globals/" + name
	for _, c := range candidates(t, raw, root, name) {
		data, st, err := raw.Get(dir + "/" + c)
		if err != nil || st.EphemeralOwner != n.Session.ID() {
			continue
		}
		rec := &pb.Candidate{}
		if err := proto.Unmarshal(data, rec); err != nil {
			t.Fatal(err)
		}
		return actor.NewPID(rec.Pid.Address, rec.Pid.Id)
	}
	t.Fatalf("no candidate znode of session %#x under %s", n.Session.ID(), dir)
	return nil
}

// 4. Names ZooKeeper refuses are bad names, not ZooKeeper errors.
func TestNamesZooKeeperRefuses(t *testing.T) {
	zkc := zktest.Shared(t)
	a := newNode(t, zkc.Addrs(), zktest.Root(t), 4*time.Second)
	for _, name := range []string{"a\ufffdb", "\ufffc", "\ud7ff\ue000", "x\u007fy"} {
		_, err := a.Elections.RegisterCandidate(ctxT(t), name, actor.PropsFromFunc(func(actor.Context) {}))
		if !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("RegisterCandidate(%q) = %v, want ErrBadName", name, err)
		}
	}
}

// 6, 7. A session that expires while a node stands: the node re-enters on
// its new session, and nothing of the old candidacy is left.
func TestSessionExpiryReentersWithoutOrphans(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	var j journal
	a := newNode(t, []string{proxy.Addr()}, root, time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	expired := make(chan struct{}, 1)
	stopNotify := a.Session.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Expired {
			select {
			case expired <- struct{}{}:
			default:
			}
		}
	})
	defer stopNotify()
	proxy.Blackhole()
	zktest.Eventually(t, 10*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].node != "b" {
			return fmt.Errorf("running %v, want b alone", r)
		}
		return nil
	})
	proxy.Restore()
	select {
	case <-expired:
	case <-time.After(15 * time.Second):
		t.Fatal("a never learned that its session expired")
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		names := candidates(t, raw, root, "boss")
		if len(names) != 2 {
			return fmt.Errorf("candidate znodes %v, want b's and a's new one", names)
		}
		for _, n := range names {
			_, st, err := raw.Get(root + "/globals/boss/" + n)
			if err != nil {
				return err
			}
			if st.EphemeralOwner != a.Session.ID() && st.EphemeralOwner != b.Session.ID() {
				return fmt.Errorf("%s belongs to session %#x, neither a's nor b's", n, st.EphemeralOwner)
			}
		}
		return nil
	})
	j.noOverlap(t)
}

// Close with ZooKeeper unreachable does not wait for deletes that cannot be
// made: the session's end removes the candidates' znodes. (It took a
// request timeout per candidacy.)
func TestCloseWhileZooKeeperIsUnreachable(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	ctx := ctxT(t)
	for _, name := range []string{"g1", "g2", "g3"} {
		if _, err := a.Elections.RegisterCandidate(ctx, name, actor.PropsFromFunc(func(actor.Context) {})); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if a.Session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- a.Elections.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second): // a hang detector; three request timeouts were 30 s
		t.Fatal("Close without a deadline did not return while ZooKeeper was unreachable")
	}
}

// 8. A term the guard ended while messages kept coming (the lease ran out
// during a short partition) is over for the candidacy too: after the heal
// exactly one global runs again. The old loop could keep the ended term and
// spin at the head of the queue with no actor running; this test did not
// catch that, but it caught the restructured staging replaying into the
// next term the Stop that a dead-letter rescue had picked up.
func TestGuardEndedTermIsRecovered(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	const timeout = 2 * time.Second
	var j journal
	a := newNode(t, []string{proxy.Addr()}, root, timeout)
	ctx := ctxT(t)
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // messages keep the guard busy
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				a.System.Root.Send(pid, &pb.PID{Id: "tick"})
			}
		}
	}()
	defer func() { close(stop); <-done }()
	proxy.Blackhole()
	zktest.Eventually(t, 10*time.Second, func() error {
		if r := j.all(); r[0].stop.IsZero() {
			return errors.New("the global still runs")
		}
		return nil
	})
	proxy.Restore()
	healed := time.Now()
	zktest.Eventually(t, timeout+time.Second, func() error {
		if r := j.running(); len(r) != 1 {
			return fmt.Errorf("%d globals running %v after the heal", len(r), time.Since(healed))
		}
		return nil
	})
	j.noOverlap(t)
}

// Messages waiting in the global's mailbox when its term ends (here: its
// znode is deleted by someone else, and the node leads again) are handled
// by the next term, not dropped.
func TestMailboxSurvivesTheEndOfATerm(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var (
		handled atomic.Int64
		epochs  sync.Map
	)
	slow := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *pb.Elected:
			epochs.Store(m.Epoch, true)
		case *pb.PID:
			time.Sleep(5 * time.Millisecond) // work, so that the mailbox fills up
			handled.Add(1)
		}
	})
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", slow)
	if err != nil {
		t.Fatal(err)
	}
	var epoch int64
	zktest.Eventually(t, 5*time.Second, func() error {
		var ok bool
		if epoch, ok = a.Elections.Epoch("boss"); !ok {
			return errors.New("not leading")
		}
		return nil
	})
	const n = 200
	for i := range n {
		a.System.Root.Send(pid, &pb.PID{Id: fmt.Sprint(i)})
	}
	if err := raw.Delete(leaderPath(t, raw, root, "boss", epoch), -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		if got := handled.Load(); got != n {
			return fmt.Errorf("%d of %d messages handled", got, n)
		}
		return nil
	})
	terms := 0
	epochs.Range(func(any, any) bool { terms++; return true })
	if terms < 2 {
		t.Errorf("%d terms; the delete should have ended the first", terms)
	}
}

// A global that stops while it starts (a failed init) ends its candidacy
// cleanly: no deadlock, no crash, its znode gone, buffered messages told
// to dead letters.
func TestGlobalThatStopsOnStart(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var j journal
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	failing := actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			c.Stop(c.Self())
		}
	}, actor.WithDispatcher(actor.NewSynchronizedDispatcher(300)))
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", failing); err != nil {
		t.Fatal(err)
	}
	staged := stagedPID(t, raw, root, "boss", a)
	for i := range 10 {
		a.System.Root.Send(staged, &pb.PID{Id: fmt.Sprint(i)})
	}
	if err := b.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if names := candidates(t, raw, root, "boss"); len(names) != 0 {
			return fmt.Errorf("candidate znodes left: %v", names)
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- a.Elections.Close(ctx) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second): // a hang detector
		t.Fatal("Close hangs")
	}
}

// Elections closed while ZooKeeper is briefly unreachable, on a session
// that goes on (the registry and session outlive them): the candidate
// znode is deleted once the connection is back, so the next candidate
// leads instead of waiting for a session that never ends.
func TestCloseDuringADisconnectLeavesNoCandidate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	var j journal
	a := newNode(t, []string{proxy.Addr()}, root, 10*time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if a.Session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = a.Elections.Close(closeCtx) // may report the deletes it could not make
	proxy.Restore()
	zktest.Eventually(t, 10*time.Second, func() error { // well within a's 10 s session
		if r := j.running(); len(r) != 1 || r[0].node != "b" {
			return fmt.Errorf("running %v, want b", r)
		}
		return nil
	})
	if !a.Session.Connected() {
		t.Error("a's session did not come back: the test meant it to outlive the elections")
	}
	j.noOverlap(t)
}

// Elected names the term's candidate znode, so that a global can fence its
// ZooKeeper writes: a multi with a check of it fails once the term is over.
func TestElectedFencesZooKeeperWrites(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	elected := make(chan *pb.Elected, 1)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*pb.Elected); ok {
			elected <- m
		}
	})); err != nil {
		t.Fatal(err)
	}
	var e *pb.Elected
	select {
	case e = <-elected:
	case <-time.After(10 * time.Second):
		t.Fatal("no Elected")
	}
	if _, st, err := raw.Get(e.Candidate); err != nil || st.Czxid != e.Epoch {
		t.Fatalf("Elected.Candidate %q: %v, %+v; want the znode whose czxid is the epoch %d", e.Candidate, err, st, e.Epoch)
	}
	fenced := func(name string) error {
		_, err := a.Session.Conn().Multi(
			&zk.CheckVersionRequest{Path: e.Candidate, Version: -1},
			&zk.CreateRequest{Path: root + "/" + name, Acl: zk.WorldACL(zk.PermAll)},
		)
		return err
	}
	if err := fenced("during"); err != nil {
		t.Fatalf("a fenced write during the term: %v", err)
	}
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	if err := fenced("after"); err == nil {
		t.Fatal("a fenced write after the term succeeded")
	}
}

// A Watch that reaches the PID while detach swaps the stand-in back in
// finds no process, and protoactor answers it with a Terminated although
// the actor still runs. A term whose end was taken from such a watch never
// stopped its actor (CI: "2 globals running, want 1"); the guard's Stopped
// decides now.
func TestDeadLetteredWatchDoesNotEndTheTerm(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	answered := make(chan struct{}, 1)
	global.SetTestHookDetached(t, func(pid *actor.PID) {
		// A watcher that asks now gets the dead letters' Terminated.
		probe := a.System.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			switch c.Message().(type) {
			case *actor.Started:
				c.Watch(pid)
			case *actor.Terminated:
				answered <- struct{}{}
			}
		}))
		<-answered
		a.System.Root.Stop(probe)
	})
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	j.oneRunning(t)
	if err := a.Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	if r := j.running(); len(r) != 0 {
		t.Fatalf("%d globals still running after Resign returned", len(r))
	}
}

// Observe of a name without a leader whose queue changes (a znode that is
// no candidate appears) compared two nil PIDs and panicked.
func TestObserveWithoutALeaderSurvivesAQueueChange(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	leaders := a.Elections.Observe(ctx, "boss")
	if l := <-leaders; l.PID != nil {
		t.Fatalf("first observation %+v, want no leader", l)
	}
	dir := root + "/globals/boss"
	if _, err := zkutil.CreateWithParents(raw, root, dir+"/not-a-candidate", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	var j journal
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	for l := range leaders {
		if l.PID != nil {
			if !l.PID.Equal(pid) {
				t.Fatalf("observed %v, want %v", l.PID, pid)
			}
			return
		}
	}
	t.Fatal("Observe ended without a leader")
}

// A RegisterCandidate that replaces a candidacy still ending (Resign's
// caller gave up at once, and the old global takes a while to stop) names
// its own candidacy's global, not the old one: the old candidate znode is
// gone before the new one enters. (Before, the new candidacy entered
// behind the old znode, and the call returned the PID of the global that
// was stopping: the flake of TestRegisterCandidateDuringResign, made
// certain by a slow stop.)
func TestRegisterCandidateAfterResignNamesItsOwnGlobal(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var stopping atomic.Int32
	slow := actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Stopping); ok {
			stopping.Add(1)
			// A global that cleans up before it stops: its candidacy's
			// finish waits for it, and deletes the znode only then.
			time.Sleep(300 * time.Millisecond)
		}
	})
	old, err := a.Elections.RegisterCandidate(ctx, "boss", slow)
	if err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 5*time.Second, func() error {
		if _, ok := a.Elections.Epoch("boss"); !ok {
			return errors.New("not leading yet")
		}
		return nil
	})
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Elections.Resign(gaveUp, "boss"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resign with a cancelled ctx: %v", err)
	}
	pid, err := a.Elections.RegisterCandidate(ctx, "boss", slow)
	if err != nil {
		t.Fatal(err)
	}
	if pid.Equal(old) {
		t.Fatalf("RegisterCandidate named the global that is stopping (%v), not its own", old)
	}
	whereis(t, a, "boss", pid)
	if stopping.Load() != 1 {
		t.Errorf("%d globals stopped, want 1", stopping.Load())
	}
}

// The tree check every test ends with (noStrays) sees a leftover: a
// candidate-shaped znode of the node's session that no live candidacy
// owns, and a second znode of a live candidacy.
func TestStraysFindsLeftovers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	var j journal
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	own := j.oneRunning(t)
	conn, acl := a.Session.Conn(), a.Session.ACL()
	dir := root + "/globals/boss"
	mine := leaderPath(t, conn, root, "boss", own.epoch)
	guid := strings.TrimPrefix(mine[len(dir)+1:], "_c_")
	guid = guid[:strings.Index(guid, "-c-")]
	orphan, err := conn.Create(dir+"/_c_0123456789abcdef0123456789abcdef-c-", nil, zk.FlagEphemeral|zk.FlagSequence, acl)
	if err != nil {
		t.Fatal(err)
	}
	second, err := conn.Create(dir+"/_c_"+guid+"-c-", nil, zk.FlagEphemeral|zk.FlagSequence, acl)
	if err != nil {
		t.Fatal(err)
	}
	strays, err := global.Strays(ctx, a.Elections)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(strays)
	if want := []string{orphan, second}; !slices.Equal(strays, want) {
		t.Errorf("strays %v, want %v", strays, want)
	}
	for _, p := range []string{orphan, second} {
		if err := conn.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
	}
}

// A leader whose Session is closed under it (the Elections not closed
// first) stops at once: Close gives the session up, the servers delete its
// znode as soon as they hear of it, and the next candidate may lead within
// a round trip. (The lease held on for up to a session timeout.)
func TestSessionClosedUnderALeaderStopsIt(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	const timeout = 4 * time.Second
	a := newNode(t, zkc.Addrs(), root, timeout)
	b := newNode(t, zkc.Addrs(), root, timeout)
	ctx := ctxT(t)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	first := j.oneRunning(t)
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	a.Session.Close()
	if !a.Session.SafeUntil().IsZero() {
		t.Error("the lease of a closed session still holds")
	}
	zktest.Eventually(t, timeout, func() error {
		if r := j.running(); len(r) != 1 || r[0].node != "b" || r[0].epoch == 0 {
			return fmt.Errorf("running %v, want b's global alone", r)
		}
		return nil
	})
	old := j.all()[0]
	if old.pid.Equal(first.pid) && old.stop.Sub(closed) > timeout/4 {
		t.Errorf("a's global stopped %v after its session was closed", old.stop.Sub(closed))
	}
	t.Logf("a's global stopped %v after Close; b's started %v after it", old.stop.Sub(closed).Round(time.Millisecond), j.running()[0].start.Sub(closed).Round(time.Millisecond))
	j.noOverlap(t)
}
