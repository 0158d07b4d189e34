package metrics_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Expose zkactor's metrics to Prometheus: install a meter provider whose
// reader is the Prometheus exporter, as the global one, and serve the
// default registry. This is the README's snippet; it is compiled, not run
// (it would listen on a port).
func Example_prometheus() {
	exporter, err := prometheus.New() // registers with prometheus.DefaultRegisterer
	if err != nil {
		log.Fatal(err)
	}
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)))
	http.Handle("/metrics", promhttp.Handler())
	go func() { log.Fatal(http.ListenAndServe("127.0.0.1:9464", nil)) }()

	// Then zka.Bootstrap(...) as usual: the zkactor_ metrics appear at
	// http://127.0.0.1:9464/metrics.
}
