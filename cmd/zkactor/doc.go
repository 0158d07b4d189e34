// Command zkactor inspects a zkactor cluster in ZooKeeper. It only reads:
// it never creates, changes or deletes a znode, and it holds no ephemeral.
//
//	zkactor inspect [-json] [-watch [-for DURATION]] [flags]
//	zkactor doctor [-json] [flags]
//
// Both take -zk host:port[,host:port...] (env ZK_SERVERS, default
// localhost:2181), -root PATH (env ZKACTOR_ROOT, default /zkactor), -timeout
// (default 5s: how long to wait for a session, and for each server's cons
// reply) and -v (go-zookeeper's log on stderr). Exit status 2 when the
// command cannot do its job: bad flags, no server answered within -timeout,
// the root does not exist, a read failed.
//
// # inspect
//
// inspect reads everything under the root (see the layout in package
// cluster and the README) and prints the nodes (id, address, started,
// session), the services with their members (PID, node, registered,
// metadata), the globals with their leader (PID, node, epoch) and queue
// (position, sequence, node, PID, session), and cmd/boss's jobs (id,
// submitted, an excerpt of the text). It reads one znode at a time, not
// as one snapshot. A global's queue follows the election's rule
// (global/queue.go): only ephemeral znodes with a candidate's name take
// part; the leader is the head of the queue, as WhereisGlobal reports it,
// and the epoch is the head's creation zxid. Znodes whose data is not the
// record their place calls for are listed at the end as unreadable.
//
// With -json it prints one JSON document. Its field names are stable:
//
//	{
//	  "root": "/zkactor", "servers": ["127.0.0.1:2181"], "read_at": RFC 3339,
//	  "nodes":    [{"id", "address", "started_at", "session"}],
//	  "services": [{"name", "members": [{"znode", "pid": {"address", "id"},
//	                "node_id", "node_address", "metadata": {k: v}, "registered_at", "session"}]}],
//	  "globals":  [{"name", "leader": candidate or null, "epoch",
//	                "queue": [candidate, ...]}],
//	  "jobs":     [{"id", "text", "submitted_at"}],
//	  "unreadable": [{"path", "error"}]
//	}
//	candidate: {"position", "znode", "sequence", "pid": {"address", "id"} or null,
//	            "node_id", "node_address", "since", "epoch", "session", "error"}
//
// Lists are never null. Times are RFC 3339 in UTC and left out when the
// record has none. "session" is the owner's ZooKeeper session id, a hex
// string ("0x0100000a1b2c0003"), because it does not fit a JSON number
// exactly; "epoch" is a number (a zxid: exact in parsers with 64-bit
// integers, and in float64 ones while ZooKeeper's epoch is below 2^21). A
// global's "leader" is its queue's head when that is a readable Candidate,
// else null (and the head's "error" says why); its "epoch" is the head's,
// 0 with an empty queue. A job's "text" is the whole text (the text output
// shows an excerpt).
//
// With -watch it prints again whenever something under the root changes (it
// leaves a data and a children watch on every znode it reads) and the
// report differs from the last one printed, until SIGINT, SIGTERM or -for
// elapses. With -json -watch each report is one line (JSON Lines).
//
// # doctor
//
// doctor prints what looks wrong, one finding per line,
// "<kind> <path>: <problem>" (or {"findings": [{"kind", "path", "problem"}]}
// with -json), and exits with status 1 if there is any. The kinds:
//
//   - garbage: a znode that is not what its place in the layout calls for:
//     a name of the wrong shape (a registration is <node-id>-<16 hex>, a
//     candidate _c_<32 hex>-c-<10 digits>, a job job-<token>, a service or
//     global a name cluster.ValidateName accepts), data that does not decode
//     (internal/records, or boss.v1.Job), a record that names another node,
//     service or global than its place, a persistent znode where an ephemeral
//     belongs (a node, a registration, a candidate: a persistent candidate
//     takes no part in the election) or the reverse, children under a record,
//     and anything under the root besides nodes, services, globals and jobs.
//   - stale-session: an ephemeral (node, registration, candidate) whose
//     session is connected to none of the servers given with -zk, according
//     to their "cons" reply; only reported when every server answered cons.
//     Its owner is gone, or between connections; the znode goes when the
//     session expires. List every server of the ensemble in -zk, or a
//     session connected to one left out looks gone.
//   - foreign-session: a registration or candidate whose session owns no
//     znode under <root>/nodes: another client's, not a zkactor node's. The
//     problem says whether cons shows it connected.
//   - no-leader: a global whose queue has live candidates while its head is
//     not a readable Candidate record: WhereisGlobal names no global until
//     the head goes.
//   - acl: a znode below the root whose ACL differs from its parent's
//     (zkactor creates all of a cluster's znodes with its session's one
//     ACL), a world-writable ACL beside a digest one, or an ACL doctor may
//     not read. The root is not compared with its parent.
//   - duplicate-address: two or more nodes with the same actor address.
//
// zkactor's digest ACLs (cluster.DigestAuth) leave the world read access, so
// neither command needs credentials.
package main
