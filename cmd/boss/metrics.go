package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// serveMetrics installs a meter provider that exports to Prometheus as the
// global one, so that zkactor records its metrics (the zkactor_ names;
// this program's jobs are zkactor_boss_jobs_total), and serves them at
// http://<addr>/metrics. It returns the address it listens on; stop ends
// the server.
func serveMetrics(addr string, log *slog.Logger) (listening string, stop func(), err error) {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	otel.SetMeterProvider(provider)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("serving metrics", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), func() {
		_ = srv.Close()
		<-done
		_ = provider.Shutdown(context.Background())
	}, nil
}
