// Package plumbing is what zkactor's own packages use of a cluster.Session
// that is not its public API: a request whose late outcome must be known,
// and the count of requests that tests assert on. Package cluster fills the
// hooks in when it is initialised; they take the session as an any to keep
// this package free of cluster (which imports it).
package plumbing

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"
)

// DoLate is cluster.Session.Do with a callback for the outcome of a
// request whose caller gave up (ctx ended) before the reply came: a create
// that succeeds late must be undone by someone. session is a
// *cluster.Session; name and path describe the request in errors, as
// cluster.Op does.
var DoLate func(ctx context.Context, session any, name, path string, late func(error), fn func(*zk.Conn) error) error

// ErrLate is wrapped by DoLate's error when the request was sent and its
// caller gave up before the reply: late will be called with the outcome
// (or has been). Any other error means late is never called.
var ErrLate = errors.New("the outcome goes to late")

// Requests returns how many ZooKeeper requests a *cluster.Session has
// issued. Tests use it to prove that cached lookups cost none.
var Requests func(session any) int64

// Settled reports whether a *cluster.Registry's keeper has nothing left to
// do: every znode it keeps confirmed, none to delete, no directory check
// coming. The keeper's checks are requests of the registry's session, so
// tests that count a session's requests wait for it first.
var Settled func(registry any) bool
