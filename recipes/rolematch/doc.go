// Package rolematch matches long-lived roles with the actors that hold
// them (PettingZoo's Role Match): a controller posts a set of named roles,
// each with a spec; applicants on any node offer to hold up to a limit of
// them; each role is held by exactly one actor at a time, and when a holder
// or its node dies another applicant takes the role over.
//
// # Znode layout
//
// Under the cluster's root (cluster.DefaultRoot, /zkactor), one directory
// per role set. All data is protobuf (proto/recipes/rolematch/v1).
//
//	<root>/roles/<set>                     persistent
//	├── specs                              container
//	│   └── <role>                         persistent   Role{name, data | message}
//	├── assignments                        container
//	│   └── <role>                         ephemeral    Assignment{role, holder PID, node, applicant}   czxid = epoch
//	└── applicants                         container
//	    └── <applicant-id>                 ephemeral    Applicant{id, node, limit}
//
// The assignment's name is the role's: whoever creates it holds the role,
// and ZooKeeper lets exactly one create succeed. Its creation zxid is the
// holding's epoch, which only grows from one holder of a role to the next.
// Anyone can see who holds what (Holders: the assignments with their
// epochs and owning sessions), which roles exist (Posted) and the
// applications with their room (Applicants: limit − roles held).
//
// # The life of a role
//
//	Post ─► spec znode ─► an applicant with room creates the assignment ─► holder spawned under a fixed PID,
//	        *rolematchv1.Assigned{set, role, spec, epoch, assignment, spec_version} first
//	held ─► Post again (the spec's data set) ─► the holding applicant's data watch fires ─► it reads the spec
//	        ─► *rolematchv1.SpecChanged{set, role, spec, epoch, version} to the holder
//	held ─► Remove (spec deleted) ─► the applicant stops the holder, then deletes the assignment ─► gone
//	held ─► the holder stops by itself ─► assignment deleted ─► the role is free again
//	held ─► the applicant stops (Stop, Roles.Close) ─► holder stopped, assignment deleted ─► taken over
//	held ─► the lease runs out (partition, pause) ─► holder stopped before it handles another message;
//	        if the session survives, the same assignment resumes with the same epoch; else it goes with
//	        the session and another applicant takes the role
//	held ─► the assignment deleted by someone else ─► holder stopped at once ─► the role is free
//	held ─► the holder's node dies ─► its session expires (one session timeout) ─► assignment gone ─► taken over
//
// A holder is a tenure of the node's global.Elections (global.Tenure): the
// same guard as a global's term, so that it handles messages only while
// its session's lease holds (cluster.Session.SafeUntilFor), and stops before
// ZooKeeper could expire the session and let another applicant take the
// role. The guard hands the holder its term's epoch first; a context
// decorator shows it to the holder as the role's Assigned message. The
// holder's PID is fixed before the assignment is created (it is stored in
// it); messages sent to it before the holder starts wait for it. After a
// lease that ran out while the session survived, the holding resumes with
// a new actor under the same PID, which gets Assigned again with the same
// epoch: nobody else can have held the role in between.
//
// # Spec changes
//
// The applicant that wins a role reads its spec with a data watch (the
// read it makes before the create anyway), and keeps one data watch on the
// spec of each role it holds: a change of a spec costs one read, by the
// one applicant that holds the role, and nothing for the other roles'
// holders nor for the applicants that do not hold it (the specs listing
// changes only when roles come or go). When the watch fires, the
// applicant reads the spec again, with a new watch, and sends the holder a
// SpecChanged if its version (the spec znode's modification zxid, which
// only grows) is newer than the last it read. Several re-posts that land
// before that read reach the holder as one SpecChanged with the latest of
// them: a holder gets the spec as it is, not every step. A spec that
// cannot be decoded (or read) is skipped with a warning, and the holder
// keeps the spec it has until the next good one.
//
// The holder's props carry a receiver middleware outside the guard that
// lets a SpecChanged through only to an actor that has had its Assigned
// and an older spec, and a decorator that builds the Assigned from the
// latest spec read: an actor that starts again under the same PID after
// its lease ran out (see below) gets the spec as it is then, with its
// version (spec_version). So each version reaches an actor at most once,
// in order, after its Assigned, and never after a newer one; a SpecChanged
// sent while no actor runs waits in the stand-in and is dropped if the
// next Assigned already carries it. An actor that its supervisor restarts
// (after a panic) is the same holding: it gets no second Assigned (the
// guard announces a holding once), and the changes newer than the spec
// its first incarnation was shown go on reaching it. A role removed and
// posted again while held leaves no watch on the gone spec: the specs
// listing tells whether it is gone (the holder is stopped) or back, and
// then the new spec (a new znode, a newer mzxid) reaches the running
// holder as a change; a role seen gone first is held anew. A holder whose
// session ends gets no more changes; its successor reads the spec when it
// takes the role. An applicant that read a spec for a role it then did
// not win (it lost the create), or whose holding of it ended (its holder
// stopped by itself, say), leaves that watch set until the spec next
// changes (one notification, no request), and reads the spec without a
// new watch when it tries the role again meanwhile: one watch per spec
// and application.
//
// # The life of an application
//
//	Apply ─► applicant znode (ephemeral) ─► watch specs, assignments, applicants ─► room and a free role ─► create
//	session expired ─► holders stopped (their lease ended first) ─► applicant znode created again ─► apply again
//	Stop / Roles.Close ─► every holder stopped, assignments deleted, applicant znode deleted
//	the Elections close ─► their tenures end (holders stopped, assignments deleted) ─► the application ends
//
// The application lists the specs, the assignments and the applicants
// with a watch, and lists a directory again only when its watch fires. A
// role is free when it is posted and has no assignment. When a role frees,
// every applicant with room hears of it at once; to keep that herd small,
// the applicants take turns: for each free role, each ranks itself among
// the applicants by rendezvous hashing of the role and the applicants' ids
// (the same order everywhere, from the names alone) and waits 10 ms for
// every applicant ranked before it and for every role it already holds,
// then sends its create unless the assignment has appeared meanwhile. The
// first ranked of the least loaded applicants tries at once and the others
// usually send nothing; one whose turn comes while the first is partitioned
// or full tries 10 ms later. A lost race costs one failed create. With
// many roles free at once (a new set), each applicant goes for the free
// role it ranks first for, so the roles spread across the applicants.
// An application never holds more than its limit: a role counts from the
// create until its holder has stopped and its assignment is deleted, which
// a read confirms when the tenure could not delete it at once (ZooKeeper
// out of reach, an ACL refusing the delete).
//
// A role whose spec zkactor cannot decode, or that this session may not
// read, is skipped with a warning, and tried again when the spec changes
// (a data watch: re-posting a role sets its data and changes no listing)
// or the specs listing does. An applicant znode deleted by someone else is
// created again (its listing no longer names it).
//
// A create whose reply was lost is resolved by reading the assignment:
// it is ours if the current session owns it and it names this application.
// A create whose outcome stays unknown (that read failed too, or Stop
// ended the wait) makes the role a stray: it counts against the limit
// until the loop, or the application's end, has deleted the assignment if
// the current session owns it and it names this application (a late
// reply cannot be relied on: a closed connection reports an applied create
// as an error); an application that ends cut off leaves that to a
// goroutine of the session's, which does it once connected. The applicant
// znode is deleted at the end whenever its create was sent, not only once
// its reply came (Apply given up). A release (a role removed, Stop)
// deletes the assignment only if it is still the one this session created
// (same owner, same creation zxid), since the path is shared with whoever
// takes over next.
//
// # What the guard does not cover
//
// As for globals: a holder paused between a check and its action, or one
// that blocks in a handler past its lease, and a foreign delete of a live
// assignment, which another applicant may act on before the holder has
// heard of it (the overlap of one notification; a holder cut off from
// ZooKeeper at that moment hears of it when it reconnects, and stops at the
// latest when its lease runs out, so that the overlap can last that long).
// Resources a holder writes to should refuse writes of an epoch lower than
// one they have seen, or fence ZooKeeper writes with the Assigned
// message's assignment path.
//
// An application holds its session's lease (cluster.Session.HoldLease) for
// its whole life, so that a role it wins is held at once.
//
// # Observing holders
//
// Holders reads the assignments afresh: role, holder PID, node,
// application, epoch and owning session. Two holders of one role never
// run at once; to check that from outside (the fault checker), record in
// the holder when it gets its Assigned (start, with the epoch) and when it
// gets Stopping (stop), on the monotonic clock (CLOCK_MONOTONIC is one
// clock for every process of a Linux machine). The guard lets no message
// through once the lease has run out and stops the actor then; the lease
// ends a tenth of the session timeout before ZooKeeper may expire the
// session and another applicant create the assignment, which is the margin
// a recorded stop has. A resumed holding (same epoch) is a new start after
// a stop.
//
// # Order of shutdown
//
// Close Roles before the Elections whose tenures run the holders, and both
// before the registry and the session.
package rolematch
