// Package cluster is zkactor's ZooKeeper side: the session, node
// membership, the service registry and its watch-swept lookup cache. It
// works with any protoactor-go ActorSystem; package actor wraps it in a
// ready-made node, and package global builds elections on the same session.
//
// # Znode layout
//
// Everything lives under one root (default /zkactor), so several clusters
// can share an ensemble. All data is protobuf (proto/zkactor/v1).
//
//	/zkactor                               persistent
//	├── nodes                              persistent
//	│   └── <node-id>                      ephemeral   Node{id, address, started_at}
//	├── services                           persistent
//	│   └── <name>                         container   (ZooKeeper deletes it when empty)
//	│       └── <node-id>-<pid-hash>       ephemeral   Registration{name, pid, node, metadata, registered_at}
//	└── globals                            persistent
//	    └── <name>                         container
//	        └── _c_<guid>-c-<seq>          ephemeral sequential   Candidate{pid, node, ...} (package global)
//
// Names (services, globals, node ids) are validated by ValidateName, which
// accepts exactly the path components ZooKeeper and go-zookeeper accept
// (bounded to MaxNameLength bytes): a bad name is an error wrapping
// ErrBadName, never a panic, a stray path or a request the server refuses.
//
// # The session
//
// A Session owns the ZooKeeper connection of a node that holds its
// ephemerals (a registry's keeper also keeps a watch-only connection of
// its own, below). The registry, the cache and elections borrow it: they send requests through Session.Do,
// which waits for a connection within the caller's ctx, and they hear of
// disconnects, expiries and new sessions through Session.Notify.
//
//	Dial ──► Connected ──(connection lost)──► Disconnected ──(back in time)──► Connected (same session)
//	                                               │
//	                                   (no server heard from for the session timeout)
//	                                               ▼
//	                                            Expired ──► Connected{NewSession: true}
//
// Session.SafeUntil (and SafeUntilFor, per session) tells how long the
// quorum leader certainly counts the session alive, on the monotonic clock:
// a leader stops acting past it. It is anchored only at proof from the
// quorum leader (a handshake, or two confirmed no-op writes on one
// connection, see lease.go and package global's documentation), never at
// bytes from whichever server the client talks to. Session.HoldLease keeps
// it fresh with a probe every sixth of the session timeout.
//
// Components that give up ephemeral znodes while ZooKeeper is unreachable
// hand them to Session.DeleteWhenConnected. Kept ephemerals (node and
// registrations) are re-created when someone else deletes them. The keeper
// follows their parent directories with persistent recursive watches
// (ZooKeeper 3.6+) on a second connection, whose session owns nothing: a
// delete comes as one event naming the znode, so a change costs the same
// whatever the directory's size, and the registering session sends its
// creates and nothing else (a read queued on it would wait for the writes
// before it, and hold back those after it). An event (a delete, or a data
// change) is a suspicion that the session settles before anything is
// re-created: a get, and when that finds the znode, a sync and the get
// again (the session's server may lag behind the one that reported the
// delete). One gone, owned by another session or holding other data is
// made again (ours with other data: deleted first). The
// first registration in a directory is created once the directory's watch
// is set (its parent's create runs meanwhile), so no delete can fall before
// the watch; one made while the second connection is down is checked once
// it is back. ZooKeeper older than 3.6 cannot set the watches: the keeper
// logs a warning, and foreign deletes there are not repaired.
//
//	first in a directory:  addWatch (watch conn) ∥ create parent ──► create registration
//	foreign delete or set ──► event (watch conn) ──► get [sync, get] (session) ──► gone or changed: create again
//	watch conn lost ──► set every watch again ──► exists of each of ours (watch conn)
//
// # The life of a registration
//
//	Register(name, pid) ── create ephemeral <name>/<node-id>-<pid-hash> ──► registered
//	registered ── Unregister / actor stops (Terminated) / Registry.Close ──► deleted
//	registered ── session expires ──► gone from ZooKeeper ──► re-created on the new session
//
// The registration id is fixed for (node, PID), so a create retried after
// a lost connection finds its own znode (same session owner) rather than
// making a second; a create whose caller gave up is deleted once its
// outcome is known. The registry watches every registered PID and removes
// its registrations as soon as the actor stops. Register, Unregister and
// the background re-creation of one (name, PID) are serialised by a lock
// on its path, so concurrent calls end in the state of the last one.
//
// What the server refuses (a bad path, an ACL, a znode another session
// owns) is reported to the caller, or logged at Error when a re-creation
// meets it, and never retried. A znode is only ever deleted by the session
// that owns it: a second process with this node's id is refused with
// ErrNodeIDTaken and leaves the first one's znodes alone.
//
// Registry.Close deletes everything at once and needs no deadline: when
// the session is disconnected (or becomes so) it gives up the deletes,
// returns an error wrapping ErrNotConnected, and leaves the znodes to the
// session's end (at once on Session.Close if a server hears it, else at
// expiry).
//
// # The cache
//
// GetCapable, Lookup and GetPeers read a local cache (internal/watchcache,
// shared with package global). The first lookup of a name reads its
// children with a watch, then their data; the watch firing sweeps the
// name, and the next lookup reads the children again but only the data of
// those that joined: a join costs a watching node two reads and a leave
// one, whatever the size of the service. (The directory's children version
// proves that the names seen are all that changed; otherwise everything is
// read again.) Registrations are immutable in ZooKeeper (a metadata change
// is a delete and a create); data another client sets in place is not
// watched, and is read only when the name is read in full again. A hit is a
// read of memory (no ZooKeeper request, no actor
// message, no lock held by a writer). A session expiry sweeps everything.
// While disconnected, cached entries are still served: they are as fresh
// as the last watch the servers could deliver.
//
// No goroutine waits per entry: the session's watch events
// (Session.OnWatchEvent) are mapped back to names. Entries no lookup used
// for Options.CacheIdleAfter (two minutes) are dropped, and at most 1024
// names nobody registered are kept; a dropped entry's watch stays on the
// server until it fires (ZooKeeper 3.8's removeWatches is not in
// go-zookeeper), then finds nothing to sweep.
//
//	lookup miss ── children (watched) + data ──► cached ── hit: memory only
//	cached ── watch fires ──► swept (kept as the base) ── lookup ──► children + joined ──► cached
//	cached or swept ── unused for CacheIdleAfter ──► dropped
package cluster
