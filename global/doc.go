// Package global elects globally unique actors on ZooKeeper: one global
// process per name across the cluster, found from anywhere with
// WhereisGlobal.
//
// # The queue
//
// Candidates for a name queue under <root>/globals/<name> (a container
// znode) as ephemeral sequential znodes whose names carry a GUID,
// _c_<guid>-c-<sequence>, and whose data is a Candidate record with the
// PID the global will have if that candidate is elected. The lowest
// sequence leads. Each candidate watches only its predecessor, so one
// leader's exit wakes one candidate, not the whole queue. The GUID lets a
// candidate whose create was cut off by a lost connection find its own
// znode instead of queueing twice.
//
// # The life of a candidacy
//
//	RegisterCandidate ─► queued (stand-in holds the PID, buffering messages)
//	queued ─► predecessor gone, first in queue ─► znode confirmed ours ─► term starts:
//	          props spawned under the PID, *zkactorv1.Elected{epoch} first, buffer delivered
//	term ─► actor stops by itself, Resign, Close ─► znode deleted ─► next candidate leads
//	term ─► session not vouched for (disconnected 2/3 of the timeout, or process paused)
//	     ─► actor stopped before it handles another message ─► queued again; if the
//	        session survived and the znode is still ours, the term resumes (same epoch)
//	any ─► session expired ─► re-entered at the back of the queue with a new znode
//
// # Epochs
//
// A term's epoch is the creation zxid of its candidate znode. Terms of a
// name follow queue order, which is creation order, so epochs only grow:
// downstream resources can reject a deposed leader by its smaller epoch.
//
// # One at a time
//
// A leader stops its global before ZooKeeper could expire its session and
// elect another: the session is vouched for until the last byte from a
// server plus 2/3 of the negotiated timeout (cluster.Session.SafeUntil), on
// the monotonic clock, and not at all after the process was paused until
// a fresh request is answered. The global's receiver middleware checks
// this before every message, and the election loop checks it on a timer.
package global
