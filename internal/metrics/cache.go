package metrics

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Cache counts for one of zkactor's lookup caches, named in the cache
// attribute. The counts are plain atomics, read when a reader collects:
// a hit does one atomic load while no meter provider is set, and one
// atomic add once one is, never a lock. A nil *Cache counts nothing.
type Cache struct {
	name    string
	attrs   []metric.ObserveOption
	hits    atomic.Int64
	misses  atomic.Int64
	sweeps  atomic.Int64
	evicted atomic.Int64
	entries atomic.Int64
}

// The caches zkactor keeps, one per kind: the attribute's values are
// these names alone.
var (
	// ServicesCache answers GetCapable and Lookup.
	ServicesCache = NewCache("services")
	// NodesCache answers GetPeers.
	NodesCache = NewCache("nodes")
	// LeadersCache answers WhereisGlobal.
	LeadersCache = NewCache("leaders")
)

var caches struct {
	mu  sync.Mutex
	all []*Cache
}

// NewCache returns the counts of a cache kind. name must be a constant:
// every call adds a series to each cache instrument, for good.
func NewCache(name string) *Cache {
	c := &Cache{name: name, attrs: observeAttrs(attribute.String("cache", name))}
	caches.mu.Lock()
	caches.all = append(caches.all, c)
	caches.mu.Unlock()
	return c
}

// Hit records a lookup answered from memory. It is free while metrics are
// off, and allocates nothing either way.
func (c *Cache) Hit() {
	if c != nil && on.Load() {
		c.hits.Add(1)
	}
}

// Miss records a lookup that had to read ZooKeeper.
func (c *Cache) Miss() {
	if c != nil {
		noteProvider()
		c.misses.Add(1)
	}
}

// Swept records n entries dropped because ZooKeeper said they changed: a
// watch fired, or the session expired.
func (c *Cache) Swept(n int) {
	if c != nil {
		c.sweeps.Add(int64(n))
	}
}

// Evicted records n entries dropped to bound the cache: idle ones, or
// entries for names that do not exist beyond the cache's bound.
func (c *Cache) Evicted(n int) {
	if c != nil {
		c.evicted.Add(int64(n))
	}
}

// Entries records a change in the number of entries the cache holds: +1
// when it adds one, -1 when it drops one, whatever the reason.
func (c *Cache) Entries(delta int) {
	if c != nil {
		c.entries.Add(int64(delta))
	}
}

var (
	cacheHits = observableCounter("zkactor_cache_hits_total", "{lookup}",
		"Lookups answered from the cache, by cache (counted once a meter provider is set)")
	cacheMisses = observableCounter("zkactor_cache_misses_total", "{lookup}",
		"Lookups that read ZooKeeper, by cache")
	cacheSweeps = observableCounter("zkactor_cache_sweeps_total", "{entry}",
		"Cache entries dropped because ZooKeeper said they changed (a watch fired, the session expired), by cache")
	cacheEvictions = observableCounter("zkactor_cache_evictions_total", "{entry}",
		"Cache entries dropped to bound the cache (idle, or beyond the bound on absent names), by cache")
	cacheEntries = observableUpDownCounter("zkactor_cache_entries", "{entry}",
		"Entries the cache holds now, by cache")
)

// observeCaches reports the counts of every cache.
func observeCaches(o metric.Observer) {
	caches.mu.Lock()
	all := caches.all
	caches.mu.Unlock()
	for _, c := range all {
		o.ObserveInt64(cacheHits, c.hits.Load(), c.attrs...)
		o.ObserveInt64(cacheMisses, c.misses.Load(), c.attrs...)
		o.ObserveInt64(cacheSweeps, c.sweeps.Load(), c.attrs...)
		o.ObserveInt64(cacheEvictions, c.evicted.Load(), c.attrs...)
		o.ObserveInt64(cacheEntries, c.entries.Load(), c.attrs...)
	}
}
