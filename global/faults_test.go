package global_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestPartitionedLeaderStopsBeforeAnotherIsElected(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	if _, err := a.Elections.RegisterCandidate(ctx, "boss", j.props("a")); err != nil {
		t.Fatal(err)
	}
	first := j.oneRunning(t)
	if first.node != "a" {
		t.Fatalf("leader is %s, want a", first.node)
	}
	if _, err := b.Elections.RegisterCandidate(ctx, "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	proxy.Blackhole()
	var second termRecord
	zktest.Eventually(t, 15*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].node != "b" || r[0].epoch == 0 {
			return fmt.Errorf("b is not the only global yet (%d running)", len(r))
		}
		second = r[0]
		return nil
	})
	old := j.all()[0]
	t.Logf("partitioned leader stopped %v after the cut; new leader started %v after the cut",
		old.stop.Sub(cut).Round(time.Millisecond), second.start.Sub(cut).Round(time.Millisecond))
	if old.stop.IsZero() || !old.stop.Before(second.start) {
		t.Errorf("old term stopped at %v, new started at %v: terms overlap", old.stop, second.start)
	}
	j.noOverlap(t)
	if second.epoch <= first.epoch {
		t.Errorf("epoch %d → %d", first.epoch, second.epoch)
	}
	proxy.Restore()
	// A comes back on a new session and queues again behind B.
	whereis(t, a, "boss", second.pid)
}

func TestEnsembleLeaderKilledDuringElection(t *testing.T) {
	zkc := zktest.StartEnsemble(t, 3)
	root := zktest.Root(t)
	var j journal
	ctx := ctxT(t)
	nodes := []*node{
		newNode(t, zkc.Addrs(), root, 4*time.Second),
		newNode(t, zkc.Addrs(), root, 4*time.Second),
		newNode(t, zkc.Addrs(), root, 4*time.Second),
	}
	for i, n := range nodes {
		if _, err := n.Elections.RegisterCandidate(ctx, "boss", j.props(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	first := j.oneRunning(t)
	owner := nodes[0]
	for _, n := range nodes {
		if n.System.Address() == first.pid.Address {
			owner = n
		}
	}
	// The global stops and the ZooKeeper leader dies at the same moment.
	zkc.Kill(zkc.Leader(t))
	owner.System.Root.Stop(first.pid)
	zktest.Eventually(t, 20*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].pid.Equal(first.pid) || r[0].epoch == 0 {
			return fmt.Errorf("no single new global yet (%d running)", len(r))
		}
		return nil
	})
	second := j.oneRunning(t)
	for _, n := range nodes {
		whereis(t, n, "boss", second.pid)
	}
	if len(j.all()) != 2 {
		t.Errorf("%d terms, want 2", len(j.all()))
	}
	j.noOverlap(t)
}

// TestPausedLeaderProcessStops runs the first candidate in a separate
// process, freezes it with SIGSTOP past its session timeout, and checks
// that after SIGCONT its global handles no further message and stops.
func TestPausedLeaderProcessStops(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ZKACTOR_GLOBAL_CHILD=candidate",
		"ZK_SERVERS="+strings.Join(zkc.Addrs(), ","), "ZKACTOR_ROOT="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGCONT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(prefix string, timeout time.Duration) []string {
		t.Helper()
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before printing %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return strings.Fields(l)
				}
			case <-deadline:
				t.Fatalf("child did not print %q within %v", prefix, timeout)
			}
		}
	}
	expect("elected", 15*time.Second)
	expect("handled", 5*time.Second)

	var j journal
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	if _, err := b.Elections.RegisterCandidate(ctxT(t), "boss", j.props("b")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := j.oneRunning(t) // the child's session expired while it was frozen
	resumed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Drain what the child printed before the pause; after resuming it
	// must stop its global without handling anything more.
	f := expect("stopped", 10*time.Second)
	stoppedAt, _ := strconv.ParseInt(f[2], 10, 64)
	t.Logf("child's global stopped %v after SIGCONT; our term started %v before that",
		time.Unix(0, stoppedAt).Sub(resumed).Round(time.Millisecond), resumed.Sub(second.start).Round(time.Millisecond))
	drain := time.After(500 * time.Millisecond)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "handled") {
				at, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
				if time.Unix(0, at).After(resumed) {
					t.Errorf("the paused leader handled a message after it resumed: %s", l)
				}
			}
		case <-drain: // a bounded look for stray lines, not synchronisation
			return
		}
	}
}

