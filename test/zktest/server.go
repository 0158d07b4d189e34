package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// startTimeout bounds the wait for a server to serve. Servers start in 1–3 s; the rest is
	// headroom for a loaded machine running tests with -race.
	startTimeout = 60 * time.Second
	// stopTimeout bounds a graceful stop before the server is killed.
	stopTimeout = 15 * time.Second
	// probeInterval is how often a wait loop re-checks its condition.
	probeInterval = 25 * time.Millisecond
	// startAttempts is how often a start is retried after a port turned out to be taken.
	startAttempts = 3
)

// server is one ZooKeeper JVM and the directory that holds its configuration, data and logs.
type server struct {
	id           int    // myid, 1-based
	dir          string // zoo.cfg, data/, zookeeper.log, jvm.out
	clientPort   int
	peerPort     int
	electionPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the JVM has exited and been reaped
}

func (s *server) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.clientPort))
}

// writeConfigs writes zoo.cfg (and, for an ensemble, myid) for every server of a group.
// peerPorts(i, j) gives the quorum and election ports server i is told to reach server j at:
// server j's own ports, or those of a proxy in front of them. A server's own line always has
// its real ports, which it binds.
func writeConfigs(servers []*server, cfg config, peerPorts func(i, j int) (peer, election int)) error {
	for i, s := range servers {
		var peers strings.Builder
		if len(servers) > 1 {
			for j, other := range servers {
				peer, election := other.peerPort, other.electionPort
				if j != i {
					peer, election = peerPorts(i, j)
				}
				fmt.Fprintf(&peers, "server.%d=127.0.0.1:%d:%d\n", other.id, peer, election)
			}
		}
		data := filepath.Join(s.dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		// reconfigEnabled=false keeps the configuration static: the servers never exchange and
		// adopt each other's view of the ensemble, so every server keeps the addresses (maybe
		// proxies) written here.
		zooCfg := fmt.Sprintf(`tickTime=%d
initLimit=50
syncLimit=%d
minSessionTimeout=%d
maxSessionTimeout=60000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
reconfigEnabled=false
%s`, cfg.tickTime.Milliseconds(), cfg.syncLimit, 2*cfg.tickTime.Milliseconds(), data, s.clientPort, peers.String())
		if err := os.WriteFile(filepath.Join(s.dir, "zoo.cfg"), []byte(zooCfg), 0o644); err != nil {
			return err
		}
		if len(servers) > 1 {
			if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(s.id)+"\n"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// start launches the JVM through scripts/zookeeper.sh serve, which execs java, so the child's
// pid is the JVM's.
func (s *server) start() error {
	script, err := scriptPath()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "jvm.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command("bash", script, "serve", s.dir)
	cmd.Stdout, cmd.Stderr = out, out // a file, so exec starts no copying goroutines
	// Pdeathsig: the JVM dies with the test process even if cleanup never runs.
	// Setpgid: a Ctrl-C in the terminal reaches the test process, not the JVMs behind its back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve %s: %w", script, s.dir, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // an exit status tells nothing the log does not
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// process returns the current JVM and its exit channel; done is nil if the server never started.
func (s *server) process() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

func (s *server) running() bool {
	_, done := s.process()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the JVM has exited.
func (s *server) kill() {
	cmd, done := s.process()
	if done == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL) // fails only if the process is already gone
	<-done
}

// signal sends sig to the JVM if it is running.
func (s *server) signal(sig syscall.Signal) {
	cmd, _ := s.process()
	if s.running() {
		_ = cmd.Process.Signal(sig) // fails only if the process has just exited
	}
}

// waitStopped waits until every thread of the JVM is stopped (state T in
// /proc/<pid>/task/<tid>/stat), or the process is gone.
func (s *server) waitStopped(timeout time.Duration) error {
	cmd, _ := s.process()
	if !s.running() {
		return nil
	}
	dir := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return nil // exited
		}
		running := 0
		for _, t := range tasks {
			stat, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
			if err != nil {
				continue // the thread ended
			}
			// "<tid> (<comm>) <state> ...": the state follows the last ')'.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] != 'T' && stat[i+2] != 't' {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %d (%s): %d threads still running %v after SIGSTOP", s.id, s.addr(), running, timeout)
		}
		time.Sleep(time.Millisecond) // a poll interval, bounded by the deadline
	}
}

// stop sends SIGTERM and waits until the JVM has exited, killing it after stopTimeout.
func (s *server) stop() error {
	cmd, done := s.process()
	if done == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused JVM acts on SIGTERM only once it runs
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
		s.kill()
		return fmt.Errorf("server %d (%s) ignored SIGTERM for %v and was killed", s.id, s.addr(), stopTimeout)
	}
}

// waitServing waits until the server's srvr reply has a Mode: line.
func (s *server) waitServing(timeout time.Duration) error {
	_, done := s.process()
	if done == nil {
		return fmt.Errorf("server %d (%s) is not running", s.id, s.addr())
	}
	deadline := time.Now().Add(timeout)
	for {
		if reply, err := srvr(s.addr()); err == nil && strings.Contains(reply, "Mode:") {
			return nil
		}
		if time.Now().After(deadline) {
			return s.startError(fmt.Sprintf("did not serve within %v", timeout))
		}
		select {
		case <-done:
			return s.startError("exited before serving")
		case <-time.After(probeInterval):
		}
	}
}

// startError describes why a server did not come up, with the tails of its logs.
func (s *server) startError(what string) error {
	logPath, outPath := filepath.Join(s.dir, "zookeeper.log"), filepath.Join(s.dir, "jvm.out")
	log, out := tail(logPath, 30), tail(outPath, 30)
	err := fmt.Errorf("ZooKeeper server %d (%s) %s.\n"+
		"Is ZooKeeper installed? Run scripts/zookeeper.sh install (as root, or with sudo).\n"+
		"--- tail of %s/zookeeper.log ---\n%s\n--- %s/jvm.out ---\n%s",
		s.id, s.addr(), what, s.dir, log, s.dir, out)
	if fileContains(logPath, "java.net.BindException") || fileContains(outPath, "java.net.BindException") {
		return &bindError{err}
	}
	return err
}

func fileContains(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte(s))
}

// bindError means a port picked as free was taken before the server bound it; the start is
// retried with other ports.
type bindError struct{ error }

func (e *bindError) Unwrap() error { return e.error }

// srvr sends the srvr four-letter word and returns the raw reply. go-zookeeper's FLWSrvr
// cannot parse the reply of ZooKeeper 3.8.
func srvr(addr string) (string, error) { return fourLetterWord(addr, "srvr") }

// fourLetterWord sends word to the server at addr and returns its raw reply.
func fourLetterWord(addr, word string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, word); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", word, addr, err)
	}
	return string(reply), nil
}

