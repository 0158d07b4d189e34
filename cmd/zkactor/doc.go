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
// # What it reads
//
// Everything under the root, as the packages that write it lay it out
// (each package's documentation draws its part):
//
//	<root>/nodes/<node-id>                     package cluster; a provider member's record lists its kinds
//	<root>/services/<name>/<registration>      package cluster
//	<root>/globals/<name>/_c_<guid>-c-<seq>    package global
//	<root>/activations/<kind>/<identity>       package provider
//	<root>/queues/<name>/{items,claims,keys,waiters}   recipes/workqueue; cmd/boss's jobs are the queue "jobs"
//	<root>/roles/<set>/{specs,assignments,applicants}   recipes/rolematch
//	<root>/locks/<name>/_c_<guid>-l-<seq>      recipes/lock
//	<root>/barriers/<name>/{ready,_c_<guid>-p-<seq>}    recipes/barrier
//	<root>/config/<service>/overrides/<process>         recipes/config
//
// The recipes' own readers (rolematch's Holders and Applicants, global's
// Queue) need a node of their own, which this command does not start: it
// reads the znodes and decodes their records by the same rules.
//
// # inspect
//
// inspect prints:
//   - the nodes (id, address, started, session, and the kinds a provider
//     member hosts);
//   - the services with their members (PID, node, registered, metadata);
//   - the globals with their leader (PID, node, epoch) and queue (position,
//     sequence, node, PID, session). A global's queue follows the election's
//     rule (global/queue.go): only ephemeral znodes with a candidate's name
//     take part; the leader is the head of the queue, as WhereisGlobal
//     reports it, and the epoch is the head's creation zxid;
//   - cmd/boss's jobs: the items of the work queue "jobs" whose key is
//     job-<token> and whose payload a boss.v1.Job (id, submitted, attempts,
//     the claim that holds it, an excerpt of the text);
//   - the activations of each kind (identity, PID, member, activated, epoch:
//     the znode's creation zxid, session);
//   - the work queues, items oldest first (id, producer, put, attempts,
//     payload bytes, and the claim that holds it: taker and session), and
//     how many Takes wait in the queue's line (waiters/);
//   - the role sets: each role posted or held (spec, holder PID, node,
//     application, epoch: the assignment's creation zxid, session), and the
//     applications (limit, roles held, room = limit − held, session);
//   - the locks: the live waiters in queue order (only ephemeral znodes with a
//     waiter's name queue); the first holds the lock, with the token of its
//     znode's creation zxid, the others wait;
//   - the barriers: ready (size, the last sequence it admits) and the live
//     participants, each admitted or not;
//   - the configs: each service's record and its overrides, with their
//     versions (the ones compare-and-set writes name) and values (JSON).
//
// It reads one znode at a time, not as one snapshot. Znodes whose data is
// not the record their place calls for are skipped, as the packages skip
// them, and listed at the end as unreadable; where the package still counts
// such a znode (a lock waiter, a barrier participant, a global's candidate,
// a role's assignment, a claim), it is shown with the error.
//
// With -json it prints one JSON document. Its field names are stable:
//
//	{
//	  "root": "/zkactor", "servers": ["127.0.0.1:2181"], "read_at": RFC 3339,
//	  "nodes":    [{"id", "address", "started_at", "session", "kinds": [kind, ...]}],
//	  "services": [{"name", "members": [{"znode", "pid": {"address", "id"},
//	                "node_id", "node_address", "metadata": {k: v}, "registered_at", "session"}]}],
//	  "globals":  [{"name", "leader": candidate or null, "epoch",
//	                "queue": [candidate, ...]}],
//	  "jobs":     [{"id", "text", "submitted_at", "item", "key", "attempts",
//	                "producer", "put_at", "claim": claim or null}],
//	  "unreadable": [{"path", "error"}],
//	  "activations": [{"kind", "activations": [{"identity", "pid": {"address", "id"},
//	                "member_id", "activated_at", "epoch", "session"}]}],
//	  "queues":   [{"name", "held", "waiting", "items": [{"id", "key", "sequence", "producer",
//	                "put_at", "attempts", "payload_size", "claim": claim or null}]}],
//	  "roles":    [{"set", "roles": [{"name", "posted", "posted_at", "spec", "spec_size",
//	                "holder": {"pid" or null, "node_id", "applicant", "since", "epoch",
//	                           "session", "error"} or null}],
//	                "applicants": [{"id", "node_id", "limit", "held", "room", "since", "session"}]}],
//	  "locks":    [{"name", "holder": waiter or null, "token", "queue": [waiter, ...]}],
//	  "barriers": [{"name", "ready": {"size", "last_sequence", "since", "error"} or null,
//	                "participants": [{"position", "znode", "sequence", "node_id", "since",
//	                                  "session", "admitted", "error"}]}],
//	  "configs":  [{"service", "version", "modified_at", "values": {...} or null, "error",
//	                "overrides": [{"process", "version", "modified_at", "values", "error"}]}]
//	}
//	candidate: {"position", "znode", "sequence", "pid": {"address", "id"} or null,
//	            "node_id", "node_address", "since", "epoch", "session", "error"}
//	claim:     {"taker", "taken_at", "session", "error"}
//	waiter:    {"position", "znode", "sequence", "pid": {"address", "id"} or null,
//	            "node_id", "since", "token", "session", "error"}
//
// Lists are never null. Times are RFC 3339 in UTC and left out when the
// record has none. "session" is the owner's ZooKeeper session id, a hex string
// ("0x0100000a1b2c0003"), because it does not fit a JSON number exactly; "epoch"
// and "token" are numbers (zxids: exact in parsers with 64-bit integers, and in
// float64 ones while ZooKeeper's epoch is below 2^21). A global's "leader" is its
// queue's head when that is a readable Candidate, else null (and the head's
// "error" says why); its "epoch" is the head's, 0 with an empty queue. A job's
// "id" is its key, job-<token>, and "submitted_at" its item's "put_at"; its
// "text" is the whole text (the text output shows an excerpt). A lock's
// "holder" is the head of its queue, whatever its data, and "token" its
// creation zxid (0 when free); a waiter's "pid" is the actor the lock is taken
// for, null when none was named. A role's "spec" is "" (no spec), "bytes", or
// the type URL of its message; "posted" is false for an assignment whose spec
// is gone. A config's "values" is the record's JSON object; "version" is the
// znode's data version.
//
// With -watch it prints again whenever something under the root changes (it leaves
// a data and a children watch on every znode it reads) and the report differs from
// the last one printed, until SIGINT, SIGTERM or -for elapses. With -json -watch
// each report is one line (JSON Lines).
//
// # doctor
//
// doctor prints what looks wrong, one finding per line, "<kind> <path>: <problem>"
// (or {"findings": [{"kind", "path", "problem"}]} with -json), and exits with
// status 1 if there is any. The kinds:
//
//   - garbage: a znode that is not what its place in the layout calls for:
//     a name of the wrong shape (a registration is <node-id>-<16 hex>, a candidate
//     _c_<32 hex>-c-<10 digits>, a lock waiter _c_<32 hex>-l-<10 digits>,
//     a barrier participant _c_<32 hex>-p-<10 digits>, an item, a claim or a
//     queue's waiter <key>-<10 digits>; services, globals, kinds, identities, queues, sets,
//     roles, locks, barriers, config services and processes names that
//     cluster.ValidateName accepts), data that does not decode (internal/records,
//     the recipes' records, boss.v1.Job for the queue "jobs"), a record that
//     names another node, service, global, lock, barrier, role or application
//     than its place, a persistent znode where an ephemeral belongs (a node,
//     a registration, a candidate, an activation, a claim, an assignment, an
//     application, a lock or queue waiter, a barrier participant: a persistent
//     waiter, participant or candidate takes no part (a queue's would stay in
//     its line for good, and once first, no waiting Take would watch the items), a persistent claim or assignment
//     holds its item or role forever) or the reverse (an item, a key, a spec,
//     ready, a config record or override that goes with a session), data
//     where zkactor stores none, children under a record, anything in a queue,
//     role set or service config besides its parts, cmd/boss's old job store
//     <root>/jobs (it keeps its jobs in the queue "jobs" now: those left there
//     are done by nobody), and anything else under the root.
//   - inconsistent: records that contradict each other: a claim without its
//     item, an item without its key znode (a Put of the key would queue it
//     again) or a key without an item, an assignment whose role has no spec
//     (removed: its applicant lets go once it hears), an application holding
//     more roles than its limit. The tree is read one znode at a time, so
//     each is confirmed by reading the missing part, then the znode, again:
//     reported only if the znode is still the same (same creation zxid) and its
//     counterpart still missing, or with "(not confirmed: ...)" if that read
//     failed.
//   - stale-session: an ephemeral (node, registration, candidate, activation,
//     claim, assignment, application, lock or queue waiter, barrier participant) whose
//     session is connected to none of the servers given with -zk, according to
//     their "cons" reply; only reported when every server answered cons. Its owner
//     is gone, or between connections; the znode goes when the session expires.
//     List every server of the ensemble in -zk, or a session connected to one
//     left out looks gone.
//   - foreign-session: a registration, candidate, activation, assignment or
//     application whose session owns no znode under <root>/nodes: another
//     client's, not a zkactor node's (a provider member's, for an activation).
//     The problem says whether cons shows it connected. Claims, lock and queue
//     waiters and barrier participants may be any session's: only stale-session
//     applies.
//   - no-leader: a global whose queue has live candidates while its head is not
//     a readable Candidate record: WhereisGlobal names no global until the head
//     goes.
//   - acl: a znode below the root whose ACL differs from its parent's
//     (zkactor creates all of a cluster's znodes with its session's one ACL),
//     a world-writable ACL beside a digest one, or an ACL doctor may not read.
//     The root is not compared with its parent.
//   - duplicate-address: two or more nodes of different sessions with the same
//     actor address (a provider member and its singletons' node,
//     <id>-singletons, share one session and address).
//
// ZooKeeper shows a container znode to clients as persistent, so doctor
// cannot tell the two apart. zkactor's digest ACLs (cluster.DigestAuth) leave
// the world read access, so neither command needs credentials.
package main
