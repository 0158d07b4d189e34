// Package zkwatch is a small ZooKeeper client of zkactor's own, for the
// one thing go-zookeeper v1.0.4 cannot do: persistent recursive watches
// (addWatch, ZooKeeper 3.6+), with every reply and every watch event
// handed over in the order it arrived on the wire.
//
// A Conn holds one connection to one server of the ensemble, with a fresh
// session per connection (it owns no ephemerals, so nothing is lost with a
// session). It speaks only what a watcher needs: the handshake, pings,
// digest auth, getChildren2, getData, exists, addWatch, removeWatches and
// closeSession. Requests are pipelined; the user sends them with the generation of the
// connection it knows of, and takes what came back, in order, as Items:
//
//	Connected(gen) ── Reply / Event … ── Gap(gen) ── Connected(gen+1) ── …
//
// After a Gap no reply to a request of that generation will come, and
// the watches it set are gone: the user sets them again on the next
// Connected and lists what it follows again. Requests sent with a
// generation that is not the live one fail with ErrStale.
//
// A lost connection is followed at once by a connection to the next
// server, when it had lasted a second or more; one that ended sooner
// (a server that drops it, or sends what does not decode) counts as a
// failed attempt, and after a round of failed attempts the Conn waits,
// 50 ms doubling up to a second, so that it never loops as fast as a
// broken server answers.
//
// The wire order is the point: ZooKeeper sends a watch event before any
// reply that reflects its change, so an event that arrives before a
// listing's reply is in the listing, and one that arrives after it is
// not.
package zkwatch
