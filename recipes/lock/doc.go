// Package lock is a mutex on ZooKeeper, for zkactor clusters: one holder at
// a time across every process that shares the ensemble, a fencing token per
// tenure, and a holder that is told when it can no longer count on the lock.
//
// A Mutex borrows a cluster.Session (as package global does) and manages no
// connection of its own.
//
// # Znode layout
//
// Waiters queue under <root>/locks/<name> (a container znode: ZooKeeper
// deletes it once empty) as ephemeral sequential znodes, one per Lock or
// TryLock call. All data is protobuf (proto/recipes/lock/v1).
//
//	<root>/locks                           persistent
//	└── <name>                             container
//	    ├── _c_<guid>-l-0000000007         ephemeral sequential   Waiter{name, node_id, holder, since}  ← holds
//	    ├── _c_<guid>-l-0000000008         ephemeral sequential   watches 7
//	    └── _c_<guid>-l-0000000009         ephemeral sequential   watches 8
//
// The lowest sequence holds the lock. Each waiter watches only its
// predecessor, so an unlock wakes one waiter (measured: one watch event
// among 20 waiters, and one request by the waiter that takes over), not the
// herd that watching the directory would wake. The GUID (32 hex digits) is
// the call's: after a connection lost during the create, the call finds its
// own znode instead of queueing twice, and a create whose caller gave up is
// found and deleted once the session is back (or goes with the session).
//
// A child takes part if its name has that shape and it is ephemeral: a live
// session stands behind it. Names of any other shape, and persistent znodes
// of that shape, are passed over and left alone; the data is never read, so
// garbage data cannot break the lock.
//
// # The life of a tenure
//
//	Lock ─► waiter znode created, own znode watched ─► predecessor watched ─► it goes ─► …
//	     ─► no live predecessor and the session's lease holds ─► *Held (Token = the znode's czxid)
//	Lock ─► ctx ends while waiting ─► znode deleted, ctx's error (the next waiter is not blocked)
//	Lock ─► session expires while waiting ─► queued again, at the back, on the new session
//	TryLock ─► a live predecessor ─► znode deleted, ErrLocked
//	held ─► Unlock ─► znode deleted ─► the next waiter holds
//	held ─► the lease runs out (partition, pause, slow replies) ─► Lost closed ─► znode handed to the session to delete
//	held ─► session expired or closed ─► Lost closed
//	held ─► znode deleted by someone else ─► Lost closed
//
// # One holder at a time: the lease
//
// A holder cut off from ZooKeeper cannot learn in time that its session has
// expired and that another process holds the lock. So a tenure ends, and
// Lost is closed, when the session's lease runs out: the moment until which
// the quorum leader certainly counts the session alive, on this process's
// monotonic clock (cluster.Session.SafeUntilFor, held fresh with
// Session.HoldLease from Lock until the tenure ends; package global's
// documentation gives the argument and its assumptions). The servers expire
// the session no earlier than that, and only then can the next waiter
// hold: measured with 1 s sessions, a blackholed holder's Lost closed about
// 0.87 s after the cut and the next waiter took the lock about 0.26 s later.
// Lock returns only while the lease holds, for the same reason.
//
// Lost is a channel, closed by a goroutine: after a freeze it may close a
// moment after the holder's own code has woken. Held.Err reads the lease
// itself, so a holder checks Err right before each action, as a global's
// guard checks the lease before each message; the fault checker's lockers
// (test/chaos) do exactly that.
//
// The lease costs a probe (a no-op write) every sixth of the session
// timeout while any Lock waits or any tenure lasts on the session. On a
// session that has held no lease for a while, the lease must be proven
// again before a Lock can return: two probes a third of the session timeout
// apart (measured: a first Lock after 5 s idle took 1.4 s with 4 s
// sessions, 40 ms otherwise). A process that locks often and wants no such
// wait keeps the lease fresh itself with cluster.Session.HoldLease.
//
// What no lease covers is the token's job: a holder paused between its
// check of Err and its action, or a request in flight when the lock is
// lost. A resource guarded by the lock should remember the highest token it
// has seen and refuse lower ones; tokens only grow, because tenures follow
// queue order, which is creation order. For ZooKeeper itself, Held.Path
// names the tenure's znode: a multi that checks it (any version) with the
// write fails once the tenure is over there.
//
// # Actors
//
// Held.Follow ties a tenure to an actor: the actor receives a
// *lockv1.LockLost if the lock is lost, and the lock is released when the
// actor stops. An actor should not block in Receive on Lock: call it from a
// goroutine (or ReenterAfter) and hand the *Held to the actor.
//
// # Errors
//
// ErrLocked (TryLock) and ErrLost (Held.Err) are for decisions; everything
// else is wrapped with the lock's name, the operation and the path. A bad
// name or root wraps cluster.ErrBadName. An ACL that refuses this session
// the create or the listing (zk.ErrNoAuth: another identity's directory)
// ends Lock and TryLock with that error, leaving nothing behind; retrying
// would not cure it. A waiter znode this session may not read (a foreign
// client's) is still a waiter: exists tells whether a session stands
// behind it, and since servers deliver no watch event on it, a Lock
// behind it looks again after each backoff.
package lock
