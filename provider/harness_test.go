package provider_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		// A child member: it must not run the tests, nor start ZooKeeper.
		os.Exit(runChild(role))
	}
	zktest.Main(m)
}

// wait bounds every wait for something to propagate.
const wait = 15 * time.Second

// lineLog collects a child's stdout lines and lets a test wait for them.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// wait returns the first line that matches, waiting up to timeout or until
// stop is closed.
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
			return "", fmt.Errorf("no such line, and the child is gone")
		case <-deadline.C:
			return "", fmt.Errorf("no such line within %v", timeout)
		}
	}
}

// child is a member (or client) in a process of its own.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lineLog
	stderr lockedBuffer
	exited chan struct{}

	Addr    string
	ID      string
	Session int64

	mu  sync.Mutex
	seq int
}

type childOpts struct {
	role           string // "member" (default), "client", "supervised"
	servers        []string
	root           string
	sessionTimeout time.Duration
	port           int
}

func startChild(t testing.TB, o childOpts) *child {
	t.Helper()
	if o.role == "" {
		o.role = "member"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		childEnv+"="+o.role,
		childServersEnv+"="+strings.Join(o.servers, ","),
		childRootEnv+"="+o.root,
		childPortEnv+"="+strconv.Itoa(o.port),
		// Races are reported on stderr and judged by stop (see zktest.ZkactorRace).
		"GORACE=exitcode=0",
	)
	if o.sessionTimeout > 0 {
		cmd.Env = append(cmd.Env, childTimeoutEnv+"="+o.sessionTimeout.String())
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
		t.Fatalf("start child: %v", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.out.add(sc.Text())
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(c.stop)
	ready, err := c.out.wait(40*time.Second, c.exited, func(s string) bool { return strings.HasPrefix(s, "ready ") })
	if err != nil {
		t.Fatalf("child did not start: %v\nits stderr:\n%s", err, c.stderr.String())
	}
	f := strings.Fields(ready)
	if len(f) != 4 {
		t.Fatalf("bad ready line %q", ready)
	}
	c.Addr, c.ID = f[1], f[2]
	c.Session, _ = strconv.ParseInt(strings.TrimPrefix(f[3], "0x"), 16, 64)
	return c
}

// stop closes stdin (the child shuts down and exits) and kills it if it
// has not exited within 20 s; then judges its race reports.
func (c *child) stop() {
	_ = c.stdin.Close()
	start := time.Now()
	defer func() {
		c.t.Logf("child %s exited %v after its stdin closed", c.ID, time.Since(start).Round(time.Millisecond))
	}()
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		c.t.Errorf("child %s did not exit 20s after its stdin closed; killing it", c.ID)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	stderr := c.stderr.String()
	for _, report := range zktest.RaceReports(stderr) {
		if zktest.ZkactorRace(report) {
			c.t.Errorf("child %s: data race in zkactor's code:\n%s", c.ID, report)
		} else {
			c.t.Logf("child %s: ignoring a data race outside zkactor's code:\n%s", c.ID, report)
		}
	}
	if c.t.Failed() {
		c.t.Logf("child %s stderr:\n%s", c.ID, stderr)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (c *child) kill() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatal("child still running 10s after SIGKILL")
	}
}

// try runs one command and returns its result or its error.
func (c *child) try(verb string, args ...string) (string, error) {
	c.mu.Lock()
	c.seq++
	seq := strconv.Itoa(c.seq)
	c.mu.Unlock()
	line := strings.Join(append([]string{seq, verb}, args...), " ")
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return "", fmt.Errorf("child %q: %w", line, err)
	}
	answer, err := c.out.wait(30*time.Second, c.exited, func(s string) bool { return strings.HasPrefix(s, seq+" ") })
	if err != nil {
		return "", fmt.Errorf("child %q: %w", line, err)
	}
	if result, ok := strings.CutPrefix(answer, seq+" ok"); ok {
		return strings.TrimSpace(result), nil
	}
	return "", fmt.Errorf("child %q: %s", line, strings.TrimPrefix(answer, seq+" err "))
}

// do is try that fails the test on an error.
func (c *child) do(verb string, args ...string) string {
	c.t.Helper()
	res, err := c.try(verb, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// lines returns the child's output lines that start with prefix.
func (c *child) lines(prefix string) []string {
	var out []string
	for _, l := range c.out.snapshot() {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

type lockedBuffer = zktest.LockedBuffer

// members waits until every child's topology is exactly want (ids).
func waitMembers(t testing.TB, want []string, children ...*child) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	w := strings.Join(want, " ")
	for _, c := range children {
		zktest.Eventually(t, wait, func() error {
			if got := c.do("members"); got != w {
				return fmt.Errorf("child %s sees members [%s], want [%s]", c.ID, got, w)
			}
			return nil
		})
	}
}

func servers(t testing.TB) []string { return zktest.Shared(t).Addrs() }

// monoNow is CLOCK_MONOTONIC in ns, which every process of the machine
// shares: one child's "deactivated" and another's "activated" compare.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}
