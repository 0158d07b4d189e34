package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/zkactor/zkactor/internal/metrics/metricstest"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// TestJobMetrics: a job that is accepted, delegated, forgotten by its
// worker, delegated again and done, and one that is rejected, are counted
// in zkactor_boss_jobs_total by outcome.
func TestJobMetrics(t *testing.T) {
	metricstest.Install()
	before := metricstest.Collect(t)
	h := newHarness(t)
	n := 0
	work := h.worker(func(*bossv1.Work) bool { n++; return n > 1 }) // forgets the first
	h.start(bossConfig{assignTimeout: 300 * time.Millisecond}, 1)
	h.mustAccept("metrics", "counted")
	nextWork(t, work)
	nextWork(t, work)
	h.out.waitFor(t, "Job done: counted (job-metrics)", 1)
	if res, err := h.submit("empty", "", wait); err != nil {
		t.Fatal(err)
	} else if _, ok := res.(*bossv1.Rejected); !ok {
		t.Fatalf("an empty job was answered %v, want Rejected", res)
	}

	after := metricstest.Collect(t)
	for outcome, want := range map[string]int64{"accepted": 1, "delegated": 2, "redelegated": 1, "done": 1, "rejected": 1} {
		attr := attribute.String("outcome", outcome)
		if got := after.Int("zkactor_boss_jobs_total", attr) - before.Int("zkactor_boss_jobs_total", attr); got != want {
			t.Errorf("zkactor_boss_jobs_total{outcome=%s} grew by %d, want %d", outcome, got, want)
		}
	}
}

// TestMetricsFlag: -metrics serves Prometheus's text format at /metrics.
func TestMetricsFlag(t *testing.T) {
	// The process's zkactor instruments follow the first provider set: the
	// other tests' (this check only sees the exporter's own series).
	metricstest.Install()
	addr, stop, err := serveMetrics("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "target_info{") {
		t.Errorf("GET /metrics: %s\n%s", resp.Status, body)
	}
}
