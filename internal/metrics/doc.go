// Package metrics holds zkactor's OpenTelemetry instruments and the small
// functions the rest of the code records with.
//
// The instruments come from the global meter provider
// (otel.GetMeterProvider(), scope "github.com/zkactor/zkactor"), as
// protoactor-go's do. Metrics are off until the program installs a
// provider with otel.SetMeterProvider, before or after zkactor starts:
// until then every recording is a no-op costing about an atomic load, and
// a cache hit allocates nothing and touches no shared counter. The README
// shows how to expose them to Prometheus.
//
// # Instruments
//
// The names are the Prometheus names too (the exporter adds nothing to
// them). Attributes take a few fixed values, except where noted.
//
//	zkactor_session_connected            gauge      sessions of this process with a live connection (one per node)
//	zkactor_session_disconnects_total    counter    connections lost while the session may live on
//	zkactor_session_expiries_total       counter    sessions expired (ephemerals re-created on a new one)
//	zkactor_session_pauses_total         counter    pauses of the process of a third of the session timeout or more
//	zkactor_zk_request_duration_seconds  histogram  ZooKeeper requests: op (cluster.Op.Name: create, delete,
//	                                                get, get children, exists, ...; at most 64 values, then
//	                                                "other"), result (ok, no_node, node_exists, bad_version,
//	                                                not_empty, no_auth, connection, timeout, error)
//	zkactor_cache_hits_total             counter    lookups answered from memory, by cache (services, nodes,
//	                                                leaders); counted from the moment zkactor sees the
//	                                                provider (its next ZooKeeper request, or a collection)
//	zkactor_cache_misses_total           counter    lookups that read ZooKeeper, by cache
//	zkactor_cache_sweeps_total           counter    entries dropped because a watch fired or the session expired, by cache
//	zkactor_cache_evictions_total        counter    entries dropped to bound the cache, by cache
//	zkactor_cache_entries                gauge      entries held, by cache
//	zkactor_registrations_total          counter    Registers that reached ZooKeeper, by result (ok, error)
//	zkactor_unregistrations_total        counter    Unregisters, by result (ok, error)
//	zkactor_candidacies                  gauge      live candidacies (RegisterCandidate) of this process
//	zkactor_election_entries_total       counter    candidate znodes created (entering a queue, first or again)
//	zkactor_terms_total                  counter    terms started on this process
//	zkactor_term_ends_total              counter    terms ended, by reason (lease, znode_gone, stopped, resigned)
//	zkactor_guard_stops_total            counter    globals stopped by the lease guard as a message arrived
//	                                                after the lease ran out (those term ends count as lease too)
//	zkactor_global_epoch                 gauge      epoch of the term held, by name: one series per global
//	                                                name this process leads, none while it leads none
//	zkactor_boss_jobs_total              counter    cmd/boss jobs, by outcome (accepted, rejected, taken_over,
//	                                                delegated, redelegated, refused, done)
//
// Cardinality: zkactor_global_epoch is the only instrument with a
// user-chosen attribute, the global's name: as many series as the globals
// this process leads, which programs keep few (a global is a singleton
// role, not a per-request name). Service names and node ids are never
// attributes.
package metrics
