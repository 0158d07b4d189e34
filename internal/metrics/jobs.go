package metrics

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var bossJobs = counter("zkactor_boss_jobs_total", "{job}",
	"cmd/boss: jobs by what became of them (accepted, rejected, taken_over, delegated, redelegated, refused, done)")

// JobOutcome is what became of a cmd/boss job: the outcome attribute of
// zkactor_boss_jobs_total.
type JobOutcome struct{ attrs []metric.AddOption }

// The outcomes of a job, as the boss sees them.
var (
	// JobAccepted: recorded in ZooKeeper and acknowledged to its requestor.
	JobAccepted = jobOutcome("accepted")
	// JobRejected: refused to its requestor (invalid, or not recorded).
	JobRejected = jobOutcome("rejected")
	// JobTakenOver: found unfinished in ZooKeeper by a newly elected boss.
	JobTakenOver = jobOutcome("taken_over")
	// JobDelegated: sent to a worker.
	JobDelegated = jobOutcome("delegated")
	// JobRedelegated: put back in the queue, its worker gone or too slow.
	JobRedelegated = jobOutcome("redelegated")
	// JobRefused: a worker refused it, having served a newer boss.
	JobRefused = jobOutcome("refused")
	// JobDone: reported done by a worker.
	JobDone = jobOutcome("done")
)

func jobOutcome(name string) JobOutcome {
	return JobOutcome{addAttrs(attribute.String("outcome", name))}
}

// Jobs records n jobs with the same outcome.
func Jobs(o JobOutcome, n int) {
	if n > 0 {
		bossJobs.Add(background, int64(n), o.attrs...)
	}
}
