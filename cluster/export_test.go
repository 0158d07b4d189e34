package cluster

import (
	"testing"

	"github.com/zkactor/zkactor/internal/watchcache"
)

// Settled reports whether r's keeper has nothing left to do: every znode
// it keeps is confirmed on the current session and none waits to be
// deleted. Tests wait for it before they look for what the keeper might
// still delete.
func Settled(r *Registry) bool { return r.keeper.settled() }

// Cached reports whether r's lookup cache holds a fresh entry for the
// service name.
func Cached(r *Registry, name string) bool { _, ok := r.services.Peek(name); return ok }

// CacheStats returns the counters and sizes of r's service cache.
func CacheStats(r *Registry) watchcache.Stats { return r.services.Stats() }

// SetFollowerServers makes the keepers started during the test dial their
// follower's connection (follow.go) to servers instead of the session's:
// a proxy of its own, so that a test can cut it alone.
func SetFollowerServers(t testing.TB, servers []string) {
	testFollowerServers = servers
	t.Cleanup(func() { testFollowerServers = nil })
}