// childMain is the candidate process of TestPausedLeaderProcessStops: it
// leads "boss", sends its global a message every 10 ms, and prints
// "elected <epoch> <ns>", "handled <ns>" and "stopped <epoch> <ns>".
func childMain(role string) int {
	n, err := startNode(strings.Split(os.Getenv("ZK_SERVERS"), ","), os.Getenv("ZKACTOR_ROOT"), time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer n.Stop()
	lines := make(chan string, 1024)
	go func() {
		w := bufio.NewWriter(os.Stdout)
		for l := range lines {
			fmt.Fprintln(w, l)
			w.Flush()
		}
	}()
	var epoch int64
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *pb.Elected:
			epoch = m.Epoch
			lines <- fmt.Sprintf("elected %d %d", m.Epoch, time.Now().UnixNano())
		case *pb.PID:
			lines <- fmt.Sprintf("handled %d", time.Now().UnixNano())
		case *actor.Stopping:
			lines <- fmt.Sprintf("stopped %d %d", epoch, time.Now().UnixNano())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	pid, err := n.Elections.RegisterCandidate(ctx, "boss", props)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		close(stdinClosed)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stdinClosed:
			return 0
		case <-tick.C:
			n.System.Root.Send(pid, &pb.PID{Id: "tick"})
		}
	}
}

// A standalone ZooKeeper killed and restarted while a leads and b queues:
// a's global stops once its lease runs out (nothing can confirm its
// session meanwhile), and exactly one global runs again, never two at once,
// with nothing left behind (noStrays at the end). The sessions usually
// outlive the restart (they are in the server's log, and their timers
// start again when it has loaded them), and a's term resumes within a
// tenth of a second. But a client whose handshake the starting server
// never answers waits for it ten read timeouts (go-zookeeper's bound: 27 s
// for a session of 4 s), and loses its session; when every candidate's
// client is caught so, no global runs until the first of them tries
// again. That is longer than the session timeout and a second that a heal
// should take (see README, "Disconnected"): the bound here is that wait.
func TestServerRestartLeavesOneGlobal(t *testing.T) {
	zkc := zktest.Start(t)
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
	killed := time.Now()
	zkc.Kill(0)
	zktest.Eventually(t, 2*timeout, func() error {
		if r := j.running(); len(r) != 0 {
			return fmt.Errorf("%d globals still running with ZooKeeper down", len(r))
		}
		return nil
	})
	stopped := j.all()[0].stop
	zkc.Restart(0)
	restarted := time.Now()
	var next termRecord
	handshakeWait := 10 * timeout * 2 / 3 // go-zookeeper's, for a handshake nobody answers
	zktest.Eventually(t, handshakeWait+timeout+2*time.Second, func() error {
		r := j.running()
		if len(r) != 1 || r[0].epoch == 0 {
			return fmt.Errorf("%d globals running, want 1 that has its epoch", len(r))
		}
		next = r[0]
		return nil
	})
	t.Logf("a's global stopped %v after the kill; %s's started %v after Restart returned (epoch %d, first %d: %s)",
		stopped.Sub(killed).Round(time.Millisecond), next.node, next.start.Sub(restarted).Round(time.Millisecond), next.epoch, first.epoch,
		map[bool]string{true: "the term resumed on the same session", false: "a new term"}[next.epoch == first.epoch])
	j.noOverlap(t)
	// The node that leads is connected; the other may still be waiting for
	// a handshake that a starting server never answered (go-zookeeper
	// waits ten read timeouts for it).
	leader := a
	if next.node == "b" {
		leader = b
	}
	whereis(t, leader, "boss", next.pid)
}
