package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nodeState is what the driver did to a node process last.
type nodeState int

const (
	nodeStarting nodeState = iota
	nodeRunning
	nodePaused   // SIGSTOP
	nodeKilled   // SIGKILL sent
	nodeStopping // stdin closed: a graceful stop
	nodeExited
)

// nodeProc is one incarnation of a node: a process of the test binary
// re-executed with childEnv set. A slot's next incarnation is a new node
// (new node id, new session, new actor address).
type nodeProc struct {
	r          *Run
	slot, inc  int
	label      string // "n<slot>.<incarnation>"
	cmd        *exec.Cmd
	stderrPath string
	exited     chan struct{} // closed once stdout is drained and the process reaped
	ready      chan struct{} // closed on the "ready" line

	stdinMu sync.Mutex
	stdin   io.WriteCloser

	// Set before ready is closed, then read-only.
	addr, id string

	mu      sync.Mutex
	state   nodeState
	killedT int64 // when SIGKILL was sent
	seq     int
	waiting map[string]chan Event
	actors  int // service actors spawned, for their ids
}

// startNode starts the next incarnation of slot; it does not wait for it.
func (r *Run) startNode(slot int) (*nodeProc, error) {
	r.mu.Lock()
	r.incs[slot]++
	inc := r.incs[slot]
	r.mu.Unlock()
	n := &nodeProc{
		r: r, slot: slot, inc: inc,
		label:   fmt.Sprintf("n%d.%d", slot, inc),
		exited:  make(chan struct{}),
		ready:   make(chan struct{}),
		waiting: map[string]chan Event{},
	}
	n.stderrPath = filepath.Join(r.logDir, n.label+".stderr")
	stderr, err := os.Create(n.stderrPath)
	if err != nil {
		return nil, err
	}
	defer stderr.Close() // the child has its own copy
	var servers []string
	for _, p := range r.proxies[slot] {
		servers = append(servers, p.Addr())
	}
	level := "INFO"
	if r.cfg.Verbose {
		level = "DEBUG"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		childEnv+"="+n.label,
		childServersEnv+"="+strings.Join(servers, ","),
		childRootEnv+"="+r.root,
		childSessionTimeoutEnv+"="+r.cfg.SessionTimeout.String(),
		childLogLevelEnv+"="+level,
		childGrainsEnv+"="+map[bool]string{true: "1"}[r.cfg.Grains],
		childRolesEnv+"="+map[bool]string{true: "1"}[r.cfg.Roles],
		childLocksEnv+"="+map[bool]string{true: "1"}[r.cfg.Locks],
		childQueueEnv+"="+map[bool]string{true: "1"}[r.cfg.Queue],
		childBarrierEnv+"="+map[bool]string{true: strconv.Itoa(r.cfg.Nodes)}[r.cfg.Barrier],
		childConfigEnv+"="+map[bool]string{true: "1"}[r.cfg.Config],
		childSubscriptionsEnv+"="+map[bool]string{true: strings.Join(r.cfg.Services, ",")}[r.cfg.Subscriptions],
		// A race report must not change the exit status: the driver reads
		// the reports from stderr and judges them (see raceViolations).
		"GORACE=exitcode=0",
	)
	cmd.Stderr = stderr
	// Pdeathsig: the node dies with the driver even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", n.label, err)
	}
	n.cmd = cmd
	r.mu.Lock()
	r.nodes[slot] = n
	r.all = append(r.all, n)
	r.mu.Unlock()
	r.record("driver", "start", n.label, cmd.Process.Pid)
	r.wg.Add(1)
	go n.read(stdout)
	return n, nil
}

// read records every line of the node's stdout until it ends, then reaps
// the process and records its death.
func (n *nodeProc) read(stdout io.Reader) {
	defer n.r.wg.Done()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		e, ok := parseLine(n.label, sc.Text())
		if !ok {
			n.r.record(n.label, "junk", sc.Text())
			continue
		}
		if e.Kind == "ready" {
			n.addr, n.id = e.Arg(0), e.Arg(1)
		}
		n.r.observe(e)
		switch e.Kind {
		case "ready":
			n.mu.Lock()
			if n.state == nodeStarting {
				n.state = nodeRunning
			}
			n.mu.Unlock()
			close(n.ready)
		case "ans":
			n.mu.Lock()
			ch := n.waiting[e.Arg(0)]
			delete(n.waiting, e.Arg(0))
			n.mu.Unlock()
			if ch != nil {
				ch <- e
			}
		}
	}
	err := n.cmd.Wait()
	n.mu.Lock()
	state := n.state
	end := Now()
	if state == nodeKilled {
		end = n.killedT // it did nothing after the signal
	}
	n.state = nodeExited
	waiting := n.waiting
	n.waiting = map[string]chan Event{}
	n.mu.Unlock()
	for seq, ch := range waiting {
		ch <- Event{T: end, Src: n.label, Kind: "ans", Args: []string{seq, "err", "node exited"}}
	}
	status := "0"
	if err != nil {
		status = strings.ReplaceAll(err.Error(), " ", "_")
	}
	n.r.observeAt(end, "driver", "dead", n.label, status)
	if state != nodeKilled && (state != nodeStopping || err != nil) {
		n.r.crashed(n, fmt.Sprintf("node %s exited (%s) while %s; stderr %s:\n%s",
			n.label, status, stateName(state), n.stderrPath, tailFile(n.stderrPath, 20)))
	}
	n.r.raceReports(n)
	close(n.exited)
}

