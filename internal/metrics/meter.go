package metrics

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Scope is the instrumentation scope of every zkactor instrument (the
// otel_scope_name label in Prometheus).
const Scope = "github.com/zkactor/zkactor"

// meter is the global meter provider's. Until the program calls
// otel.SetMeterProvider, the instruments it hands out record nothing, at
// the cost of one atomic load; once the program does, the same instruments
// forward to the new provider, callbacks included. So every instrument is
// created once, here, when the package is initialised.
var meter = otel.Meter(Scope)

// background is the context of every measurement: nothing zkactor records
// depends on a caller's context.
var background = context.Background()

// The hot path (a cache hit) counts only while on is set: an atomic load
// of a word nobody writes costs nothing, where an atomic add to a shared
// counter, or the SDK's mutex, would make parallel lookups contend. on is
// set once zkactor sees that the program installed a meter provider: the
// global provider is no longer the one it had at initialisation (checked on
// slow paths: ZooKeeper requests and cache misses), or a reader collects.
var (
	on              atomic.Bool
	initialProvider = otel.GetMeterProvider()
)

// noteProvider turns the hot-path counters on once a provider is set.
func noteProvider() {
	if !on.Load() && otel.GetMeterProvider() != initialProvider {
		on.Store(true)
	}
}

func counter(name, unit, desc string) metric.Int64Counter {
	c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	if c == nil {
		return noop.Int64Counter{}
	}
	return c
}

func upDownCounter(name, unit, desc string) metric.Int64UpDownCounter {
	c, err := meter.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	if c == nil {
		return noop.Int64UpDownCounter{}
	}
	return c
}

func histogram(name, unit, desc string, bounds ...float64) metric.Float64Histogram {
	h, err := meter.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
		metric.WithExplicitBucketBoundaries(bounds...))
	if err != nil {
		otel.Handle(err)
	}
	if h == nil {
		return noop.Float64Histogram{}
	}
	return h
}

func observableCounter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	if c == nil {
		return noop.Int64ObservableCounter{}
	}
	return c
}

func observableGauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	if g == nil {
		return noop.Int64ObservableGauge{}
	}
	return g
}

func observableUpDownCounter(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	c, err := meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		otel.Handle(err)
	}
	if c == nil {
		return noop.Int64ObservableUpDownCounter{}
	}
	return c
}

// One callback observes every asynchronous instrument: otel v1.21's global
// meter forwards only the first of the callbacks registered before a
// provider is set (its setDelegate removes each from the list while walking
// it). The callback runs only when a reader collects, so a provider is set.
func init() {
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		on.Store(true)
		observeCaches(o)
		observeEpochs(o)
		return nil
	}, cacheHits, cacheMisses, cacheSweeps, cacheEvictions, cacheEntries, globalEpoch)
	if err != nil {
		otel.Handle(err)
	}
}

// The attribute sets are built once, as options: a measurement with them
// allocates nothing.

func addAttrs(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func recordAttrs(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func observeAttrs(kv ...attribute.KeyValue) []metric.ObserveOption {
	return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

// result is the result attribute of a call that either worked or not.
func result(err error) []metric.AddOption {
	if err != nil {
		return resultError
	}
	return resultOK
}

var (
	resultOK    = addAttrs(attribute.String("result", "ok"))
	resultError = addAttrs(attribute.String("result", "error"))
)
