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
// server expires the session), [Proxy.Restore] heals either:
//
//	proxies, addrs := zktest.Proxies(t, zktest.Shared(t))
//	conn := zktest.Dial(t, addrs, time.Second)
//	proxies[0].Blackhole() // one second later the session has expired on the server
//
// Every goroutine the package starts ends in t.Cleanup (or in Main for the shared server), so
// tests that use it can verify with goleak that they leak nothing themselves.
package zktest
