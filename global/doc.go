// Package global elects globally unique actors on ZooKeeper: one global
// process per name across the cluster, found from anywhere with
// WhereisGlobal.
//
// # The queue
//
// Candidates for a name queue under <root>/globals/<name> (a container
// znode) as ephemeral sequential znodes, one per candidacy:
//
//	<root>/globals/<name>                    container
//	├── _c_<guid>-c-0000000041               ephemeral sequential   Candidate{pid, node, ...}  ← leads
//	├── _c_<guid>-c-0000000042               ephemeral sequential   watches 41
//	└── _c_<guid>-c-0000000043               ephemeral sequential   watches 42
//
// The lowest sequence leads. Each candidate watches only its predecessor,
// so one leader's exit wakes one candidate, not the whole queue; the one
// woken reads the queue again (one listing) before it leads, because a
// client that names its own sequence number can put a znode ahead of it
// after any earlier reading. The GUID
// (32 hex digits) is the candidacy's: after a connection lost during a
// create, the candidacy finds its own znode instead of queueing twice, and
// any znode of a candidacy that has ended can be found and deleted.
//
// A child takes part in the election if its name has that shape and it is
// ephemeral: a live session stands behind it. Nothing else counts, because
// nothing else is fixed at the create: a rule that read the data would let a
// client that overwrites the leader's data make the next candidate lead
// beside it. So a persistent znode of that shape (a copy, a leftover) or a
// znode of any other name is passed over by candidates and by
// WhereisGlobal alike and left alone; an ephemeral one of another client is
// a candidate while its session lives, and if its data is not a Candidate
// record WhereisGlobal names no global while it heads the queue. Versions of
// zkactor that stand together must agree on the shape.
//
// The queue is also a resource to watch (PettingZoo's leader queue): the
// candidates behind the leader are the name's spare capacity. Queue lists
// them (position, node, PID, sequence, epoch, session), Place tells this
// node's candidacy where it stands, and ObserveQueue streams the queue's
// size. They count exactly what the election counts, by the same rule.
//
// # The life of a candidacy
//
//	RegisterCandidate ─► candidate znode created, queued (a stand-in holds the PID, buffering messages)
//	queued ─► no live predecessor ─► lease holds, znode confirmed ours and watched ─► term starts:
//	          props spawned under the PID, *zkactorv1.Elected{epoch} first, buffer delivered
//	term ─► the actor stops by itself, Resign, Close ─► znode deleted ─► the next candidate leads
//	term ─► the candidate znode deleted by someone else ─► actor stopped at once ─► entered again, at the back
//	term ─► lease ran out (partition, slow replies, pause) ─► actor stopped before it handles another
//	        message ─► queued; if the session survived and the znode still heads the queue, the
//	        term resumes with the same epoch (nobody else can have led in between)
//	any  ─► session expired ─► entered again, at the back, with a new znode
//
// A RegisterCandidate that returns nil leaves a live candidacy: one that
// meets a candidacy that is ending (Resign under way, or its global
// stopped by itself) starts a new one. A create whose reply was lost is
// cleaned up: the candidacy deletes its stray znodes. A candidacy that
// ends (Resign, Close) while its create is on the wire waits for the reply
// (as long as Close's ctx, or a request timeout, allows) and deletes what
// it made before it counts as finished; past that bound, or when ZooKeeper
// cannot be reached, the session itself keeps deleting them until they
// are gone or the session is, even after these Elections are closed.
//
// # Epochs
//
// A term's epoch is the creation zxid of its candidate znode. Terms of a
// name follow queue order, which is creation order, so epochs only grow:
// downstream resources can reject a deposed leader by its smaller epoch.
//
// # One at a time: the lease
//
// A leader stops its global before ZooKeeper could expire its session and
// elect another. The session's lease (cluster.Session.SafeUntilFor) is the
// moment until which the quorum leader itself certainly counts the session
// alive; the global's receiver middleware checks it before every message,
// and the candidacy on a timer. Bytes from a server prove nothing: a
// follower cut off from its quorum goes on answering pings for up to
// syncLimit × tickTime while the quorum leader expires its clients'
// sessions. The lease counts only events that prove that the quorum leader
// touched the session at or after a known moment t on this process's
// monotonic clock; the quorum leader expires a session no earlier than one
// session timeout T after its last touch, so the lease ends at
// t + T − T/10. It ends at once when the Session's Close begins: the
// servers delete a closed session's znodes as soon as they hear of it,
// and the next candidate may lead a round trip later.
//
//  1. A handshake. A connection dialed at d that gets a session: the quorum
//     leader created it (createSession is a transaction) or, for a
//     reconnect, revalidated and touched it (a follower asks the leader
//     before it accepts the reconnect). t = d.
//  2. Two probes on one connection. A probe is a multi holding one check of
//     "/" at any version: a write, so a follower forwards it to the quorum
//     leader, which checks the session is live and changes nothing. A
//     follower does not pass the touch on with the request: it collects the
//     sessions its clients touched and hands them to the leader in its
//     answer to the leader's next ping (sent every tick/2). So one confirmed
//     probe P1, sent at s1, shows only that the session was live when the
//     leader saw it. A second probe P2, sent at least T/3 after P1's reply
//     on the same connection and confirmed too, shows that the follower
//     kept following the same leader all along (a follower that loses it
//     closes its clients' connections), and that the leader's pings sent
//     between the two commits (at least one, as tick/2 ≤ T/4 < T/3, with
//     T/12 to spare at ZooKeeper's floor) reached it and were answered with
//     the touch recorded when P1 arrived (at or after s1), an answer that
//     travels in order with the requests it forwards. t = s1. Probes run
//     every T/6 while any candidacy exists, one at a time, each paired with
//     the latest earlier one far enough back; a probe that hangs (an
//     isolated follower) lets the lease run out by itself. An Expired event
//     voids the lease at once.
//
// The lease assumes that the clocks of this process and of the quorum
// leader run at the same rate (within the T/10 margin); that the ensemble's
// tickTime is at most T/2, which ZooKeeper enforces by clamping session
// timeouts to at least two ticks unless minSessionTimeout is set lower; and
// that a follower's answer to a ping is not held up on its link past the
// leader's processing of the next probe, the same kind of timing that
// ZooKeeper's own syncLimit assumes; and that a server that revalidates a
// session on reconnect still leads a quorum (a leader cut off from its
// quorum notices within syncLimit ticks; until then its revalidation is
// its own, so a handshake anchor can be up to that much too hopeful — a
// probe on the same connection hangs there, which ends the lease). The
// clock is CLOCK_MONOTONIC: it does not advance while the machine is
// suspended, so a suspended host or a VM whose clock is set back after a
// freeze is beyond the lease too. Measured: a leader behind a follower
// whose quorum links were blackholed (2 s sessions, tick 200 ms) stopped
// 1.4–1.6 s after the cut, and the next global started about 0.5 s later
// (probes every T/4 then; see the closing figures of the issue for T/6).
//
// What no lease covers is the epoch's job: a process paused between the
// check and its action, a handler that blocks past the lease (the guard
// checks before each message, it cannot stop one half way), or a message in
// flight to a third party when the lease ends. Resources the global writes
// to should remember the highest epoch they have seen and refuse lower
// ones. For ZooKeeper itself, Elected.Candidate names the term's candidate
// znode: a multi that checks it (any version) with the write fails once the
// term is over there. Globals should not block in Receive (use
// ReenterAfter): a blocked handler outlives its lease. Note that protoactor
// runs a ReenterAfter continuation as a system message, which no receiver
// middleware sees: a continuation should only record its result, and act
// on it from a handler the guard checks (the chaos checker's boss sends its
// work from a guarded tick).
package global
