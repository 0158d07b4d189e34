package zktest

import "time"

// Option configures the servers [StartEnsemble] starts.
type Option func(*config)

// config is what the options set; defaultConfig is what every server had before options
// existed, and what Start and Shared use.
type config struct {
	tickTime      time.Duration
	syncLimit     int
	quorumProxies bool
}

func defaultConfig() config {
	return config{tickTime: 200 * time.Millisecond, syncLimit: 25}
}

// WithTickTime sets ZooKeeper's tickTime (default 200 ms, rounded down to whole milliseconds).
// The shortest session a server grants is two ticks, and a follower cut off from its leader
// gives up after syncLimit ticks. ZooKeeper's own default is 2 s.
func WithTickTime(d time.Duration) Option {
	return func(c *config) {
		if d >= time.Millisecond {
			c.tickTime = d
		}
	}
}

// WithSyncLimit sets ZooKeeper's syncLimit in ticks (default 25, so 5 s with the default tick):
// how long a follower goes on serving its clients after it last heard from its leader, and how
// long a leader keeps a silent follower. ZooKeeper's own default is 5.
func WithSyncLimit(ticks int) Option {
	return func(c *config) {
		if ticks > 0 {
			c.syncLimit = ticks
		}
	}
}

// WithQuorumProxies puts a harness [Proxy] on every quorum and election link of an ensemble,
// so that [Cluster.IsolateQuorum] can cut one server off from the others while its clients
// still reach it. Each server's zoo.cfg lists the other servers at the addresses of its own
// proxies to them (its own server.N line keeps its real ports), with the static configuration
// (reconfigEnabled=false), so the servers never learn each other's real addresses for the
// quorum. It has no effect on a single server.
func WithQuorumProxies() Option {
	return func(c *config) { c.quorumProxies = true }
}
