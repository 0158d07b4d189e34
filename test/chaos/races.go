package chaos

import (
	"fmt"
	"os"

	"github.com/zkactor/zkactor/test/zktest"
)

// raceReports charges the data races a node's race detector reported (on
// its stderr) to the current trial, except protoactor-go's known one.
func (r *Run) raceReports(n *nodeProc) {
	data, err := os.ReadFile(n.stderrPath)
	if err != nil {
		return
	}
	for i, report := range zktest.RaceReports(string(data)) {
		if !zktest.ZkactorRace(report) {
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
