package boss_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBoss builds cmd/boss into dir and returns the binary's path.
func buildBoss(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "boss")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/zkactor/zkactor/cmd/boss")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/boss: %v\n%s", err, out)
	}
	return bin
}

// line is one line a process printed on stdout.
type line struct {
	proc string
	text string
	at   time.Time
}

// output collects the stdout lines of every process of a test, and lets
// the test wait, with a deadline, until they satisfy a condition.
type output struct {
	start   time.Time
	mu      sync.Mutex
	lines   []line
	changed chan struct{} // closed and replaced on every new line
}

func newOutput() *output { return &output{start: time.Now(), changed: make(chan struct{})} }

func (o *output) add(proc, text string) {
	o.mu.Lock()
	o.lines = append(o.lines, line{proc, text, time.Now()})
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

func (o *output) snapshot() ([]line, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]line(nil), o.lines...), o.changed
}

// count counts the lines of the named processes (all when none named)
// that start with prefix.
func (o *output) count(prefix string, procs ...*proc) int {
	lines, _ := o.snapshot()
	return countLines(lines, prefix, procs...)
}

func countLines(lines []line, prefix string, procs ...*proc) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l.text, prefix) && (len(procs) == 0 || oneOf(l.proc, procs)) {
			n++
		}
	}
	return n
}

func oneOf(name string, procs []*proc) bool {
	for _, p := range procs {
		if p.name == name {
			return true
		}
	}
	return false
}

// waitFor waits until cond holds for the lines printed so far, failing the
// test after timeout. It wakes on every new line, and never sleeps.
func (o *output) waitFor(t *testing.T, timeout time.Duration, what string, cond func([]line) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		lines, changed := o.snapshot()
		if cond(lines) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("not within %v: %s", timeout, what)
		}
	}
}

// waitLine waits until p has printed n lines starting with prefix.
func (o *output) waitLine(t *testing.T, timeout time.Duration, p *proc, prefix string, n int) {
	t.Helper()
	o.waitFor(t, timeout, fmt.Sprintf("%s prints %d line(s) %q", p.name, n, prefix), func(lines []line) bool {
		return countLines(lines, prefix, p) >= n
	})
}

// dump logs every line, for a failed test.
func (o *output) dump(t *testing.T) {
	lines, _ := o.snapshot()
	for _, l := range lines {
		t.Logf("%6.2fs %-8s| %s", l.at.Sub(o.start).Seconds(), l.proc, l.text)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// raceEnv makes a race the child detects not change its exit status: the
// tests look for race reports in its output instead (checkRaces), so that
// the known races inside protoactor-go (below) does not fail a requestor;
// and the race runtime's one-second pause at exit is skipped.
var raceEnv = append(os.Environ(), "GORACE=exitcode=0 atexit_sleep_ms=0")

// knownRaces mark the race reports of protoactor-go's remote that show
// when a node stops while peers talk to it: endpointManager.stop writes a
// field that endpoint goroutines read (remote/endpoint_manager.go), and
// endpointReader.suspend writes the suspended flag that Receive reads
// (remote/endpoint_reader.go), neither under a lock.
var knownRaces = []string{"remote.(*endpointManager)", "remote.(*endpointReader).suspend"}

// checkRaces fails the test for every race report in a child's output
// that is not a known protoactor-go one.
func checkRaces(t *testing.T, who, output string) {
	t.Helper()
	reports := strings.Split(output, "WARNING: DATA RACE")
	for _, r := range reports[1:] {
		if !slices.ContainsFunc(knownRaces, func(k string) bool { return strings.Contains(r, k) }) {
			t.Errorf("%s: data race:\n%s", who, r)
		}
	}
}

// proc is a persistent boss node run by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed once the process has exited and its output is read
	err    error         // cmd.Wait's, once exited is closed
}

// env is one test's cluster: the binary, its flags and everyone's output.
type env struct {
	t       *testing.T
	bin     string
	zkAddrs []string
	root    string
	flags   []string
	out     *output
	procs   []*proc // persistent nodes, stopped together when the test ends
}

func newEnv(t *testing.T, bin string, zkAddrs []string, root string) *env {
	e := &env{
		t:       t,
		bin:     bin,
		zkAddrs: zkAddrs,
		root:    root,
		flags:   []string{"-zk", strings.Join(zkAddrs, ","), "-root", root, "-session-timeout", "1s"},
		out:     newOutput(),
	}
	t.Cleanup(func() {
		e.stopAll()
		if t.Failed() || os.Getenv("BOSS_TEST_DUMP") != "" {
			e.out.dump(t)
		}
	})
	return e
}

// stopAll stops every node at once (SIGTERM, then SIGKILL after 10 s)
// and checks their output for races.
func (e *env) stopAll() {
	t := e.t
	for _, p := range e.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails for those already gone
	}
	for _, p := range e.procs {
		p.stop(t)
		checkRaces(t, p.name, p.stderr.String())
		if t.Failed() {
			t.Logf("stderr of %s (%v):\n%s", p.name, p.err, p.stderr.String())
		}
	}
}

// start starts a persistent node. It dies with the test process
// (Pdeathsig) and is stopped, SIGTERM then SIGKILL, when the test ends.
//
// extra flags come after the env's, so they override them (e.g. -zk).
func (e *env) start(name string, extra ...string) *proc {
	t := e.t
	t.Helper()
	cmd := exec.Command(e.bin, append(append([]string(nil), e.flags...), extra...)...)
	cmd.Env = raceEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			e.out.add(name, sc.Text())
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	e.procs = append(e.procs, p)
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still running 10s after SIGKILL", p.name)
	}
}

// stop asks the process to stop (SIGTERM) and kills it if it has not
// within 10 s.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: still running 10s after SIGTERM; killing it", p.name)
		p.kill(t)
	}
}

// submit runs a requestor and returns its exit code and combined output.
func (e *env) submit(words ...string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append(append([]string(nil), e.flags...), words...)...)
	cmd.Env = raceEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	checkRaces(e.t, fmt.Sprintf("requestor %q", words), string(out))
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		e.t.Fatalf("run requestor %v: %v", words, err)
		return -1, ""
	}
}

// mustSubmit submits a job that must be accepted at once.
func (e *env) mustSubmit(words ...string) {
	e.t.Helper()
	code, out := e.submit(words...)
	if code != 0 || !strings.Contains(out, "Job accepted: ") {
		e.t.Fatalf("submit %q: exit %d, want 0 and \"Job accepted: \":\n%s", words, code, out)
	}
}