// freePorts picks the ports for a start; tests replace it to provoke a bind failure.
var freePorts = pickFreePorts

// pickFreePorts returns n distinct loopback ports that were free a moment
// ago, below the kernel's ephemeral range (32768 and up by default). A port
// the kernel hands out for ":0" listeners and outgoing connections could
// be taken by another process while its server is killed or stopped, and
// the restart then fails to bind (the chaos checker met it: a node's remote
// took a killed server's election port).
func pickFreePorts(n int) ([]int, error) {
	low := ephemeralLow()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no %d free loopback ports below %d", n, low)
		}
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		// Held open until all are picked, so that one port is not picked twice.
		defer ln.Close()
		ports = append(ports, port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				low = v
			}
		}
	}
	return low
}

// tail returns the last n lines of a file, or a note on why it cannot.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

var (
	scriptOnce sync.Once
	script     string
	scriptErr  error
)

// scriptPath finds scripts/zookeeper.sh at the repository root, the first directory above the
// working directory (a package directory under go test) that holds go.mod.
func scriptPath() (string, error) {
	scriptOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			scriptErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				script = filepath.Join(dir, "scripts", "zookeeper.sh")
				if _, err := os.Stat(script); err != nil {
					scriptErr = fmt.Errorf("zktest: %w", err)
				}
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				scriptErr = errors.New("zktest: no go.mod above the working directory, so no scripts/zookeeper.sh")
				return
			}
			dir = parent
		}
	})
	return script, scriptErr
}
