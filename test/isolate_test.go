package test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// Why every test runs in a process of its own.
//
// protoactor's remote.Start writes grpc's global logger
// (grpclog.SetLoggerV2). Stopping a node is not enough to let the next one
// start safely: grpc's ClientConn.Close returns before the transport's
// writer goroutine has logged its exit, so a remote that ever sent to
// another node leaves a read of that logger behind with no happens-before
// edge to the next remote.Start, and the race detector reports it. So each
// test that bootstraps a node re-executes the test binary for itself alone
// (-test.run=^Name$) and that process has one node for its whole life. The
// servers of this process's shared ZooKeeper go along in isolatedEnv;
// zktest.Main still checks the isolated process for leaked goroutines.
const isolatedEnv = "ZKACTOR_TEST_ISOLATED"

// inOwnProcess runs the calling test in a process of its own and reports
// true once that has finished (the caller returns); in that process it
// reports false and the test runs.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(isolatedEnv) != "" {
		return false
	}
	servers := zktest.Shared(t).Addrs()
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$",
		"-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), isolatedEnv+"="+strings.Join(servers, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("in its own process (%v):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Errorf("the test's own process: %v", err)
	}
	return true
}

// servers is the ZooKeeper to use: the parent's shared server in an
// isolated test process, else this process's.
func servers(t testing.TB) []string {
	if s := os.Getenv(isolatedEnv); s != "" {
		return strings.Split(s, ",")
	}
	return zktest.Shared(t).Addrs()
}

// connect is a plain go-zookeeper client of servers(t), closed when the
// test ends.
func connect(t testing.TB) *zk.Conn {
	return zktest.Dial(t, servers(t), zktest.DefaultSessionTimeout)
}
