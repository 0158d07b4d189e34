package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.uber.org/goleak"

	"github.com/zkactor/zkactor/internal/metrics"
	"github.com/zkactor/zkactor/internal/metrics/metricstest"
)

// offAllocs is what a cache hit allocates before any meter provider is
// set: measured in TestMain, as the provider, once set, stays.
var offAllocs float64

// promRegistry receives the Prometheus exporter, a second reader next to
// metricstest's manual one.
var promRegistry = prometheus.NewRegistry()

func TestMain(m *testing.M) {
	offAllocs = testing.AllocsPerRun(1000, metrics.ServicesCache.Hit)
	exporter, err := otelprom.New(otelprom.WithRegisterer(promRegistry))
	if err != nil {
		fmt.Fprintln(os.Stderr, "prometheus exporter:", err)
		os.Exit(1)
	}
	metricstest.Install(exporter)
	goleak.VerifyTestMain(m)
}

func str(k, v string) attribute.KeyValue { return attribute.String(k, v) }

func TestSessionAndRequests(t *testing.T) {
	before := metricstest.Collect(t)
	metrics.SessionConnected(true)
	metrics.SessionConnected(true)
	metrics.SessionConnected(false)
	metrics.SessionDisconnected()
	metrics.SessionExpired()
	metrics.SessionExpired()
	metrics.SessionPaused()
	metrics.Request("create", 2*time.Millisecond, nil)
	metrics.Request("create", 4*time.Millisecond, fmt.Errorf("create /x: %w", zk.ErrNodeExists))
	metrics.Request("get", time.Millisecond, fmt.Errorf("get /x: %w", zk.ErrNoNode))
	metrics.Request("get", time.Millisecond, fmt.Errorf("get /x: %w", zk.ErrConnectionClosed))
	metrics.Request("get", time.Second, fmt.Errorf("no reply in time: %w", context.DeadlineExceeded))
	metrics.Request("get", time.Millisecond, errors.New("something else"))
	after := metricstest.Collect(t)

	for _, c := range []struct {
		name string
		want int64
	}{
		{"zkactor_session_connected", 1},
		{"zkactor_session_disconnects_total", 1},
		{"zkactor_session_expiries_total", 2},
		{"zkactor_session_pauses_total", 1},
	} {
		if got := after.Int(c.name) - before.Int(c.name); got != c.want {
			t.Errorf("%s grew by %d, want %d", c.name, got, c.want)
		}
	}
	const h = "zkactor_zk_request_duration_seconds"
	for _, c := range []struct {
		op, result string
		want       uint64
	}{
		{"create", "ok", 1}, {"create", "node_exists", 1}, {"get", "no_node", 1},
		{"get", "connection", 1}, {"get", "timeout", 1}, {"get", "error", 1},
	} {
		attrs := []attribute.KeyValue{str("op", c.op), str("result", c.result)}
		if got := after.Count(h, attrs...) - before.Count(h, attrs...); got != c.want {
			t.Errorf("%s{op=%q,result=%q} counted %d, want %d", h, c.op, c.result, got, c.want)
		}
	}
	if got := after.Sum(h, str("op", "create")) - before.Sum(h, str("op", "create")); got < 0.0059 || got > 0.0061 {
		t.Errorf("%s{op=create} sum grew by %vs, want 0.006s", h, got)
	}
}

func TestRequestOpsAreBounded(t *testing.T) {
	for i := range 200 {
		metrics.Request(fmt.Sprintf("op-%d", i), time.Millisecond, nil)
	}
	s := metricstest.Collect(t)
	if s.Count("zkactor_zk_request_duration_seconds", str("op", "other")) == 0 {
		t.Error(`no requests recorded as op "other" after 200 distinct ops`)
	}
	if got := s.Count("zkactor_zk_request_duration_seconds", str("op", "op-199")); got != 0 {
		t.Errorf("op-199 has its own series (%d requests): ops are not bounded", got)
	}
}

func TestCache(t *testing.T) {
	c := metrics.NewCache("test")
	c.Miss() // notes the provider: hits count from now on
	for range 3 {
		c.Hit()
	}
	c.Swept(2)
	c.Evicted(1)
	c.Entries(3)
	c.Entries(-1)
	var none *metrics.Cache
	none.Hit() // a cache without counts
	none.Miss()

	s := metricstest.Collect(t)
	for _, want := range []struct {
		name  string
		value int64
	}{
		{"zkactor_cache_hits_total", 3},
		{"zkactor_cache_misses_total", 1},
		{"zkactor_cache_sweeps_total", 2},
		{"zkactor_cache_evictions_total", 1},
		{"zkactor_cache_entries", 2},
	} {
		if got := s.Int(want.name, str("cache", "test")); got != want.value {
			t.Errorf("%s{cache=test} = %d, want %d", want.name, got, want.value)
		}
	}
	if !s.Has("zkactor_cache_hits_total") || s.Int("zkactor_cache_hits_total", str("cache", "services")) < 0 {
		t.Error("the services cache has no series")
	}
}

