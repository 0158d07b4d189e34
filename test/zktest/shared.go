package zktest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// shared is the standalone server of this test process, started by the first Shared call.
var shared struct {
	mu  sync.Mutex
	c   *Cluster
	dir string
	err error // why it did not start; later callers fail with it too
}

// Shared returns the test process's standalone server, starting it on first use. It runs until
// [Main] stops it, so a package that uses Shared must call Main from TestMain. Tests share it:
// keep under [Root] and do not Kill, Stop or Restart it.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	c, err := startShared()
	if err != nil {
		t.Fatalf("zktest: the shared server did not start: %v", err)
	}
	return c
}

// SharedServers is Shared for examples, which have no testing.TB: it returns the shared
// server's addresses, and exits the test process with a clear message if the server cannot
// start.
func SharedServers() []string {
	c, err := startShared()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zktest: the shared server did not start: %v\n", err)
		os.Exit(1)
	}
	return c.Addrs()
}

func startShared() (*Cluster, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "zktest-shared-")
		if shared.err == nil {
			shared.c, shared.err = startCluster(1, defaultConfig(), func() (string, error) {
				return os.MkdirTemp(shared.dir, "server-")
			})
		}
	}
	return shared.c, shared.err
}

func stopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		shared.c.close()
		shared.c = nil
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir) // a leftover temporary directory is not worth failing for
		shared.dir = ""
	}
}

// Main runs the tests of a package, stops the shared server, and then, if the tests passed,
// fails the run if any goroutine is left over (as goleak.VerifyTestMain does). Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { zktest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	stopShared()
	if code == 0 {
		// protoactor's dead-letter throttle keeps a goroutine for one
		// throttle interval after a burst of dead letters: it ends by itself.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1")); err != nil {
			fmt.Fprintf(os.Stderr, "zktest: goroutines left over after the tests passed: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
