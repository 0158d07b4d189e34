// Package zktest runs real ZooKeeper servers for integration tests, and a TCP proxy that injects
// network faults between a client and a server.
//
// Servers are JVMs launched through scripts/zookeeper.sh serve DIR, the one place that knows
// ZooKeeper's classpath and JVM flags. zktest writes each server's zoo.cfg (tickTime=200, so
// sessions as short as 400 ms are allowed) into a directory the test owns, picks free loopback
// ports, and waits until the server's srvr reply has a "Mode:" line, which is the moment it
// serves clients (ruok answers imok earlier, even on an ensemble member without a quorum).
// The JVMs die with the test process (PR_SET_PDEATHSIG) and are stopped in t.Cleanup.
//
// If ZooKeeper is not installed or a server cannot start, the test fails with the tail of the
// server's log and a hint to run scripts/zookeeper.sh install. Tests never skip.
//
// # Choosing a server
//
// Most tests only need somewhere to store znodes. They share one standalone server per test
// process, started on first use, and keep out of each other's way under a root of their own:
//
//	func TestMain(m *testing.M) { zktest.Main(m) } // stops the shared server, checks for leaks
//
//	func TestRegister(t *testing.T) {
//		conn := zktest.Shared(t).Connect(t)
//		root := zktest.Root(t) // e.g. /t/TestRegister-3fa2c1d0, not yet created
//		...
//	}
//
// Tests that kill, stop or restart servers start their own, which cost about 1 s (standalone)
// or 3 s (a three-server ensemble) and are stopped when the test ends:
//
//	c := zktest.StartEnsemble(t, 3)
//	conn := c.Connect(t)
//	c.Kill(c.Leader(t)) // the others elect a new leader within a second
//
// # Injecting faults
//
// A [Proxy] sits between clients and one server. [Proxy.Cut] is a refused connection (the
// client notices at once and reconnects), [Proxy.Blackhole] a silent partition (nothing arrives
// in either direction until the client's timeouts fire and, after the session timeout, the
// server expires the session), [Proxy.DropToTarget] and [Proxy.DropFromTarget] one-way
// partitions (requests lost, or requests executed and their replies lost), [Proxy.Delay] a
// slow return path, and [Proxy.Restore] heals any of them:
//
//	proxies, addrs := zktest.Proxies(t, zktest.Shared(t))
//	conn := zktest.Dial(t, addrs, time.Second)
//	proxies[0].Blackhole() // one second later the session has expired on the server
//
// [Cluster.ExpireSession] expires a session on demand that way. [Cluster.Kill], [Cluster.Stop]
// and [Cluster.Restart] crash, stop and restart a server ([Cluster.Leader] finds the one to
// kill for a failover), and [Cluster.Pause] freezes one with SIGSTOP until [Cluster.Resume].
//
// # Partitioning a server from its ensemble
//
// An ensemble started [WithQuorumProxies] has a proxy on every quorum and election link:
// each server's own zoo.cfg lists the other servers at the addresses of its proxies to them,
// with the static configuration (reconfigEnabled=false), so the servers never bypass them.
// (ZooKeeper's election handshake announces the sender's real election address, which the
// other side dials back; the proxies rewrite it to a proxy's.) [Cluster.IsolateQuorum] then
// cuts one server off from the others while its client port still serves. A follower so
// isolated answers its clients' pings for syncLimit ticks, while the leader expires their
// sessions after their timeout:
//
//	c := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies(), zktest.WithSyncLimit(25))
//	f := c.Follower(t)
//	conn := zktest.Dial(t, c.Addrs()[f:f+1], 2*time.Second) // served by f alone
//	c.IsolateQuorum(f) // conn stays connected for 5 s; the others expire its session after 2 s
//	c.HealQuorum(f)
//
// [Cluster.QuorumProxies] gives the proxies of one link, for finer faults. [WithTickTime] and
// [WithSyncLimit] set the servers' tick (default 200 ms) and syncLimit (default 25 ticks).
//
// Every goroutine the package starts ends in t.Cleanup (or in Main for the shared server), so
// tests that use it can verify with goleak that they leak nothing themselves.
package zktest
