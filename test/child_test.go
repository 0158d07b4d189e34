package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// The protocol between a test and a child node, one line per message.
//
// The child reads its configuration from the environment (childEnv and
// the variables below), bootstraps a node and prints
//
//	ready <actor address> <node id>
//
// It then reads commands "<seq> <verb> <args...>" from stdin and answers
// each with "<seq> ok <result>" or "<seq> err <error>". Its echo actors
// print "got <service> <text>" for every *bossv1.Job they receive. When
// stdin closes, the child stops its node and exits 0.
//
// Verbs:
//
//	spawn <name>                 SpawnNamed an echo actor; result: its PID id
//	stop <name>                  stop the local actor <name>
//	capable <name>               GetCapable; result: sorted "address/id" list
//	lookup <name>                Lookup; result: "address/id{k=v,...}" list
//	peers                        GetPeers; result: sorted addresses
//	nsend-capable <name> <text>  NSendCapable(name, Job{Text: text})
//	nsend-peers <name> <text>    NSendPeers(name, Job{Text: text})
//	send <address> <id> <text>   send Job{Text: text} to that PID
const (
	childEnv               = "ZKACTOR_TEST_CHILD" // role; "node" is the only one
	childServersEnv        = "ZKACTOR_TEST_SERVERS"
	childRootEnv           = "ZKACTOR_TEST_ROOT"
	childSessionTimeoutEnv = "ZKACTOR_TEST_SESSION_TIMEOUT"
)

// runChild is the child process's main. It returns the exit code.
func runChild(role string) int {
	if role != "node" {
		fmt.Fprintf(os.Stderr, "child: unknown role %q\n", role)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := zka.Config{
		Servers: strings.Split(os.Getenv(childServersEnv), ","),
		Root:    os.Getenv(childRootEnv),
		Logger:  log,
	}
	if s := os.Getenv(childSessionTimeoutEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: %s: %v\n", childSessionTimeoutEnv, err)
			return 2
		}
		cfg.SessionTimeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	node, err := zka.Bootstrap(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		return 1
	}
	out := &syncWriter{w: os.Stdout}
	out.println("ready", node.Address(), node.NodeID())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		seq, verb, args := parseCommand(in.Text())
		result, err := childCommand(node, out, verb, args)
		if err != nil {
			out.println(seq, "err", err.Error())
		} else {
			out.println(seq, "ok", result)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "child: stop: %v\n", err)
		return 1
	}
	return 0
}

func parseCommand(line string) (seq, verb string, args []string) {
	f := strings.Fields(line)
	for len(f) < 2 {
		f = append(f, "")
	}
	return f[0], f[1], f[2:]
}

func childCommand(node *zka.Node, out *syncWriter, verb string, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch verb {
	case "spawn":
		pid, err := node.SpawnNamed(echoProps(arg(0), func(line string) { out.println(line) }), arg(0))
		if err != nil {
			return "", err
		}
		return pid.Id, nil
	case "stop":
		return "", node.System().Root.StopFuture(actor.NewPID(node.Address(), arg(0))).Wait()
	case "capable":
		pids, err := node.GetCapable(ctx, arg(0))
		return pidList(pids), err
	case "lookup":
		recs, err := node.Registry().Lookup(ctx, arg(0))
		var items []string
		for _, r := range recs {
			var kv []string
			for k, v := range r.Metadata {
				kv = append(kv, k+"="+v)
			}
			slices.Sort(kv)
			items = append(items, r.Pid.Address+"/"+r.Pid.Id+"{"+strings.Join(kv, ",")+"}")
		}
		slices.Sort(items)
		return strings.Join(items, " "), err
	case "peers":
		peers, err := node.GetPeers(ctx)
		slices.Sort(peers)
		return strings.Join(peers, " "), err
	case "nsend-capable":
		return "", node.NSendCapable(ctx, arg(0), &bossv1.Job{Text: arg(1)})
	case "nsend-peers":
		return "", node.NSendPeers(ctx, arg(0), &bossv1.Job{Text: arg(1)})
	case "send":
		node.System().Root.Send(actor.NewPID(arg(0), arg(1)), &bossv1.Job{Text: arg(2)})
		return "", nil
	}
	return "", fmt.Errorf("unknown verb %q", verb)
}

// echoProps is an actor that reports every Job it receives as
// "got <service> <text>".
func echoProps(service string, report func(line string)) *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		if j, ok := c.Message().(*bossv1.Job); ok {
			report("got " + service + " " + j.Text)
		}
	})
}

// pidList renders PIDs as a sorted, space-separated "address/id" list.
func pidList(pids []*actor.PID) string {
	var s []string
	for _, p := range pids {
		s = append(s, p.Address+"/"+p.Id)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) println(a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(w.w, a...)
}

// lineLog collects lines (a child's stdout, or what local actors receive)
// and lets a test wait for them.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every add
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// count is the number of lines equal to line.
func (l *lineLog) count(line string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if s == line {
			n++
		}
	}
	return n
}

