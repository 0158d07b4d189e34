package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
)

// reaper deletes, once the client is connected again, ephemeral znodes
// that their owner gave up while ZooKeeper was unreachable: a session can
// outlive the component that created them (Elections closed while the
// Registry and the Session go on), and a znode it left would stand for a
// component that is gone (a candidate at the head of a queue: a name
// without a leader). Only znodes of the session that asked are deleted; a
// new session means they went with the old one.
type reaper struct {
	mu      sync.Mutex
	pending map[string]int64 // path → the session that owns it
	kick    chan struct{}
}

// DeleteWhenConnected deletes path, an ephemeral znode of the current
// session, as soon as the client is connected, retrying until it is gone,
// the session ends or the Session is closed. Components that give up their
// znodes while ZooKeeper is unreachable hand them over here.
func (s *Session) DeleteWhenConnected(path string) {
	r := &s.reaper
	r.mu.Lock()
	r.pending[path] = s.ID()
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (s *Session) reap() {
	defer s.wg.Done()
	r := &s.reaper
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-r.kick:
		case <-t.C:
		}
		if !s.Connected() {
			continue
		}
		r.mu.Lock()
		todo := map[string]int64{}
		for p, session := range r.pending {
			if session != s.ID() {
				delete(r.pending, p) // gone with its session
				continue
			}
			todo[p] = session
		}
		r.mu.Unlock()
		for p, session := range todo {
			ctx, cancel := context.WithTimeout(s.life, s.cfg.RequestTimeout)
			err := s.Do(ctx, Op{Name: "delete", Path: p, Idempotent: true}, func(c *zk.Conn) error {
				ok, stat, err := c.Exists(p)
				if err != nil || !ok || stat.EphemeralOwner != session {
					return err
				}
				return zkutil.Delete(c, p, stat.Version)
			})
			cancel()
			if err == nil {
				r.mu.Lock()
				if r.pending[p] == session {
					delete(r.pending, p)
				}
				r.mu.Unlock()
			}
		}
	}
}
