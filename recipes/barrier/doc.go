// Package barrier is a double barrier on ZooKeeper, for zkactor clusters:
// Enter returns once a set number of participants have entered, Leave once
// all of them have left. It borrows a cluster.Session and manages no
// connection of its own.
//
// # Znode layout
//
// All data is protobuf (proto/recipes/barrier/v1).
//
//	<root>/barriers                        persistent
//	└── <name>                             container
//	    ├── ready                          persistent             Ready{size, since, last_sequence}
//	    ├── _c_<guid>-p-0000000004         ephemeral sequential   Participant{name, node_id, since}
//	    ├── _c_<guid>-p-0000000005         ephemeral sequential
//	    └── _c_<guid>-p-0000000006         ephemeral sequential
//
// The GUID (32 hex digits) is the participant's: after a connection lost
// during the create, Enter finds its own znode instead of arriving twice,
// and a create whose caller gave up is found and deleted once the session
// is back. Names of any other shape are passed over.
//
// # Entering
//
//	Enter ─► participant znode created ─► ready exists and admits it? ─► in
//	      ─► else count the live participants ─► at least size? ─► create (or renew) ready ─► in
//	      ─► else wait on ready's watch ─► ready created or changed ─► does it admit it? …
//
// A waiting participant watches ready only: an arrival wakes nobody, the
// opening wakes each waiter once. Ready admits the participants up to the
// highest sequence counted when it was created (last_sequence), so a ready
// znode left over from an earlier round, or one holding garbage, admits
// nobody new: the participant that completes the next count renews it.
// A participant that arrives late, while at least size participants are
// still inside, counts them and passes at once (renewing ready). A waiter
// woken by ready's creation reads it like any other: a ready that no
// participant wrote (garbage, an empty record) admits nobody.
//
// Only participant znodes with a session behind them count. A persistent
// znode of that shape never leaves: Enter passes it over as Leave does.
// The participant whose listing reaches size checks the others it has not
// checked yet (exists, sent together: one round trip) before it opens.
//
// A participant that dies before the count is reached (closed, killed, its
// session expired) takes its ephemeral znode along and does not count: the
// others wait for a live newcomer. One whose session expires while it waits
// arrives again on its new session, at the back, and counts once. If ctx
// ends, Enter deletes its znode.
//
// # Leaving
//
//	Leave ─► the participants are listed ─► none left ─► out
//	      ─► only this one ─► ready and this znode deleted in one multi ─► out
//	      ─► this one is the lowest ─► wait for the highest to go ─► list again
//	      ─► otherwise ─► delete this znode, wait for the lowest to go ─► list again
//
// This is the ZooKeeper recipe: a departure wakes at most the lowest, and
// the lowest's departure (always the last) wakes the others once. A
// participant whose session ended while inside is gone already: the others'
// Leave does not wait for it, and its own Leave waits only for them.
//
// A name can be used for round after round, provided a round has left
// before the next one enters: participants of two rounds under one name at
// once would wait for each other. Use a name per round (phase-1, phase-2,
// ...) when rounds may overlap.
//
// # Errors
//
// ErrEntered and ErrNotEntered report Enter and Leave called out of turn;
// everything else is wrapped with the barrier's name, the operation and the
// path. A bad name or root wraps cluster.ErrBadName. An ACL that refuses
// this session a request Enter needs (zk.ErrNoAuth: another identity's
// ready or directory) ends Enter with that error and takes its znode
// away; retrying would not cure it. A participant znode this session may
// not read (a foreign client's) cannot be watched, since servers deliver
// no event on it: Leave looks at it again after each backoff.
package barrier
