// Package workqueue is a durable work queue on ZooKeeper: producers Put
// items, takers Take them and Ack them when done. Delivery is at least once:
// an item a taker holds unacknowledged goes back to the queue when the
// taker's session ends (or it Releases it), and is taken again. Items are
// taken oldest first, so one producer's items, put one at a time, are taken
// in the order it put them.
//
// A Queue borrows a cluster.Session (an actor.Node's, say), as package
// global does; Feed turns it into messages for a consumer actor.
//
// # Znode layout
//
// All data is protobuf (proto/recipes/workqueue/v1).
//
//	<root>/queues/<name>                 persistent
//	├── items                            persistent
//	│   └── <key>-<seq>                  persistent sequential   Item{payload, producer, put_at, key, attempts}
//	├── claims                           persistent
//	│   └── <key>-<seq>                  ephemeral   Claim{taker, taken_at}: who holds the item
//	├── keys                             persistent
//	│   └── <key>                        persistent  (empty): the key is in use
//	└── waiters                          container
//	    └── <token>-<seq>                ephemeral sequential   Waiter{taker, since}: a Take waiting in line
//
// The sequence number ZooKeeper appends orders the queue, read as
// unsigned: it is a signed 32-bit counter that wraps after 2^31 creates
// and deletes under items/, and the items after the wrap
// ("<key>--2147483648" ...) are the newest. So a key may not end in '-'. The key is the
// producer's idempotency key (random when it gives none): Put creates the
// key's znode and the item in one multi, so a Put retried after a lost
// reply, or repeated by a producer that does not know whether its first
// attempt landed, meets the key and finds the item instead of queueing a
// second one, at the place the first attempt left it.
//
// A child of items/ whose name has not that shape, whose data is not an
// Item, or that this session may not read or take (another client's ACL),
// is skipped (logged once per handle), never fatal. items/, claims/ and
// keys/ are made again if someone deletes them.
//
// # The life of an item
//
//	Put ── multi{create keys/<key>, create items/<key>-<seq>} ──► queued
//	queued ── Take: multi{set items/<key>-<seq> (version v → v+1, attempts+1),
//	                      create claims/<key>-<seq> ephemeral} ──► held
//	held ── Ack: multi{delete item (version v+1), delete claim, delete key} ──► gone
//	held ── Release: multi{check item (version v+1), delete claim} ──► queued
//	held ── the taker's session ends (expiry, crash, Close) ──► claim gone ──► queued
//
// The claim is exclusive (one ephemeral znode per item), and the version the
// take leaves on the item is the take's own: only the Ack of that take
// matches it. An Ack after the taker's session ended still removes the item
// if nobody took it since; if someone did, it fails with ErrNotHeld (the
// item may be done twice: at least once). An Ack whose reply was lost is
// retried and finds the item gone: nil.
//
// # Waiting
//
// The Takes of one Queue handle run one at a time, so a process's waiting
// takers make one waiter, not one each. A Take first looks at items/ once,
// leaving no watch; if it finds nothing free it joins the line of waiters
// as ZooKeeper's lock recipe queues for a lock:
//
//	Take finds nothing ── create waiters/<token>-<seq> (ephemeral sequential) ──► in line
//	in line, first  ── list items/ and claims/ with watches ──► wait for them (a put, an Ack,
//	                   a Release, a claim gone with its session)
//	in line, behind ── data watch on the waiter before it ──► wait for that one to go
//	the first takes an item, its Take gives up (ctx, Close), its session ends
//	                ── its waiter znode goes ──► the next in line is first and looks at items/
//
// So a put wakes the first waiting handle of all processes, not all of
// them: one watch notification on items/, and one on its waiter znode for
// the next in line when it leaves, whatever the number waiting. (A handle
// that was first until it took an item keeps a watch on items/ that fires
// once more, at the next change, and the first in line also hears of
// claims made and items acknowledged: BenchmarkPutToWaiters counts about
// three notifications and eleven requests per Put, take and Ack with 8 or
// 32 handles waiting, where every waiting handle woke before.) Several
// items put at once are taken one waiter after another, a hand-over each. A waiter whose session ends goes with it; one cut off
// from ZooKeeper stays first until its session expires (or it reconnects
// and takes the item): items put meanwhile wait that long, at most a
// session timeout. A waiter znode deleted by someone else lets the next one
// move up; its Take queues up again when it next looks at the line (a
// first waiter does not look at the line: it goes on watching the items,
// beside the one that moved up, until its Take ends). A znode
// under waiters/ that no Take made (persistent, its data no Waiter, or
// unreadable) is passed over in the line and logged once: it would keep
// every waiter behind it from being first, and the items from being taken.
// A join whose outcome stays unknown (the create's reply lost, and the
// look for it failing too) leaves the deletion of what it may have made
// to a goroutine of the session's, which does it once ZooKeeper can be
// reached. A Take
// that finds a free item at its first look never joins the line, and a
// Take's cost is unchanged while the queue has items; a Take that waits
// pays one create, one listing of the line, one read (with a watch) per
// waiter that leaves before it, and one delete.
//
// # Actors
//
// Feed spawns a feeder for a consumer actor: it takes items for it and sends
// each as a *workqueuev1.Delivery; the consumer answers, when done, with
// *workqueuev1.Ack or *workqueuev1.Release to Delivery.feeder. The feeder
// watches the consumer: when the consumer stops, the feeder stops and gives
// back what it holds.
//
//	Feed ──► feeder: Take ──► Delivery to consumer ──► Ack/Release to feeder ──► next Take
//	consumer stops, Queue.Close, session closed ──► feeder stops ──► unanswered items released
//
// An answer the feeder cannot get to ZooKeeper is tried again while the
// session that holds the item lives: an item must not stay claimed by a
// live session that nobody answers for. For the same reason a take that
// gives up while its claim is in flight (its ctx ended) has the claim
// removed as soon as its outcome is known, if the take made it.
package workqueue
