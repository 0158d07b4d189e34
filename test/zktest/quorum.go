package zktest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// quorumLink is the pair of proxies through which one server reaches another: its quorum
// (peer) connection, which a follower opens to its leader, and its leader-election connection.
type quorumLink struct {
	peer, election *Proxy
}

// startQuorumProxies starts a link for every ordered pair of distinct servers, each proxy
// forwarding to the real port of the server it leads to.
func (c *Cluster) startQuorumProxies() error {
	c.links = make([][]*quorumLink, len(c.servers))
	for i := range c.servers {
		c.links[i] = make([]*quorumLink, len(c.servers))
		for j, to := range c.servers {
			if i == j {
				continue
			}
			peer, err := newProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(to.peerPort)))
			if err != nil {
				return err
			}
			link := &quorumLink{peer: peer}
			c.links[i][j] = link // closed with the cluster even if the next one fails
			if link.election, err = newProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(to.electionPort))); err != nil {
				return err
			}
		}
	}
	for i, row := range c.links {
		for j, link := range row {
			if link == nil {
				continue
			}
			// Server i, dialing j, announces the address of j's proxy back to i.
			link.election.mu.Lock()
			link.election.rewrite = electionHandshakeRewriter(c.links[j][i].election.Addr())
			link.election.mu.Unlock()
			// A follower may dial its new leader a moment before the leader listens on its
			// quorum port. A refused connect makes the follower try again, but a proxy has
			// already accepted: the follower would see the connection close, give up, and
			// elect again only after the leader has waited initLimit ticks for followers.
			link.peer.mu.Lock()
			link.peer.dialRetry = quorumDialRetry
			link.peer.mu.Unlock()
		}
	}
	return nil
}

// quorumDialRetry is how long a quorum proxy waits for its server to listen, about as long as
// a follower tries to connect to its leader before it gives up.
const quorumDialRetry = 5 * time.Second

// linkPorts returns the ports server i's zoo.cfg gives for server j: its proxies to j.
func (c *Cluster) linkPorts(i, j int) (peer, election int) {
	link := c.links[i][j]
	return proxyPort(link.peer), proxyPort(link.election)
}

func proxyPort(p *Proxy) int { return p.ln.Addr().(*net.TCPAddr).Port }

func (c *Cluster) closeQuorumProxies() {
	for _, row := range c.links {
		for _, link := range row {
			if link == nil {
				continue
			}
			if link.peer != nil {
				link.peer.close()
			}
			if link.election != nil {
				link.election.close()
			}
		}
	}
}

// QuorumProxies returns the proxies that carry server from's connections to server to: the
// quorum (peer) connection a follower opens to its leader, and the leader-election connection.
// Use them for faults finer than [Cluster.IsolateQuorum], such as a one-way partition between
// two servers. The cluster must have been started [WithQuorumProxies].
//
// ZooKeeper keeps one election connection per pair of servers, owned by the server with the
// higher id: when the lower one dials, the higher hangs up and dials back (the harness makes
// that dial-back go through QuorumProxies(higher, lower)). So a pair's election traffic may
// run over either direction's proxy: silence both to be sure it stops.
func (c *Cluster) QuorumProxies(from, to int) (peer, election *Proxy) {
	c.server(from)
	c.server(to)
	if c.links == nil {
		c.fatalf("QuorumProxies(%d, %d): the cluster was not started WithQuorumProxies", from, to)
	}
	if from == to {
		c.fatalf("QuorumProxies(%d, %d): a server has no link to itself", from, to)
	}
	link := c.links[from][to]
	return link.peer, link.election
}

// IsolateQuorum partitions server i from the rest of the ensemble: every quorum and election
// link to and from it is blackholed (bytes dropped, TCP connections kept open), while its
// client port still serves. A follower so isolated goes on answering its clients, pings
// included, until it has heard nothing from its leader for syncLimit ticks, while the leader
// expires those clients' sessions after their timeout. The cluster must have been started
// [WithQuorumProxies].
func (c *Cluster) IsolateQuorum(i int) {
	c.server(i)
	if c.links == nil {
		c.fatalf("IsolateQuorum(%d): the cluster was not started WithQuorumProxies", i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isolated == nil {
		c.isolated = make(map[int]bool)
	}
	c.isolated[i] = true
	for j := range c.servers {
		if j == i {
			continue
		}
		for _, link := range []*quorumLink{c.links[i][j], c.links[j][i]} {
			link.peer.Blackhole()
			link.election.Blackhole()
		}
	}
}

// HealQuorum ends [Cluster.IsolateQuorum] of server i: its links to and from the servers that
// are not isolated themselves forward again, and their silenced connections are closed, so the
// servers reconnect (server i rejoins the quorum, typically within a few ticks).
func (c *Cluster) HealQuorum(i int) {
	c.server(i)
	if c.links == nil {
		c.fatalf("HealQuorum(%d): the cluster was not started WithQuorumProxies", i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.isolated, i)
	for j := range c.servers {
		if j == i || c.isolated[j] {
			continue
		}
		for _, link := range []*quorumLink{c.links[i][j], c.links[j][i]} {
			link.peer.Restore()
			link.election.Restore()
		}
	}
}

// The first message on a leader-election connection (QuorumCnxManager's initial message):
// a protocol version, the sender's server id, and the sender's own election address(es) as
// "host:port" strings joined by "|", length-prefixed. Before the versions with an address,
// the first long was the server id itself.
const (
	electionProtocolV1 = -65536
	electionProtocolV2 = -65535
	maxElectionAddrLen = 4096
)

// electionHandshakeRewriter returns a Proxy rewrite that replaces the election address a
// server announces with addr. ZooKeeper keeps one election connection per pair of servers,
// and the one with the higher id must own it: when the lower one dials, the higher closes
// that connection and dials back to the address announced in the initial message, which is
// the lower's real election port, not a proxy. Announcing the address of the higher's proxy
// to the lower keeps that dial-back on a proxy too, so IsolateQuorum silences it.
func electionHandshakeRewriter(addr string) func(io.Reader) ([]byte, error) {
	return func(r io.Reader) ([]byte, error) {
		var head [8]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return nil, err
		}
		version := int64(binary.BigEndian.Uint64(head[:]))
		if version != electionProtocolV1 && version != electionProtocolV2 {
			return head[:], nil // an old protocol without an address, or garbage for the server to refuse
		}
		var rest [12]byte // server id, address length
		if _, err := io.ReadFull(r, rest[:]); err != nil {
			return nil, err
		}
		n := int32(binary.BigEndian.Uint32(rest[8:]))
		if n <= 0 || n > maxElectionAddrLen {
			return nil, fmt.Errorf("election handshake: address length %d", n)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return nil, err
		}
		out := make([]byte, 0, 20+len(addr))
		out = append(out, head[:]...)
		out = append(out, rest[:8]...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(addr)))
		return append(out, addr...), nil
	}
}
