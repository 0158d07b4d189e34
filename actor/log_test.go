package actor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// protoactor logs a peer's ordinary disconnect at ERROR; a node's logs must
// not, while real errors stay errors and chatter stays out.
func TestProtoactorLogsAreQuietOnANormalDay(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		l := protoactorLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})))
		l.Error("EndpointWriter lost connection", "address", "127.0.0.1:1", "error", "rpc error: code = Canceled desc = grpc: the client connection is closing")
		l.Error("EndpointWriter failed to serialize message", "address", "127.0.0.1:1")
		l.Info("Started EndpointManager")
		l.Warn("EndpointWriter failed to connect")
		out := buf.String()
		if strings.Contains(out, "level=ERROR msg=\"EndpointWriter lost connection\"") {
			t.Errorf("handler at %v: a routine disconnect logged at ERROR:\n%s", level, out)
		}
		if got := strings.Contains(out, "level=DEBUG msg=\"EndpointWriter lost connection\""); got != (level == slog.LevelDebug) {
			t.Errorf("handler at %v: routine disconnect at DEBUG shown = %v:\n%s", level, got, out)
		}
		if !strings.Contains(out, "level=ERROR msg=\"EndpointWriter failed to serialize message\"") {
			t.Errorf("handler at %v: a real error was lost:\n%s", level, out)
		}
		if strings.Contains(out, "Started EndpointManager") {
			t.Errorf("handler at %v: protoactor's chatter got through:\n%s", level, out)
		}
		if !strings.Contains(out, "level=WARN") {
			t.Errorf("handler at %v: a warning was lost:\n%s", level, out)
		}
	}
}
