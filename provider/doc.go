// Package provider runs protoactor-go's cluster (virtual actors: kinds,
// grains, cluster.Request) on zkactor: a cluster.ClusterProvider on
// zkactor's membership, and a cluster.IdentityLookup that gives each
// identity exactly one activation cluster-wide, recorded in ZooKeeper.
//
//	p, err := provider.New(ctx, provider.Config{Servers: []string{"127.0.0.1:2181"}})
//	c := pcluster.New(system, pcluster.Configure("shop", p, p.IdentityLookup(),
//		remote.Configure("127.0.0.1", 0), pcluster.WithKinds(pcluster.NewKind("cart", cartProps))))
//	c.StartMember()                        // or c.StartClient()
//	res, err := c.Request("alice", "cart", msg)
//
// Supervise does the same and brings the member back as a new member when
// it dies (below).
//
// # Znode layout
//
//	<root>                                   persistent
//	├── nodes                                persistent
//	│   ├── <ActorSystem id>                 ephemeral   Node{id, address "host:port", started_at, kinds}
//	│   └── <ActorSystem id>-singletons      ephemeral   Node{id, address, started_at}: a member's singleton candidacies (if any)
//	├── activations                          persistent
//	│   └── <kind>                           container   (ZooKeeper deletes it when empty)
//	│       └── <identity>                   ephemeral   Activation{kind, identity, pid, member_id, activated_at}
//	├── services, globals                    package cluster and package global (singletons)
//
// A member's node record is zkactor's (package cluster) with the kinds the
// member hosts; a node record without kinds (a plain zkactor node, one
// written before kinds existed, or a member's singletons node) is not a
// member. The provider creates the member's znode itself, once: unlike a
// zkactor registry's node, it is never re-created on a new session. An
// activation's epoch is its znode's creation zxid.
//
// # Membership
//
//	StartMember ─► <root>/nodes/<id> created ─► member list fed to protoactor (self included)
//	member ─► Shutdown ─► activations stopped ─► session closed: node and activation znodes gone at once (one request)
//	member ─► session expired, or node znode deleted by someone else ─► dead (below)
//	StartClient ─► member list fed to protoactor; nothing published
//
// Every member and client watches the children of <root>/nodes and calls
// protoactor's MemberList.UpdateClusterTopology with the full list on
// every change. A change costs each watcher one get-children and one get
// per znode that appeared (a node record never changes): a join costs 2
// reads per member, a leave 1, whatever the cluster's size.
//
// # Death and coming back
//
// protoactor identifies a member by its ActorSystem's id, blocks the id of
// a member that left the topology for good (its remote refuses it; gossip
// spreads the block), and an ActorSystem's id is fixed. So a member whose
// ZooKeeper session expires, which the others see as its node znode's
// deletion, cannot come back as itself. This is what happens:
//
//  1. The others' watches fire: they drop the member from their topology
//     and block its id. Its activation znodes went with its session, so
//     its identities are activated elsewhere on their next request.
//  2. The member itself had stopped its activations already, when its
//     lease ran out (below), before ZooKeeper could expire the session.
//     When it hears of the expiry it dies: Dead is closed, Err wraps
//     ErrDead, its activations are stopped (if any were left), its session
//     is closed (its singletons' registry would re-create its node on a new
//     session), its singleton candidacies end, and its member list is no
//     longer updated. protoactor in that process is not told: its topology
//     stays as it was, and requests from it go to members that refuse it.
//     A session that expires while StartMember creates the member's znode
//     kills the member just the same (StartMember fails with ErrDead): the
//     znode is only ever created on the session the member started with.
//  3. Supervise (if used) then shuts that cluster down and starts a new
//     ActorSystem and cluster on the same host and port with a new
//     Provider: a new member with a new id, which the others admit at once.
//     Without Supervise, the application decides (Dead).
//
// The same happens when someone else deletes a member's node znode, except
// that its session still lives, and so do its activations' znodes: the
// member stops its activations and closes its session only once they have
// stopped (or once the lease they ran under at the death has run out, past
// which none runs), after its singleton candidacies have resigned, so that
// no identity is activated elsewhere while its grain here still handles a
// message. Shutdown waits for that. A restart of a process on the same host:port is a new ActorSystem, hence a
// new id, and is admitted like any new member.
//
// # The life of an activation
//
//	Get(kind, identity) ─► cache hit: the PID (a read of memory, no request)
//	miss ─► read <root>/activations/<kind>/<identity> with a watch ─► exists: its PID
//	none ─► ActivateRequest to the member that rendezvous hashing picks among those with the kind
//	activator ─► create ephemeral znode ─► exists already: answer with its owner's PID
//	created ─► lease holds ─► spawn the grain (its PID was fixed in the record) ─► answer
//	grain stops (passivation, crash past supervision, Shutdown) ─► znode deleted ─► watches sweep caches
//	member dies (kill -9, partition, expiry) ─► znode goes with its session ─► next Get activates elsewhere
//	lease runs out ─► grain stopped before ZooKeeper could expire the session ─► znode deleted if the session survived
//	znode deleted by someone else ─► grain stopped at once
//
// The znode is at once the spawn lock and the directory record: a create
// fails while any activation of the identity exists, so there is exactly
// one activation cluster-wide, also while members join, leave or are
// partitioned. A member only ever deletes the znode of an activation of its
// own (same session, same PID). Grains learn their activation, epoch and
// fencing path with ActivationOf.
//
// # One at a time: the lease
//
// A partitioned member cannot hear that its session expired. So an
// activation runs only while its member can vouch for the session that
// owns its znode: until cluster.Session.SafeUntilFor(session), the moment
// until which the quorum leader certainly counts that session alive (a
// tenth of the session timeout before it could expire it; package global's
// documentation gives the argument and its assumptions). A receiver
// middleware checks it before every message (past it, the message goes to
// the dead letters, so a requester retries at once, and the grain stops),
// and a timer stops every activation of the session when it runs out,
// messages or not. Members hold the lease (one no-op write every sixth of
// the session timeout), so an activation can start at once. What the lease
// cannot cover is a handler that blocks past it: grains should not block
// in Receive (protoactor runs a ReenterAfter continuation as a system
// message, which no receiver middleware sees: a continuation should only
// record its result). For the rest, use the epoch: resources a grain
// writes to can refuse smaller epochs, and ZooKeeper writes can be fenced
// with Activation.Path (cmd/grains does).
//
// Measured (TestPartitionedMemberStopsActivationsFirst, 1 s sessions, a
// member's ZooKeeper link blackholed, its actor remote untouched): its
// activation stopped 0.4–0.55 s after the cut, and another member
// activated the identity 1.0–2.5 s after it (the requester's retries
// included), once the session had expired.
//
// # Singletons
//
// protoactor-go has no leader event. Provider.Singleton stands this member
// for a zkactor global (package global): exactly one actor per name runs
// cluster-wide, its first message is a *zkactorv1.Elected with the term's
// epoch, and WhereisSingleton finds it from any member (clients get
// ErrNotMember: a singleton needs a zkactor registry, which publishes a node).
package provider
