// Package chaos is zkactor's randomized fault checker: it runs a real
// ZooKeeper ensemble and real node processes, injects faults chosen from a
// seed, records what every node saw on one clock, and checks invariants
// over the whole history. Hand-written fault tests find the faults their
// author imagined; this finds the others.
//
//	go test ./test/chaos/                          # the smoke CI runs: one trial of a few classes
//	make chaos                                     # every class, 100 trials each, and the table
//	go test ./test/chaos/ -run TestChaos -v -seed=7 -classes=pause,kill -trials=20 -args -v
//
// Flags: -seed (every random choice derives from it), -trials (per class),
// -classes (comma-separated, or "all"), -nodes, -session-timeout,
// -stop-each-class, -grains (default true: every node process also runs a
// protoactor cluster member on package provider, see grains.go), -roles
// (default true: every node process applies for the roles of a role set,
// package recipes/rolematch, see roles.go), -locks (default true: every
// node process runs a locker, package recipes/lock, see locks.go), -queue
// (default true: every node process takes from a work queue, package
// recipes/workqueue, and the workload puts, see queue.go), -subscriptions
// (default true: every node process subscribes to the services, package
// recipes/subscription, see subscriptions.go), -barrier (default true:
// the driver runs rounds of a double barrier over the node processes,
// package recipes/barrier, see barrier.go), -config (default true: every
// node process subscribes to a service's config and writes it, package
// recipes/config, see config.go), and -v (after -args: log every event).
//
// # Design
//
// The driver (TestChaos, in the test process) starts a 3-server ensemble
// with test/zktest (with quorum proxies, so a follower can be cut off its
// ensemble) and one zktest.Proxy per (node, server) pair, so that a
// network fault can hit one node and not the others. Node processes are
// the test binary re-executed with ZKACTOR_CHAOS_CHILD set (RunChild): one
// actor.Node per process, as -race requires (see test/isolate_test.go).
// Each node has a worker, registered under "worker"; it stands for the
// globals "boss", g0, g1 and g2; and it registers and stops service actors
// as the driver tells it.
//
// The run is a sequence of trials, grouped by fault class. A trial runs a
// random workload (spawn/register/unregister/stop service actors,
// RegisterCandidate/Resign, submit jobs, lookups) on random live nodes,
// injects one fault of its class and holds it (a kill, a freeze past the
// session timeout, a blackhole, a ZooKeeper server killed, a foreign
// client's delete, ...), heals it, stops the workload, and checks every
// invariant. The ensemble and the nodes are reused from trial to trial; a
// killed node's slot gets a new node. A trial's randomness derives from
// (seed, class, trial index), so "-seed S -classes C -trials N" replays
// the first N trials of class C of any run with seed S (as far as timing
// lets a real system be replayed).
//
// The jobs are cmd/boss's at-least-once flow in miniature: the boss
// records a job in <root>/jobs before it acknowledges it, delegates it
// round-robin with its epoch, delegates it again when no Done came within
// 2 s, and a new boss starts from the store. A worker refuses a boss older
// than one it served. The boss is written as a global should be
// (global/doc.go): it never blocks in Receive (ZooKeeper requests run on
// goroutines and come back through ReenterAfter, so no handler outlives
// the lease), and every write to the job store (create, delete) is a multi
// with a check of the term's candidate znode (Elected.Candidate), so a
// stale boss's write fails once its term is over in ZooKeeper: an Accepted
// job is in the store, written under a live term. Work is sent only from
// the tick handler, which the lease guard admits (a continuation is a
// system message the guard does not see).
//
// # The clock
//
// Every timestamp is a reading of CLOCK_MONOTONIC (Now), which all the
// processes of the machine share: a node's "global started" and another's
// "global stopped" can be compared. time.Now's monotonic reading cannot;
// each Go process counts it from its own start.
//
// # The line protocol
//
// The driver writes commands to a node's stdin, one per line:
//
//	<seq> <verb> <args...>
//
//	worker                       spawn this node's worker and register it under "worker"
//	spawn <service> <id>         spawn a service actor and Register it (stopped again if that fails)
//	register <service> <id>      Register a running actor again
//	unregister <service> <id>    Unregister
//	stop <id>                    stop the actor (its registrations must go)
//	cand <name>                  RegisterCandidate
//	resign <name>                Elections().Resign
//	capable <service>            GetCapable
//	submit <text>                WhereisGlobal("boss"), then Submit; Accepted is "acknowledged"
//	grain <identity>             cluster.Request to the counter grain <identity>: "<member id> <epoch>"
//	put <key>                    Put an item with that key on the work queue "chaos": its id
//	subset <service>             the PIDs the node's subscription to <service> holds
//	bround <r> <k>               take part (the k-th time) in round r of the barrier: enter, stay 50–150 ms, leave
//	bcancel <r> <k>              that participation gives up (its Enter or Leave returns ctx's error)
//	cset | cover                 write the config record / this process's override, compare-and-set at the version held
//	cheld                        what the node's config subscriber holds: "<revision> <rec version> <rec id> <ovr version> <ovr id>"
//
// Commands run concurrently, each bounded by 4 s. Closing stdin stops the
// node (Node.Stop) and the process exits. A node writes events to stdout,
// one per line, "<T> <kind> <args...>", T its CLOCK_MONOTONIC reading in
// ns, in time order:
//
//	ready <address> <node-id> <session>      joined the cluster
//	session <kind> <session> <new>           a cluster.Event (connected, disconnected, expired, paused)
//	ans <seq> ok|err <result or error>       a command's answer
//	reg|regfail <service> <pid> [error]      Register returned (nil or an error)
//	unreg|unregfail <service> <pid> [error]  Unregister returned
//	stopped <pid>                            a service actor has stopped
//	cand|resign <name> ok|err [error]        RegisterCandidate / Resign returned
//	capable <service> ok|err <pids|error>    a lookup's result
//	gstart <name> <epoch> <pid> <candidate>  the global handled Elected: its term began (candidate: its znode)
//	gtick <name> <epoch> <began>             it handled a tick (every 100 ms); began: when the handler started
//	gstop <name> <epoch>                     it handled Stopping: its term ended
//	gbad <name> <epoch> <what>               a message before Elected, or a second Elected
//	jobstored <job> <epoch> <began>          the boss recorded a job (fenced); began: its Submit handler's start
//	jobacc|jobrej <job> ...                  the requestor was told Accepted / not
//	jobdeleg <job> <epoch> <worker> <began>  the boss delegated a job
//	jobdo|jobrefuse <job> <epoch> <worker>   a worker did a job, or refused an older boss
//	bosslist|bosserr <epoch> ...             a new boss read the job store (or could not)
//	astart <kind/id> <epoch> <pid> <member>  a grain activation started (its Started)
//	amsg <kind/id> <epoch> <began>           it began handling a request
//	astop <kind/id> <epoch>                  it handled Stopping: the activation ended
//	rstart role/<r> <epoch> <pid> <set>      a role's holder handled Assigned: its holding began
//	rtick role/<r> <epoch> <began>           it handled a tick (every 100 ms)
//	rstop role/<r> <epoch>                   it handled Stopping: the holding ended
//	lstart lock/chaos <token> <path> <node>  the locker's Lock returned
//	ltick lock/chaos <token> <began>         it acted (Held.Err was nil at began)
//	lstop lock/chaos <token>                 it stopped acting (it unlocks, or Err reported the loss)
//	qput <key> ok <id> | err <error>         a put returned
//	qtake <key> <id> <attempt>               the taker took an item
//	qack <key> <id>                          its Ack returned nil: the item is done
//	sbad <service> <what>                    a subscriber saw a broken stream (a gap, a join it held, a leave it did not)
//	barrive|bin|bleaving|bout chaos-<r> <k>  it calls Enter, Enter returned, it calls Leave, Leave returned
//	bfail chaos-<r> <k> <error>              Enter or Leave failed (told to give up, or the node stops), or it was busy
//	cwrite rec|ovr <id> <expected>           it is about to write a config part
//	cset|cover <id> ok <v> | conflict <cur> | err <error>   the write returned
//	cgot <revision> <rec...> <ovr...> <merged> <error>      its config subscriber received a Config
//	bye | stopfail <error>                   Node.Stop returned
//
// The driver adds its own events to the history (source "driver"): run,
// start, trial, fault, note, paused, resumed, killed, healed, trialend,
// bround/bjoin/bcancel/bdone (the barrier's rounds), and dead <label> (with the
// time the node died: the SIGKILL, or its exit).
//
// # Terms and the frozen process
//
// A term of a global is the interval from its gstart to its gstop, or to
// its node's death. A process frozen with SIGSTOP does nothing, and the
// library promises that after the thaw its global stops before handling
// another message; so a term whose process was frozen ends at the freeze,
// unless the global began handling a message after the thaw (a gtick or
// jobdeleg whose "began" is later), in which case it runs until its gstop.
//
// # Invariants (issue 8)
//
//  1. one-global: never two terms of one name at once (a foreign delete of
//     the leader's znode may overlap by the notification latency, 500 ms).
//  2. live-global: within session timeout + 1 s of the heal, exactly one
//     term per name that has a live, acknowledged candidate; none for a
//     name that has none.
//  3. epochs: epochs strictly increase from term to term; the same epoch
//     again only as the same term resumed after a lease lapse: the same
//     candidate znode (nobody else can have led meanwhile); one candidate
//     znode never has two epochs; Elected names the candidate znode and
//     comes first.
//  4. capable: within session timeout + 3 s of the heal, every live node's
//     GetCapable equals the PIDs whose registration was acknowledged and
//     not removed, on live nodes. Registrations in doubt (an operation in
//     flight, a failed Register) may be there or not. A problem that
//     persists over trials (a PID missing for good) counts once.
//  5. no-ephemerals: once every node has stopped, nothing ephemeral is
//     left under the root (after killed nodes' sessions have expired).
//  6. jobs: every acknowledged job is done at least once; no worker does a
//     job for a boss older than one it served.
//
// And for the grains (issue 10), when -grains is on:
//
//  7. one-activation: never two activations of one identity at once: (1)
//     over the activations' terms (astart to astop, or death, or a freeze
//     after which the grain handled nothing), with no allowance.
//  8. live-activation: within session timeout + 5 s of the heal, a request
//     for every identity succeeds from every live node, and the nodes of one
//     round of requests all reach the same activation (member and epoch).
//
// And for role match (issue 11), when -roles is on (roles r0..r3, each node
// applying for two):
//
//  9. one-holder: never two holders of one role at once: (1) over the
//     holdings (rstart to rstop, death, or a freeze after which the holder
//     handled nothing), with a foreign delete's allowance.
//  10. live-role: within session timeout + 3 s of the heal, every role is
//     held by exactly one holder on a live node, as long as the live nodes
//     have room for all of them.
//
// And for the lock (issue 11), when -locks is on (every node's locker takes
// the lock "chaos", acts every 50 ms while Held.Err is nil, and unlocks
// after 100–400 ms):
//
//  11. one-lock-holder: never two tenures of the lock at once: (1) over the
//     tenures (lstart to lstop, death, or a freeze after which the locker
//     did not act).
//  12. live-lock: within session timeout + 3 s of the heal, a live node
//     holds the lock (a tenure running, or one begun since the heal).
//
// And for the work queue (issue 11), when -queue is on:
//
//  13. queue-delivery: within session timeout + 5 s of the heal, every item
//     whose Put returned nil has been acknowledged by some taker (at least
//     once: an item whose taker died comes back with its claim).
//
// And for subscriptions (issue 11), when -subscriptions is on:
//
//  14. subscription: no subscriber ever sees a broken stream; and within
//     session timeout + 3 s of the heal every live node's subscribed set
//     is what GetCapable must return (capable's rule).
//
// And for the double barrier (issue 11), when -barrier is on (rounds of
// size -nodes, one barrier name per round, driven by the driver; while
// nobody is inside, a participant still entering gets the company of live
// nodes that take no part at the moment, or, if others of its round have
// entered and left, is told to give up, see barrier.go):
//
//  15. barrier-enter: no participant returns from Enter of round r before
//     size participants of r were there at once (arrived, not out or
//     failed, and a killed one counted until its session can have
//     expired).
//  16. barrier-leave: no participant returns from Leave of round r while
//     another participant of r that had entered before, and whose session
//     has not ended, has not called Leave.
//  17. live-barrier: within session timeout + 5 s of the heal, a round
//     begun after the heal completes.
//  18. barrier-leftovers: a finished round leaves no participant znode,
//     and its ready znode only if a participant did not finish Leave or
//     its session ended while it took part.
//
// And for the distributed config (issue 11), when -config is on:
//
//  19. config-stream: each subscription's revisions strictly grow, and
//     every config received is the merge (computed by the checker) of a
//     record and an override of its own process that were written.
//  20. config-writes: one version of a config znode is one write, and no
//     acknowledged compare-and-set write is lost.
//  21. live-config: within session timeout + 5 s of the heal, every live
//     subscriber holds the current record and its current override.
//
// no-ephemerals covers the members', the roles', the lock's, the claims'
// and the barriers' participant znodes too.
//
// And after every trial, leftovers: within session timeout + 3 s of the
// heal, no running node's session owns a registration it unregistered (or
// of an actor it stopped), a candidate znode of a name it resigned, or two
// candidate znodes for one candidacy.
//
// And processes: no node exits unless told to, and no data race is
// reported in zkactor's code (protoactor-go's own are logged, not charged).
//
// # Adding an invariant or a fault class
//
// An invariant implements Invariant: Check(tr) returns the violations it
// finds after a trial, built with tr.Violation (which cuts the history
// excerpt) and given a Key so a later trial does not report them again.
// It reads the derived state (Run.withState: registrations, candidacies,
// jobs, the timeline of terms) or keeps its own by scanning Run.events.
// If it must wait for the cluster to settle, it also implements Settling
// and waits with tr.Await until a deadline counted from tr.HealedAt(); if
// it has something to check with every node stopped, it implements
// StoppedInvariant. Add it to DefaultInvariants. A capability with new
// events (cluster provider activations, roles, locks) adds its verbs to
// child.go, its event kinds to state.apply, and its workload to workOnce.
//
// A fault class implements FaultClass (the fault type makes one from a
// function): Inject picks its victim with tr.Rand, records the fault with
// tr.Fault, holds it with tr.Hold and returns the heal. Available says why
// it cannot run on this harness (the class is then listed as skipped). Add
// it to DefaultFaultClasses.
package chaos
