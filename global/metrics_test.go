package global_test

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/zkactor/zkactor/internal/metrics/metricstest"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestMetricsOfAnElection: with a meter provider installed, a candidacy,
// its entry, its term with the term's epoch, and its end by Resign show in
// the zkactor_ metrics.
func TestMetricsOfAnElection(t *testing.T) {
	metricstest.Install()
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	const name = "metrics-boss"
	byName := attribute.String("name", name)
	resigned := attribute.String("reason", "resigned")
	before := metricstest.Collect(t)
	grew := func(s metricstest.Snapshot, metric string, attrs ...attribute.KeyValue) int64 {
		return s.Int(metric, attrs...) - before.Int(metric, attrs...)
	}
	var j journal
	n := newNode(t, zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := n.Elections.RegisterCandidate(ctx, name, j.props("n")); err != nil {
		t.Fatal(err)
	}
	term := j.oneRunning(t)

	// The term's metrics are recorded as it starts, the actor may run first.
	zktest.Eventually(t, 10*time.Second, func() error {
		s := metricstest.Collect(t)
		for _, c := range []struct {
			metric string
			got    int64
		}{
			{"zkactor_candidacies", grew(s, "zkactor_candidacies")},
			{"zkactor_election_entries_total", grew(s, "zkactor_election_entries_total")},
			{"zkactor_terms_total", grew(s, "zkactor_terms_total")},
		} {
			if c.got != 1 {
				return fmt.Errorf("%s grew by %d, want 1", c.metric, c.got)
			}
		}
		if e := s.Int("zkactor_global_epoch", byName); e != term.epoch {
			return fmt.Errorf("zkactor_global_epoch{name=%s} = %d, want the term's epoch %d", name, e, term.epoch)
		}
		return nil
	})

	if err := n.Elections.Resign(ctx, name); err != nil {
		t.Fatal(err)
	}
	s := metricstest.Collect(t)
	if d := grew(s, "zkactor_term_ends_total", resigned); d != 1 {
		t.Errorf("zkactor_term_ends_total{reason=resigned} grew by %d after Resign, want 1", d)
	}
	if d := grew(s, "zkactor_candidacies"); d != 0 {
		t.Errorf("zkactor_candidacies grew by %d after Resign, want 0", d)
	}
	if s.Int("zkactor_global_epoch", byName) != 0 {
		t.Errorf("zkactor_global_epoch{name=%s} still reported after Resign", name)
	}
	if d := grew(s, "zkactor_guard_stops_total"); d != 0 {
		t.Errorf("zkactor_guard_stops_total grew by %d without a lease running out", d)
	}
}