// wait returns the first line that matches, waiting up to timeout (or
// until stop is closed) for it to arrive.
func (l *lineLog) wait(timeout time.Duration, stop <-chan struct{}, match func(string) bool) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, s := range l.lines {
			if match(s) {
				l.mu.Unlock()
				return s, nil
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			return "", fmt.Errorf("no such line, and the sender is gone")
		case <-deadline.C:
			return "", fmt.Errorf("no such line within %v", timeout)
		}
	}
}

// waitLine fails t unless line arrives within timeout.
func (l *lineLog) waitLine(t testing.TB, timeout time.Duration, line string) {
	t.Helper()
	if _, err := l.wait(timeout, nil, func(s string) bool { return s == line }); err != nil {
		t.Fatalf("waiting for %q: %v; have %q", line, err, l.snapshot())
	}
}

func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// child is a node running in a child process.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lineLog
	stderr lockedBuffer
	exited chan struct{} // closed once the process has exited and been reaped

	Addr   string // its actor remote address
	NodeID string

	mu  sync.Mutex
	seq int
}

type childOpts struct {
	servers        []string
	root           string
	sessionTimeout time.Duration
}

// startChild starts a child node and waits until it has joined the
// cluster. It is stopped (stdin closed, then killed if need be) when the
// test ends; Pdeathsig kills it if the test process dies first.
func startChild(t testing.TB, o childOpts) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		childEnv+"=node",
		childServersEnv+"="+strings.Join(o.servers, ","),
		childRootEnv+"="+o.root,
	)
	// The child reports data races on its stderr without failing its exit
	// code; stop() fails the test for any race in zkactor's code and only
	// logs protoactor's own (see zktest.ZkactorRace).
	cmd.Env = append(cmd.Env, "GORACE=exitcode=0")
	if o.sessionTimeout > 0 {
		cmd.Env = append(cmd.Env, childSessionTimeoutEnv+"="+o.sessionTimeout.String())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{t: t, cmd: cmd, out: newLineLog(), exited: make(chan struct{})}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child node: %v", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.out.add(sc.Text())
		}
		_ = cmd.Wait() // after the last read, as exec requires
	}()
	t.Cleanup(c.stop)

	ready, err := c.out.wait(30*time.Second, c.exited, func(s string) bool { return strings.HasPrefix(s, "ready ") })
	if err != nil {
		t.Fatalf("child node did not start: %v\nits stderr:\n%s", err, c.stderr.String())
	}
	f := strings.Fields(ready)
	if len(f) != 3 {
		t.Fatalf("child node: bad ready line %q", ready)
	}
	c.Addr, c.NodeID = f[1], f[2]
	return c
}

// stop closes the child's stdin, which makes it stop its node and exit,
// and kills it if it has not exited within 15 s.
func (c *child) stop() {
	_ = c.stdin.Close()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case <-c.exited:
	case <-timer.C:
		c.t.Errorf("child node %s did not exit 15s after its stdin closed; killing it", c.NodeID)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	stderr := c.stderr.String()
	for _, report := range zktest.RaceReports(stderr) {
		if !zktest.ZkactorRace(report) {
			c.t.Logf("child node %s: ignoring a data race inside protoactor-go:\n%s", c.NodeID, report)
		} else {
			c.t.Errorf("child node %s: data race:\n%s", c.NodeID, report)
		}
	}
	if c.t.Failed() {
		c.t.Logf("child node %s stderr:\n%s", c.NodeID, stderr)
	} else if st := c.cmd.ProcessState; st != nil && !st.Success() && !c.killed(st) {
		c.t.Errorf("child node %s exited with %v; stderr:\n%s", c.NodeID, st, stderr)
	}
}

func (c *child) killed(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// kill sends SIGKILL and waits until the process is gone: its ZooKeeper
// session is left to expire.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatal("child node still running 10s after SIGKILL")
	}
}

// do runs one command in the child and returns its result; an "err"
// answer or no answer within 15 s fails the test.
func (c *child) do(verb string, args ...string) string {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	seq := strconv.Itoa(c.seq)
	c.mu.Unlock()
	line := strings.Join(append([]string{seq, verb}, args...), " ")
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("child %q: %v", line, err)
	}
	answer, err := c.out.wait(15*time.Second, c.exited, func(s string) bool { return strings.HasPrefix(s, seq+" ") })
	if err != nil {
		c.t.Fatalf("child %q: %v", line, err)
	}
	result, ok := strings.CutPrefix(answer, seq+" ok")
	if !ok {
		c.t.Fatalf("child %q: %s", line, strings.TrimPrefix(answer, seq+" "))
	}
	return strings.TrimSpace(result)
}

type lockedBuffer = zktest.LockedBuffer
