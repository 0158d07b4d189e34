package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a standalone ZooKeeper server or an ensemble of servers, each a JVM owned by the
// test process. Servers are numbered from 0 in the order of [Cluster.Addrs].
//
// The methods that take no testing.TB report failures to the test that started the cluster,
// so call them from that test's goroutine. On the [Shared] cluster they panic instead; other
// tests use it, so leave its server running.
type Cluster struct {
	tb      testing.TB // fails the owning test; nil for the shared cluster
	cfg     config
	servers []*server
	// links[i][j] carries server i's quorum and election connections to server j; nil
	// without WithQuorumProxies.
	links [][]*quorumLink

	mu       sync.Mutex
	isolated map[int]bool // servers whose quorum links IsolateQuorum blackholed

	warm sync.Once // WarmUp
}

// Start starts one standalone server and waits until it serves. It is stopped when the test
// and its subtests end. Start fails the test if ZooKeeper is not installed or cannot start.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return start(t, 1, defaultConfig())
}

// StartEnsemble starts an ensemble of n servers (usually 3) on loopback and waits until every
// one of them serves, that is, until they have elected a leader. It is stopped when the test
// and its subtests end. StartEnsemble(t, 1) is Start(t).
//
// Options change the servers' tickTime and syncLimit ([WithTickTime], [WithSyncLimit]) and
// put proxies on the links between them ([WithQuorumProxies]), for example to partition a
// follower from its ensemble while it keeps serving its clients:
//
//	c := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies())
//	f := c.Follower(t)
//	c.IsolateQuorum(f) // f answers its clients' pings for syncLimit ticks; the leader expires their sessions
func StartEnsemble(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("zktest: StartEnsemble(%d): need at least one server", n)
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	return start(t, n, cfg)
}

func start(t testing.TB, n int, cfg config) *Cluster {
	t.Helper()
	c, err := startCluster(n, cfg, func() (string, error) { return t.TempDir(), nil })
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	c.tb = t
	t.Cleanup(c.close)
	return c
}

// startCluster starts n servers in fresh directories made by mkdir, retrying with other ports
// if one of the ports picked as free was taken before a server could bind it.
func startCluster(n int, cfg config, mkdir func() (string, error)) (*Cluster, error) {
	var err error
	for range startAttempts {
		var c *Cluster
		c, err = tryStartCluster(n, cfg, mkdir)
		if err == nil {
			return c, nil
		}
		var bind *bindError
		if !errors.As(err, &bind) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%d attempts to find free ports failed; the last: %w", startAttempts, err)
}

func tryStartCluster(n int, cfg config, mkdir func() (string, error)) (*Cluster, error) {
	portsPerServer := 3 // client, peer, election
	if n == 1 {
		portsPerServer = 1
	}
	ports, err := freePorts(n * portsPerServer)
	if err != nil {
		return nil, fmt.Errorf("pick free ports: %w", err)
	}
	c := &Cluster{cfg: cfg}
	for i := range n {
		dir, err := mkdir()
		if err != nil {
			return nil, err
		}
		s := &server{id: i + 1, dir: dir, clientPort: ports[i*portsPerServer]}
		if n > 1 {
			s.peerPort, s.electionPort = ports[i*portsPerServer+1], ports[i*portsPerServer+2]
		}
		c.servers = append(c.servers, s)
	}
	peerPorts := func(i, j int) (int, int) { return c.servers[j].peerPort, c.servers[j].electionPort }
	if n > 1 && cfg.quorumProxies {
		if err := c.startQuorumProxies(); err != nil {
			c.close()
			return nil, fmt.Errorf("start quorum proxies: %w", err)
		}
		peerPorts = c.linkPorts
	}
	if err := writeConfigs(c.servers, cfg, peerPorts); err != nil {
		c.close()
		return nil, fmt.Errorf("write zoo.cfg: %w", err)
	}
	for _, s := range c.servers {
		if err := s.start(); err != nil {
			c.close()
			return nil, err
		}
	}
	// One deadline for all: ensemble members serve together, once they have a leader.
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.servers {
		if err := s.waitServing(time.Until(deadline)); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// close kills every server, waits until they have exited, and closes the quorum proxies.
func (c *Cluster) close() {
	for _, s := range c.servers {
		s.kill()
	}
	c.closeQuorumProxies()
}

// fatalf fails the owning test, or panics for the shared cluster, which has none.
func (c *Cluster) fatalf(format string, args ...any) {
	if c.tb == nil {
		panic(fmt.Sprintf("zktest: "+format, args...))
	}
	c.tb.Helper()
	c.tb.Fatalf("zktest: "+format, args...)
}

func (c *Cluster) server(i int) *server {
	if i < 0 || i >= len(c.servers) {
		c.fatalf("no server %d in a cluster of %d", i, len(c.servers))
	}
	return c.servers[i]
}

// Addrs returns the client address ("127.0.0.1:port") of each server.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.addr()
	}
	return addrs
}

// Len returns the number of servers, running or not.
func (c *Cluster) Len() int { return len(c.servers) }

// Kill crashes server i with SIGKILL and waits until it has exited. Killing a server that is
// not running does nothing.
func (c *Cluster) Kill(i int) {
	c.server(i).kill()
}

// Stop shuts server i down with SIGTERM and waits until it has exited. A server that ignores
// SIGTERM is killed and fails the test.
func (c *Cluster) Stop(i int) {
	if err := c.server(i).stop(); err != nil {
		c.fatalf("%v", err)
	}
}

// Pause freezes server i with SIGSTOP, as a long garbage-collection pause or a stalled
// machine does: its connections stay open but it answers nothing, and its clocks jump when it
// runs again, so it may expire sessions at once then. Resume thaws it; Kill, Stop and the
// end of the test work on a paused server too.
func (c *Cluster) Pause(i int) {
	s := c.server(i)
	s.signal(syscall.SIGSTOP)
	// SIGSTOP is delivered thread by thread: a thread in the middle of a
	// reply may still send it. Return once every thread of the JVM is
	// stopped, so that "paused" means it answers nothing.
	if err := s.waitStopped(startTimeout); err != nil {
		c.fatalf("Pause(%d): %v", i, err)
	}
}

// Resume thaws server i after Pause with SIGCONT.
func (c *Cluster) Resume(i int) {
	c.server(i).signal(syscall.SIGCONT)
}

// Restart starts server i again, after Kill or Stop, with the same configuration, data and
// ports, and waits until it serves. An ensemble member serves once it has joined a quorum.
func (c *Cluster) Restart(i int) {
	s := c.server(i)
	if s.running() {
		c.fatalf("Restart(%d): server %s is still running; Kill or Stop it first", i, s.addr())
	}
	if err := s.start(); err != nil {
		c.fatalf("Restart(%d): %v", i, err)
	}
	if err := s.waitServing(startTimeout); err != nil {
		c.fatalf("Restart(%d): %v", i, err)
	}
}

// WaitServing waits until server i serves clients: standalone, or an ensemble member that
// follows or leads a quorum.
func (c *Cluster) WaitServing(t testing.TB, i int) {
	t.Helper()
	if err := c.server(i).waitServing(startTimeout); err != nil {
		t.Fatalf("zktest: %v", err)
	}
}

// Leader waits until a running server reports Mode: leader in its srvr reply and returns its
// index. For a standalone server it returns 0 once the server serves.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		for i, s := range c.servers {
			if !s.running() {
				continue
			}
			reply, err := srvr(s.addr())
			if err == nil && (strings.Contains(reply, "Mode: leader") || strings.Contains(reply, "Mode: standalone")) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("zktest: no server reported Mode: leader within %v", startTimeout)
		}
		time.Sleep(probeInterval)
	}
}