func stateName(s nodeState) string {
	return [...]string{"starting", "running", "paused", "killed", "stopping", "exited"}[s]
}

// waitReady waits until the node has reported ready.
func (n *nodeProc) waitReady(timeout time.Duration) error {
	select {
	case <-n.ready:
		return nil
	case <-n.exited:
		return fmt.Errorf("node %s exited before it was ready; stderr:\n%s", n.label, tailFile(n.stderrPath, 20))
	case <-time.After(timeout):
		return fmt.Errorf("node %s not ready within %v; stderr:\n%s", n.label, timeout, tailFile(n.stderrPath, 20))
	}
}

// live reports whether the node runs (not paused, killed or stopped).
func (n *nodeProc) live() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == nodeRunning
}

// send writes a command and returns the channel its answer arrives on. A
// node that has exited answers "err node exited".
func (n *nodeProc) send(verb string, args ...string) <-chan Event {
	return n.sendKeyed("", verb, args...)
}

// sendKeyed is send for a command that changes a registration or a
// candidacy: key (an actor id or a global name) stays in doubt until the
// answer is in.
func (n *nodeProc) sendKeyed(key, verb string, args ...string) <-chan Event {
	ch := make(chan Event, 1)
	n.mu.Lock()
	if n.state == nodeExited || n.state == nodeKilled {
		n.mu.Unlock()
		ch <- Event{T: Now(), Src: n.label, Kind: "ans", Args: []string{"0", "err", "node exited"}}
		return ch
	}
	n.seq++
	seq := strconv.Itoa(n.seq)
	n.waiting[seq] = ch
	n.mu.Unlock()
	if key != "" {
		n.r.mu.Lock()
		n.r.st.pending[n.label+" "+key]++
		n.r.opKeys[n.label+" "+seq] = key
		n.r.mu.Unlock()
	}
	n.stdinMu.Lock()
	_, err := io.WriteString(n.stdin, seq+" "+verb+" "+strings.Join(args, " ")+"\n")
	n.stdinMu.Unlock()
	if err != nil {
		n.mu.Lock()
		if n.waiting[seq] == ch {
			delete(n.waiting, seq)
			ch <- Event{T: Now(), Src: n.label, Kind: "ans", Args: []string{seq, "err", err.Error()}}
		}
		n.mu.Unlock()
	}
	return ch
}

// do runs a command and waits for its answer; the node bounds each
// command by commandWait, so timeout only passes for a frozen node.
func (n *nodeProc) do(timeout time.Duration, verb string, args ...string) (Event, error) {
	select {
	case e := <-n.send(verb, args...):
		if e.Arg(1) != "ok" {
			return e, fmt.Errorf("%s %s %s: %s", n.label, verb, strings.Join(args, " "), e.Rest(2))
		}
		return e, nil
	case <-time.After(timeout):
		return Event{}, fmt.Errorf("%s %s %s: no answer within %v", n.label, verb, strings.Join(args, " "), timeout)
	}
}

// kill sends SIGKILL and waits until the process is gone and its last
// lines are recorded.
func (n *nodeProc) kill() {
	n.mu.Lock()
	if n.state == nodeExited {
		n.mu.Unlock()
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	n.killedT = Now()
	n.state = nodeKilled
	n.mu.Unlock()
	n.r.record("driver", "killed", n.label)
	<-n.exited
}

// pause freezes the process (SIGSTOP); resume thaws it (SIGCONT).
func (n *nodeProc) pause() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != nodeRunning {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGSTOP)
	n.state = nodePaused
	n.r.record("driver", "paused", n.label)
}

func (n *nodeProc) resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != nodePaused {
		return
	}
	n.r.record("driver", "resumed", n.label)
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	n.state = nodeRunning
}

// stop closes stdin, so the node stops its Node and exits, and kills it
// if it has not exited within timeout (reported as a crash).
func (n *nodeProc) stop(timeout time.Duration) {
	n.mu.Lock()
	switch n.state {
	case nodeExited:
		n.mu.Unlock()
		return
	case nodePaused:
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
	}
	if n.state != nodeKilled {
		n.state = nodeStopping
	}
	n.mu.Unlock()
	n.stdinMu.Lock()
	_ = n.stdin.Close()
	n.stdinMu.Unlock()
	select {
	case <-n.exited:
	case <-time.After(timeout):
		n.r.crashed(n, fmt.Sprintf("node %s did not exit within %v of its stdin closing; killed; stderr %s:\n%s",
			n.label, timeout, n.stderrPath, tailFile(n.stderrPath, 20)))
		n.kill()
	}
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNoLiveNode = errors.New("no live node")
