package zktest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// ExpireSession makes the servers of c expire a session whose client reaches them through p:
// it blackholes p, waits until no server of c holds a connection of the session any more
// (a server closes a session's connection when the session expires; the blackholed proxy
// keeps it open until then), and restores p, so the client reconnects and learns that its
// session has expired (go-zookeeper then starts a new one). It takes about the session
// timeout. Every other connection through p is silenced and closed too.
//
// go-zookeeper gives no way to close a session from a second client (the trick of ZooKeeper's
// own tests, which needs the session's password), so expiry is done the way it happens in
// production: the servers stop hearing from the client.
func (c *Cluster) ExpireSession(t testing.TB, p *Proxy, sessionID int64) {
	t.Helper()
	p.Blackhole()
	defer p.Restore()
	Eventually(t, 2*time.Minute, func() error {
		for i := range c.servers {
			held, err := c.holdsSession(i, sessionID)
			if err != nil {
				return err
			}
			if held {
				return fmt.Errorf("server %d still holds a connection of session 0x%x", i, sessionID)
			}
		}
		return nil
	})
}

// holdsSession reports whether running server i lists a connection of the session in its
// cons reply; a server that is not running holds none.
func (c *Cluster) holdsSession(i int, sessionID int64) (bool, error) {
	s := c.servers[i]
	if !s.running() {
		return false, nil
	}
	reply, err := fourLetterWord(s.addr(), "cons")
	if err != nil {
		return false, fmt.Errorf("cons of server %d: %w", i, err)
	}
	return strings.Contains(reply, fmt.Sprintf("sid=0x%x,", sessionID)), nil
}
