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
	c.Leader(t)
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
