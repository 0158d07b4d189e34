// Package config keeps the configs of services in ZooKeeper: a record per
// service, an override per process of the service, and subscriptions that
// send an actor the merged config at once and again after every change of
// either part (PettingZoo's "distributed config" recipe).
//
// # Znode layout
//
// Under the cluster's root (cluster.DefaultRoot unless Options.Root says
// otherwise); every znode is persistent, so a config outlives the processes
// that read it and an override outlives a restart of its process:
//
//	<root>/config                             persistent
//	└── <service>                             persistent   Record{values, write_id}   the service's config
//	    └── overrides                         persistent   (no data; created with the service's record)
//	        └── <process>                     persistent   Record{values, write_id}   one process's override
//
// Service and process names are validated by cluster.ValidateName: a bad
// name is an error wrapping cluster.ErrBadName and no request is made.
//
// # Records and the merge
//
// A Record (proto/recipes/config/v1) holds a google.protobuf.Struct, that
// is a JSON object: ParseJSON reads one from JSON and protojson.Marshal
// writes it back. Values are validated before they are written (every
// value set, numbers finite, UTF-8, nesting at most MaxDepth, the encoded
// record at most MaxRecordSize): an invalid record is ErrInvalid or
// cluster.ErrTooLarge, and nothing is written.
//
// The merged config of a process is the service's values with the
// override applied as a JSON merge patch (RFC 7396, see Merge): a key of
// the override replaces the service's key, objects merge key by key at
// every depth, null deletes a key, lists are replaced whole. A missing
// record or override counts as the empty object.
//
// # Writes: compare-and-set
//
//	Set(ctx, service, values, version)                  setData(<service>, version)
//	Set(ctx, service, values, Absent)                   multi{create <service>, create <service>/overrides}
//	SetOverride(ctx, service, process, values, version) setData or create <service>/overrides/<process>
//	DeleteOverride(ctx, service, process, version)      delete(<service>/overrides/<process>, version)
//
// Every write names the version it expects (the znode's data version, from
// Get or from a subscriber's Config); Absent asks for a create. Another
// version is a *ConflictError carrying the current one (errors.Is
// ErrConflict), so of two concurrent writers at one version one succeeds
// and the other is told, and no write is lost unseen. AnyVersion opts out.
//
// A write whose reply is lost with the connection is sent again once the
// client has reconnected. If the first one was applied, the second meets
// it as a conflict; the record is then read back, and if it holds this
// call's write (every Record carries the random write id of the call that
// wrote it), the call succeeds with that version instead of reporting a
// conflict with itself. A delete sent again that finds the override gone
// likewise counts as done. A write applied and then
// overwritten by another client before the read back is reported as a
// conflict: from the record alone it cannot be told from one never applied.
// Versions start again at 0 when a znode is deleted and created again, so
// a write sent again can also act on a record that another client deleted
// and created meanwhile: a create whose reply was lost creates the record
// again if it was deleted in that window, and a delete at version 0 deletes
// an override created again at version 0. That is ZooKeeper's
// compare-and-set, retried or not: it compares versions, not creations.
//
// # The life of a subscription
//
//	Subscribe ── read both parts, watching ──► first Config sent ──► waiting on the two watches
//	waiting ── a part written, created or deleted ──► that part read again (watching) ──► Config sent
//	waiting ── session expired (every watch ends) ──► both read again on the new session ──►
//	           Config sent only if a part changed meanwhile
//	any ── cancel, the subscriber actor stops (watched), Store.Close, Session.Close ──► ended: no message after it
//
// A part that exists is read with a data watch, one that does not with an
// exists watch, so that its creation is seen. go-zookeeper cannot remove a
// watch: those of an ended subscription stay armed in the client until
// their znode changes, and the next subscription on that znode takes them
// over (with a read without a watch) instead of adding another. After reading one part, the
// subscription checks whether the other's watch has fired (ZooKeeper sends
// a client a watch event before the reply to any later request): if it
// has, that part is read again first, so the two parts of every Config
// held together at one moment.
//
// Every Config carries, for each part, whether it exists, its version and
// its revision: the zxid of its last write (mzxid), or for an absent part
// the pzxid of its nearest existing ancestor, which is at or after the
// part's deletion. Config.Revision, the larger of the two, grows strictly
// from one message of a subscription to the next. ZooKeeper's ordering
// gives that (a client reconnects only to a server as recent as what it
// has seen, and a new session is created by a transaction ordered after
// every write read on the old one); a read that went back all the same
// would not be sent, but read again after a sync. A read that finds both
// parts as they were sent sends nothing.
//
// # Faults
//
// Data that is not a Record, written by another client, is never trusted
// and never panics: Get returns an error wrapping ErrBadRecord that names
// the znode; a subscriber is sent a Config whose Error says the same and
// whose Values are the last good merged config it received, and a Warn is
// logged. A znode without data counts as an empty record. A znode whose
// ACL refuses this client gives an error wrapping ErrNotAllowed: from Get,
// and from Subscribe for the first read.
//
// Give every subscriber READ on the config znodes (the Session's ACL gives
// it to the world). ZooKeeper sends no watch event for a change of a znode
// the client may not read (servers with the fix of CVE-2024-23944: 3.8.4,
// 3.9.2 and later, and patched builds), and spends the watch all the same:
// a part made unreadable is not followed, even once readable again, until
// the subscription reads it again after a reconnect or on a new session.
// When such a read is refused, the subscription logs a Warn once, sends
// nothing, and reads again with a backoff growing to 5 s until the ACL
// allows it.
//
// A subscriber owns every Config it is sent and may edit it: each message
// is a copy, shared with neither the subscription nor other messages.
//
// While ZooKeeper is unreachable, calls wait within their ctx and fail
// with cluster.ErrNotConnected; subscriptions keep waiting and read again
// once connected.
package config
