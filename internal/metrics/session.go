package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

var (
	sessionConnected = upDownCounter("zkactor_session_connected", "{session}",
		"ZooKeeper sessions of this process that have a live connection now (one per node)")
	sessionDisconnects = counter("zkactor_session_disconnects_total", "{disconnect}",
		"Connections to ZooKeeper lost while the session may live on")
	sessionExpiries = counter("zkactor_session_expiries_total", "{expiry}",
		"ZooKeeper sessions expired: their ephemerals and watches are gone, and zkactor re-creates them on a new session")
	sessionPauses = counter("zkactor_session_pauses_total", "{pause}",
		"Pauses of this process (SIGSTOP, a VM freeze) of a third of the session timeout or more")
	requestDuration = histogram("zkactor_zk_request_duration_seconds", "s",
		"Duration of ZooKeeper requests, from sending to the reply (or to giving up), by op and result",
		0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
)

// SessionConnected records that a session got (up) or lost (!up) its live
// connection. Calls must alternate, starting with up, so that
// zkactor_session_connected counts the connected sessions.
func SessionConnected(up bool) {
	if up {
		sessionConnected.Add(background, 1)
	} else {
		sessionConnected.Add(background, -1)
	}
}

// SessionDisconnected records a lost connection.
func SessionDisconnected() { sessionDisconnects.Add(background, 1) }

// SessionExpired records an expired session.
func SessionExpired() { sessionExpiries.Add(background, 1) }

// SessionPaused records that the process was paused.
func SessionPaused() { sessionPauses.Add(background, 1) }

// Request records one ZooKeeper request: op is what it was for
// (cluster.Op.Name: "create", "get children", ...), d how long it took,
// err its outcome.
func Request(op string, d time.Duration, err error) {
	noteProvider()
	requestDuration.Record(background, d.Seconds(), requestAttrs(op, requestResult(err))...)
}

// requestResult is the result attribute of a request: ok; one of the
// answers a caller expects from ZooKeeper (no_node, node_exists,
// bad_version, not_empty, no_auth); connection (lost, or the session
// expired: the request may be retried); timeout (the caller gave up); or
// error.
func requestResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, zk.ErrNoNode):
		return "no_node"
	case errors.Is(err, zk.ErrNodeExists):
		return "node_exists"
	case errors.Is(err, zk.ErrBadVersion):
		return "bad_version"
	case errors.Is(err, zk.ErrNotEmpty):
		return "not_empty"
	case errors.Is(err, zk.ErrNoAuth):
		return "no_auth"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrSessionMoved), errors.Is(err, zk.ErrClosing):
		return "connection"
	}
	return "error"
}

// maxOps bounds the distinct op values: op comes from the callers of
// Session.Do, and beyond maxOps values the rest are recorded as "other".
const maxOps = 64

type requestKey struct{ op, result string }

// requestSets holds the attribute options of each (op, result) seen, so
// that a request allocates nothing once its kind has been seen.
var requestSets struct {
	mu   sync.RWMutex
	ops  map[string]bool
	opts map[requestKey][]metric.RecordOption
}

func requestAttrs(op, result string) []metric.RecordOption {
	k := requestKey{op, result}
	requestSets.mu.RLock()
	opts, ok := requestSets.opts[k]
	requestSets.mu.RUnlock()
	if ok {
		return opts
	}
	requestSets.mu.Lock()
	defer requestSets.mu.Unlock()
	if requestSets.opts == nil {
		requestSets.ops = map[string]bool{}
		requestSets.opts = map[requestKey][]metric.RecordOption{}
	}
	if opts, ok := requestSets.opts[k]; ok {
		return opts
	}
	if !requestSets.ops[op] {
		if len(requestSets.ops) >= maxOps {
			k.op = "other"
			if opts, ok := requestSets.opts[k]; ok {
				return opts
			}
		} else {
			requestSets.ops[op] = true
		}
	}
	opts = recordAttrs(attribute.String("op", k.op), attribute.String("result", result))
	requestSets.opts[k] = opts
	return opts
}