// FourLetterWord sends a four-letter word ("conf", "cons", "mntr", "stat", ...) to server i
// and returns its raw reply. Every word is whitelisted.
func (c *Cluster) FourLetterWord(i int, word string) (string, error) {
	return fourLetterWord(c.server(i).addr(), word)
}

// Srvr returns server i's raw reply to the srvr four-letter word: its version, latency,
// connection and znode counts, zxid and Mode.
func (c *Cluster) Srvr(i int) (string, error) {
	return srvr(c.server(i).addr())
}

// Follower waits until a running server reports Mode: follower in its srvr reply and returns
// its index: a server to connect a client to when a test needs one that is not the leader.
func (c *Cluster) Follower(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		for i, s := range c.servers {
			if !s.running() {
				continue
			}
			if reply, err := srvr(s.addr()); err == nil && strings.Contains(reply, "Mode: follower") {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("zktest: no server reported Mode: follower within %v", startTimeout)
		}
		time.Sleep(probeInterval)
	}
}

// CPUTime is the processor time server i's JVM has used so far (user and
// system, from /proc/<pid>/stat, in clock ticks of 10 ms), 0 when it is not
// running. Benchmarks read it before and after a run, to put the server's
// cost per operation beside the client's.
func (c *Cluster) CPUTime(i int) time.Duration {
	s := c.server(i)
	cmd, _ := s.process()
	if !s.running() {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// "<pid> (<comm>) <state> <ppid> ...": utime and stime are the 14th
	// and 15th fields, the 12th and 13th after the state.
	i0 := bytes.LastIndexByte(stat, ')')
	if i0 < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i0+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Watching reports whether server i holds a watch of session on path (its
// wchp reply lists the sessions watching each path): a test waits for it
// before a change that the session must hear of.
func (c *Cluster) Watching(i int, path string, session int64) (bool, error) {
	out, err := c.FourLetterWord(i, "wchp")
	if err != nil {
		return false, err
	}
	id := fmt.Sprintf("0x%x", session)
	under := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case !strings.HasPrefix(line, "\t"):
			under = line == path
		case under && strings.TrimSpace(line) == id:
			return true, nil
		}
	}
	return false, nil
}
