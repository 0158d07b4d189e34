package cluster

import (
	"bufio"
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// go-zookeeper v1.0.4 has a data race on reconnect (upstream issue
// go-zookeeper/zk#260, PR #35): it starts the new connection's receive loop
// and then reads the last zxid it has seen, to re-arm the session's watches,
// while the receive loop writes that zxid with every reply. The race
// detector reports it whenever a reply (to a request queued before the
// reconnect, say) arrives before the watches are re-armed. So, once a
// connection has re-established a session that may have watches, its
// replies are handed to go-zookeeper only after the set-watches packet has
// gone out, which orders the two; or after setWatchesWait, when there was
// none to send (no watches: nothing is read); or never, when the Session is
// closing meanwhile. (50 ms was too short for a loaded race-detector run: a
// CI run met the race after a one-way partition, with the set-watches
// packet not yet written.)
const (
	opSetWatches   = 101 // go-zookeeper's opcode for re-arming watches
	setWatchesWait = 250 * time.Millisecond
)

// gateConn is one connection to a server. Its reads are buffered:
// go-zookeeper reads each packet with two reads (its length, then the
// rest), a system call each on a bare connection.
type gateConn struct {
	net.Conn
	r       *bufio.Reader
	closing <-chan struct{} // the Session's

	mu          sync.Mutex
	reopened    time.Time     // when an existing session was re-established on it
	watchesSent chan struct{} // closed by the first set-watches write
}

func newGateConn(c net.Conn, closing <-chan struct{}) *gateConn {
	return &gateConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), closing: closing, watchesSent: make(chan struct{})}
}

// sessionReopened is called when the handshake on this connection
// re-established the session the client had.
func (c *gateConn) sessionReopened() {
	c.mu.Lock()
	c.reopened = time.Now()
	c.mu.Unlock()
}

func (c *gateConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	// One packet per write: length, xid, opcode.
	if len(b) >= 12 && binary.BigEndian.Uint32(b[8:12]) == opSetWatches {
		c.mu.Lock()
		if !isClosed(c.watchesSent) {
			close(c.watchesSent)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *gateConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	up := c.reopened
	c.mu.Unlock()
	if !up.IsZero() && !isClosed(c.watchesSent) {
		if wait := setWatchesWait - time.Since(up); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.watchesSent:
			case <-t.C:
			}
			t.Stop()
		}
		if !isClosed(c.watchesSent) && isClosed(c.closing) {
			return 0, net.ErrClosed
		}
	}
	return c.r.Read(b)
}

// readBuffer is the size of a connection's read buffer.
const readBuffer = 64 << 10
