package cluster

import "github.com/zkactor/zkactor/internal/watchcache"

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

// VerifyDelay is how long the keeper batches the changes of a watched
// directory before it lists it again.
const VerifyDelay = verifyDelay
