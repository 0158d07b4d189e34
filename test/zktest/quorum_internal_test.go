package zktest

import (
	"fmt"
	"testing"
	"time"
)

// Every pair of servers keeps its election connection on a proxy. Without the rewrite of the
// election handshake, a pair whose lower id dialed first ends up connected directly (the
// higher dials back to the lower's real port) and no proxy of the pair holds a connection.
func TestQuorumProxiesCarryEveryElectionLink(t *testing.T) {
	c := StartEnsemble(t, 3, WithQuorumProxies())
	checkElectionLinks(t, c)

	// A killed leader's restart: it rejoins a stable ensemble, which needs the servers to
	// dial back through the proxies.
	leader := c.Leader(t)
	begin := time.Now()
	c.Kill(leader)
	next := c.Leader(t)
	if next == leader {
		t.Fatalf("Leader = %d after killing it", next)
	}
	elected := time.Since(begin)
	t.Logf("server %d leads %v after leader %d was killed", next, elected, leader)
	// Unproxied, an election takes well under a second. A follower that found its new leader's
	// proxy but not yet the leader gave up and left the leader waiting initLimit (10 s).
	if elected > 8*time.Second {
		t.Fatalf("a new leader only %v after the kill: the quorum proxies slowed the election down", elected)
	}
	begin = time.Now()
	c.Restart(leader)
	t.Logf("server %d serves again %v after its restart", leader, time.Since(begin))
	checkElectionLinks(t, c)
}

func checkElectionLinks(t *testing.T, c *Cluster) {
	t.Helper()
	Eventually(t, 10*time.Second, func() error {
		for i := range c.Len() {
			for j := i + 1; j < c.Len(); j++ {
				_, ij := c.QuorumProxies(i, j)
				_, ji := c.QuorumProxies(j, i)
				if ij.Conns()+ji.Conns() == 0 {
					return fmt.Errorf("servers %d and %d: no election connection through their proxies", i, j)
				}
			}
		}
		return nil
	})
	// Followers reach the leader through their proxies to it.
	leader := c.Leader(t)
	for i := range c.Len() {
		if i == leader {
			continue
		}
		peer, _ := c.QuorumProxies(i, leader)
		if peer.Conns() != 1 {
			t.Fatalf("follower %d: %d quorum connections through its proxy to leader %d, want 1", i, peer.Conns(), leader)
		}
	}
}
