// Package test holds zkactor's integration tests of package actor against
// real ZooKeeper servers (started by test/zktest).
//
// protoactor's remote.Start writes grpc's global logger, which the race
// detector flags once two remotes have lived in one process, even one after
// the other. So each test runs in a process of its own with one bootstrapped
// Node (isolate_test.go), and every other node is a child process: the test
// binary re-executed with ZKACTOR_TEST_CHILD set, driven through its stdin
// and stdout (child_test.go).
package test

import (
	"os"
	"testing"

	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		// A child node: it must not run the tests, nor start ZooKeeper.
		os.Exit(runChild(role))
	}
	zktest.Main(m)
}
