// Package metricstest installs an OpenTelemetry SDK meter provider with a
// manual reader as the global provider, for tests that check what zkactor
// records, and reads the values back.
package metricstest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var (
	installOnce sync.Once
	reader      *sdkmetric.ManualReader
)

// Install makes an SDK meter provider with a manual reader (and readers,
// any extra ones given) the global meter provider, once per process, and
// returns the manual reader. Instruments created from the global provider
// follow only the first provider ever set, so every test of a process
// shares this one; the extra readers count only on the first call.
func Install(extra ...sdkmetric.Reader) *sdkmetric.ManualReader {
	installOnce.Do(func() {
		reader = sdkmetric.NewManualReader()
		opts := []sdkmetric.Option{sdkmetric.WithReader(reader)}
		for _, r := range extra {
			opts = append(opts, sdkmetric.WithReader(r))
		}
		otel.SetMeterProvider(sdkmetric.NewMeterProvider(opts...))
	})
	return reader
}

// Snapshot is what the reader collected at one moment.
type Snapshot struct {
	metrics map[string]metricdata.Metrics
}

// Collect installs the provider if need be and collects every instrument.
func Collect(t testing.TB) Snapshot {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := Install().Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	s := Snapshot{metrics: map[string]metricdata.Metrics{}}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			s.metrics[m.Name] = m
		}
	}
	return s
}

// Has reports whether the instrument name has any data point.
func (s Snapshot) Has(name string) bool {
	_, ok := s.metrics[name]
	return ok
}

// Names lists the instruments with data points, sorted.
func (s Snapshot) Names() []string {
	var names []string
	for n := range s.metrics {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Int is the sum of the values of the integer counter, up-down counter or
// gauge name over its data points whose attributes include attrs (all of
// them when attrs is empty).
func (s Snapshot) Int(name string, attrs ...attribute.KeyValue) int64 {
	var total int64
	switch d := s.metrics[name].Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, attrs) {
				total += p.Value
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, attrs) {
				total += p.Value
			}
		}
	}
	return total
}

// Count is the number of measurements of the histogram name over its data
// points whose attributes include attrs.
func (s Snapshot) Count(name string, attrs ...attribute.KeyValue) uint64 {
	var total uint64
	if d, ok := s.metrics[name].Data.(metricdata.Histogram[float64]); ok {
		for _, p := range d.DataPoints {
			if matches(p.Attributes, attrs) {
				total += p.Count
			}
		}
	}
	return total
}

// Sum is the sum of the measurements of the histogram name over its data
// points whose attributes include attrs.
func (s Snapshot) Sum(name string, attrs ...attribute.KeyValue) float64 {
	var total float64
	if d, ok := s.metrics[name].Data.(metricdata.Histogram[float64]); ok {
		for _, p := range d.DataPoints {
			if matches(p.Attributes, attrs) {
				total += p.Sum
			}
		}
	}
	return total
}

func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}
