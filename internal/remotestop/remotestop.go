// Package remotestop shuts protoactor-go's remote down without taking the
// process with it.
//
// protoactor's graceful Remote.Shutdown panics ("send on closed channel")
// when an inbound stream ended with an error before: its endpoint reader
// closes the stream's disconnect channel without taking it out of the map
// that the endpoint manager's stop sends to. The chaos checker met it on
// nodes and on grains members alike. The remote is going away either way, so
// the panic is logged and the gRPC server is stopped the hard way (the
// panic left it running, and a supervised member comes back on its port).
package remotestop

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/remote"
)

// Shutdown calls r.Shutdown(graceful); if that panics, it logs the panic
// and stops r's server with r.Shutdown(false).
func Shutdown(r *remote.Remote, graceful bool, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Warn("protoactor's remote panicked while shutting down; stopping its server", "panic", fmt.Sprint(p))
			r.Shutdown(false)
		}
	}()
	r.Shutdown(graceful)
}
