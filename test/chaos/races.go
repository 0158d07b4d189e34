package chaos

import (
	"fmt"
	"os"
	"strings"
)

// raceReports charges the data races a node's race detector reported (on
// its stderr) to the current trial, except protoactor-go's known one.
func (r *Run) raceReports(n *nodeProc) {
	data, err := os.ReadFile(n.stderrPath)
	if err != nil {
		return
	}
	for i, report := range raceReports(string(data)) {
		if protoactorRaceOnly(report) {
			continue
		}
		r.mu.Lock()
		tr := r.trial
		r.mu.Unlock()
		if tr == nil {
			continue
		}
		v := tr.Violation("processes", Now(), fmt.Sprintf("data race in node %s:\n%s", n.label, report), n.label)
		r.addViolations(tr, []Violation{v.Key(fmt.Sprintf("race %s %d", n.label, i))})
	}
}

// raceReports cuts the race detector's reports out of a process's stderr.
func raceReports(stderr string) []string {
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

// protoactorRaceOnly reports whether both racing accesses of a report are
// in protoactor-go's own code, such as the known race between a peer's
// disconnect and Remote.Shutdown (see test/child_test.go), or its timer
// scheduler's unsynchronised read of its state. A report with any access
// in zkactor's code is never ignored.
func protoactorRaceOnly(report string) bool {
	lines := strings.Split(report, "\n")
	accesses := 0
	for i, l := range lines {
		if !strings.Contains(l, " at 0x") || !(strings.HasPrefix(l, "Read") || strings.HasPrefix(l, "Write") ||
			strings.HasPrefix(l, "Previous read") || strings.HasPrefix(l, "Previous write")) {
			continue
		}
		accesses++
		// The first frame outside the runtime (a channel operation's frame
		// is runtime.chansend, say) tells whose access it is.
		j := i + 1
		for j < len(lines) && (strings.HasPrefix(strings.TrimSpace(lines[j]), "runtime.") ||
			strings.HasPrefix(strings.TrimSpace(lines[j]), "internal/") || strings.HasPrefix(strings.TrimSpace(lines[j]), "/")) {
			j++
		}
		if j >= len(lines) || !strings.Contains(lines[j], "github.com/asynkron/protoactor-go/") {
			return false
		}
	}
	return accesses == 2
}
