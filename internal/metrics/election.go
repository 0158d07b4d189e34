package metrics

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var (
	candidacies = upDownCounter("zkactor_candidacies", "{candidacy}",
		"Live candidacies of this process (RegisterCandidate), leading or queued")
	electionEntries = counter("zkactor_election_entries_total", "{entry}",
		"Candidate znodes created: a candidacy entering its queue, first or again after an expiry or a deletion")
	terms = counter("zkactor_terms_total", "{term}",
		"Terms started: this process's candidate became the global")
	termEnds = counter("zkactor_term_ends_total", "{term}",
		"Terms ended, by reason: lease (ran out: partition, slow replies, pause), znode_gone (the candidate znode was deleted or its session expired), stopped (the global actor stopped by itself), resigned (Resign or Close)")
	guardStops = counter("zkactor_guard_stops_total", "{stop}",
		"Globals stopped by the lease guard when a message arrived after their lease had run out")
	globalEpoch = observableGauge("zkactor_global_epoch", "{epoch}",
		"Epoch of the term this process holds, by global name (no series while it holds none)")
)

// CandidacyStarted records a new candidacy; CandidacyEnded its end.
func CandidacyStarted() { candidacies.Add(background, 1) }

// CandidacyEnded records the end of a candidacy that CandidacyStarted
// recorded.
func CandidacyEnded() { candidacies.Add(background, -1) }

// ElectionEntered records a candidate znode created.
func ElectionEntered() { electionEntries.Add(background, 1) }

// TermEnd is why a term ended: the reason attribute of
// zkactor_term_ends_total.
type TermEnd struct{ attrs []metric.AddOption }

// The reasons a term ends.
var (
	// TermEndLease: the lease of the term's session ran out.
	TermEndLease = termEnd("lease")
	// TermEndZnodeGone: the candidate znode was deleted by someone else,
	// or went with its session.
	TermEndZnodeGone = termEnd("znode_gone")
	// TermEndStopped: the global actor stopped by itself.
	TermEndStopped = termEnd("stopped")
	// TermEndResigned: the candidacy ended (Resign, Close).
	TermEndResigned = termEnd("resigned")
)

func termEnd(reason string) TermEnd {
	return TermEnd{addAttrs(attribute.String("reason", reason))}
}

// TermStarted records a term of the global name with its epoch.
func TermStarted(name string, epoch int64) {
	terms.Add(background, 1)
	epochs.mu.Lock()
	if epochs.held == nil {
		epochs.held = map[string]map[int64]int{}
	}
	byEpoch := epochs.held[name]
	if byEpoch == nil {
		byEpoch = map[int64]int{}
		epochs.held[name] = byEpoch
	}
	byEpoch[epoch]++
	epochs.mu.Unlock()
}

// TermEnded records the end of a term that TermStarted recorded.
func TermEnded(name string, epoch int64, why TermEnd) {
	termEnds.Add(background, 1, why.attrs...)
	epochs.mu.Lock()
	if byEpoch := epochs.held[name]; byEpoch != nil {
		if byEpoch[epoch]--; byEpoch[epoch] <= 0 {
			delete(byEpoch, epoch)
		}
		if len(byEpoch) == 0 {
			delete(epochs.held, name)
		}
	}
	epochs.mu.Unlock()
}

// GuardStop records a global stopped by the lease guard.
func GuardStop() { guardStops.Add(background, 1) }

// epochs are the terms this process holds, by name and epoch. Several
// Elections in one process (tests, or nodes of separate clusters) may hold
// terms of one name: the gauge shows the highest epoch.
var epochs struct {
	mu   sync.Mutex
	held map[string]map[int64]int // name → epoch → terms holding it
}

// observeEpochs reports the highest epoch held of each name.
func observeEpochs(o metric.Observer) {
	epochs.mu.Lock()
	defer epochs.mu.Unlock()
	for name, byEpoch := range epochs.held {
		var top int64
		for e := range byEpoch {
			top = max(top, e)
		}
		o.ObserveInt64(globalEpoch, top, metric.WithAttributes(attribute.String("name", name)))
	}
}