func TestCacheHitAllocatesNothing(t *testing.T) {
	if offAllocs != 0 {
		t.Errorf("a cache hit without a meter provider allocates %v times", offAllocs)
	}
	metrics.ServicesCache.Miss()
	if n := testing.AllocsPerRun(1000, metrics.ServicesCache.Hit); n != 0 {
		t.Errorf("a cache hit with a meter provider allocates %v times", n)
	}
}

func TestRegistrations(t *testing.T) {
	before := metricstest.Collect(t)
	metrics.Registration(nil)
	metrics.Registration(nil)
	metrics.Registration(zk.ErrNoAuth)
	metrics.Unregistration(nil)
	after := metricstest.Collect(t)
	for _, c := range []struct {
		name, result string
		want         int64
	}{
		{"zkactor_registrations_total", "ok", 2},
		{"zkactor_registrations_total", "error", 1},
		{"zkactor_unregistrations_total", "ok", 1},
	} {
		if got := after.Int(c.name, str("result", c.result)) - before.Int(c.name, str("result", c.result)); got != c.want {
			t.Errorf("%s{result=%s} grew by %d, want %d", c.name, c.result, got, c.want)
		}
	}
}

func TestElections(t *testing.T) {
	const name = "test-boss"
	epoch := func() (int64, bool) {
		s := metricstest.Collect(t)
		v := s.Int("zkactor_global_epoch", str("name", name))
		return v, v != 0
	}
	before := metricstest.Collect(t)
	metrics.CandidacyStarted()
	metrics.CandidacyStarted()
	metrics.ElectionEntered()
	metrics.TermStarted(name, 40)
	metrics.TermStarted(name, 42) // another node of this process, say
	if e, _ := epoch(); e != 42 {
		t.Errorf("zkactor_global_epoch{name=%s} = %d while epochs 40 and 42 are held, want 42", name, e)
	}
	metrics.GuardStop()
	metrics.TermEnded(name, 42, metrics.TermEndLease)
	if e, _ := epoch(); e != 40 {
		t.Errorf("zkactor_global_epoch{name=%s} = %d once 42 ended, want 40", name, e)
	}
	metrics.TermEnded(name, 40, metrics.TermEndResigned)
	if e, ok := epoch(); ok {
		t.Errorf("zkactor_global_epoch{name=%s} = %d with no term held, want no series", name, e)
	}
	metrics.CandidacyEnded()
	after := metricstest.Collect(t)
	for _, c := range []struct {
		name string
		attr []attribute.KeyValue
		want int64
	}{
		{"zkactor_candidacies", nil, 1},
		{"zkactor_election_entries_total", nil, 1},
		{"zkactor_terms_total", nil, 2},
		{"zkactor_term_ends_total", []attribute.KeyValue{str("reason", "lease")}, 1},
		{"zkactor_term_ends_total", []attribute.KeyValue{str("reason", "resigned")}, 1},
		{"zkactor_guard_stops_total", nil, 1},
	} {
		if got := after.Int(c.name, c.attr...) - before.Int(c.name, c.attr...); got != c.want {
			t.Errorf("%s%v grew by %d, want %d", c.name, c.attr, got, c.want)
		}
	}
}

func TestJobs(t *testing.T) {
	before := metricstest.Collect(t)
	metrics.Jobs(metrics.JobAccepted, 1)
	metrics.Jobs(metrics.JobRedelegated, 3)
	metrics.Jobs(metrics.JobDone, 0) // nothing
	after := metricstest.Collect(t)
	const name = "zkactor_boss_jobs_total"
	for outcome, want := range map[string]int64{"accepted": 1, "redelegated": 3, "done": 0} {
		if got := after.Int(name, str("outcome", outcome)) - before.Int(name, str("outcome", outcome)); got != want {
			t.Errorf("%s{outcome=%s} grew by %d, want %d", name, outcome, got, want)
		}
	}
}

// TestPrometheusNames checks that the Prometheus exporter keeps the
// instruments' names, as the package doc and the README promise.
func TestPrometheusNames(t *testing.T) {
	metrics.Request("create", time.Millisecond, nil) // an op seen before TestRequestOpsAreBounded, if it runs
	metrics.SessionExpired()
	metrics.SessionConnected(true)
	defer metrics.SessionConnected(false)
	metrics.ServicesCache.Miss()
	metrics.ServicesCache.Hit()
	metrics.TermStarted("prom-boss", 7)
	defer metrics.TermEnded("prom-boss", 7, metrics.TermEndResigned)
	metrics.Jobs(metrics.JobDone, 1)

	srv := httptest.NewServer(promhttp.HandlerFor(promRegistry, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, want := range []string{
		`zkactor_zk_request_duration_seconds_bucket{op="create",`,
		`zkactor_zk_request_duration_seconds_count{op="create",`,
		"\nzkactor_session_expiries_total{",
		"\nzkactor_session_connected{",
		`zkactor_cache_hits_total{cache="services",`,
		`zkactor_cache_entries{cache="services",`,
		`zkactor_global_epoch{name="prom-boss",`,
		`zkactor_boss_jobs_total{otel_scope_name="github.com/zkactor/zkactor",otel_scope_version="",outcome="done"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}
