package zktest

import (
	"bytes"
	"strings"
	"sync"
)

// The tests that run nodes in child processes (test/, test/chaos,
// provider/) judge the race detector's reports the same way: a race with
// one access in zkactor's own code fails the test; races between the
// libraries' own code (known ones: protoactor's endpointManager on
// Remote.Shutdown, grpc's global logger written by every remote.Start,
// protoactor's gossip state marshalled while it changes) are logged, not
// charged.

// RaceReports cuts the race detector's reports out of a process's stderr.
func RaceReports(stderr string) []string {
	const begin, end = "WARNING: DATA RACE", "=================="
	var reports []string
	for {
		i := strings.Index(stderr, begin)
		if i < 0 {
			return reports
		}
		stderr = stderr[i:]
		j := strings.Index(stderr, end)
		if j < 0 {
			j = len(stderr)
		}
		reports = append(reports, stderr[:j])
		stderr = stderr[j:]
	}
}

// ZkactorRace reports whether a race report is charged to zkactor: when
// one of the racing accesses is zkactor's own, judged by the access's first
// frame outside the Go runtime (a channel operation's first frame is
// runtime.chansend, say). Races between protoactor-go, grpc, protobuf and
// the like, even under a call from zkactor, are theirs.
func ZkactorRace(report string) bool {
	lines := strings.Split(report, "\n")
	for i, l := range lines {
		if !strings.Contains(l, " at 0x") || !(strings.HasPrefix(l, "Read") || strings.HasPrefix(l, "Write") ||
			strings.HasPrefix(l, "Previous read") || strings.HasPrefix(l, "Previous write")) {
			continue
		}
		j := i + 1
		for j < len(lines) && (strings.HasPrefix(strings.TrimSpace(lines[j]), "runtime.") ||
			strings.HasPrefix(strings.TrimSpace(lines[j]), "internal/") || strings.HasPrefix(strings.TrimSpace(lines[j]), "/")) {
			j++
		}
		if j < len(lines) && strings.Contains(lines[j], "github.com/zkactor/zkactor/") {
			return true
		}
	}
	return false
}

// LockedBuffer is a bytes.Buffer safe for concurrent writers (a child
// process's stderr copied while the test reads it).
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
