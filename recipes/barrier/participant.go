package barrier

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
)

// participant is one Enter's znode and what the Barrier knows of it. Only
// the goroutine that holds the Barrier's mutex touches it.
type participant struct {
	b    *Barrier
	guid string // names every znode of this participant
	data []byte

	path    string          // the participant znode, "" = none
	session int64           // the session that owns path
	strays  bool            // a create's outcome was lost: znodes of ours may exist besides path
	live    map[string]bool // participant-shaped names checked: has a session behind it
}

// enter is the first half of the double barrier: add the participant, then
// pass when ready admits it or when this participant's listing counts the
// barrier's size (and it opens the barrier for everyone counted).
// Participants waiting for more arrivals watch ready only: an arrival wakes
// nobody, the opening wakes each waiter once.
func (p *participant) enter(ctx context.Context) error {
	s := p.b.s
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.path == "" || p.session != s.ID() {
			if p.path != "" {
				p.b.log.Debug("the session changed while entering: arriving again", "path", p.path)
				p.path = ""
			}
			if err := p.create(ctx); err != nil {
				if protected.Refused(err) || ctx.Err() != nil {
					return err
				}
				p.sleep(ctx)
				continue
			}
		}
		me := p.path[strings.LastIndexByte(p.path, '/')+1:]
		_, seq, _ := participants.Parse(me)
		// An error that retrying cannot cure (an ACL that refuses this
		// session) ends Enter; any other is retried after the backoff.
		ok, version, watch, err := p.open(ctx, seq)
		if protected.Refused(err) {
			return err
		}
		if err != nil {
			p.sleep(ctx)
			continue
		}
		if ok {
			return nil
		}
		names, err := protected.Children(ctx, s, p.b.dir)
		if protected.Refused(err) {
			return err
		}
		if err != nil {
			p.sleep(ctx)
			continue
		}
		q := participants.Order(names)
		p.removeStrays(ctx, q, me)
		if p.strays {
			// A stray of ours is still there: it must not stay ahead of
			// (or be counted beside) this one. Try again before going on.
			p.sleep(ctx)
			continue
		}
		if slices.Index(q, me) < 0 {
			p.b.log.Debug("the participant znode is gone: arriving again", "path", p.path)
			p.path = ""
			continue
		}
		if len(q) >= p.b.size {
			// Only participants with a session behind them count: a
			// persistent znode of that shape would open the barrier early
			// (and, with a high sequence, admit every later arrival).
			if q, err = p.liveOnly(ctx, q, me); protected.Refused(err) {
				return err
			} else if err != nil {
				p.sleep(ctx)
				continue
			}
		}
		if len(q) >= p.b.size {
			_, last, _ := participants.Parse(q[len(q)-1])
			opened, err := p.openUp(ctx, version, last)
			switch {
			case protected.Refused(err):
				return err
			case err != nil:
				p.sleep(ctx) // not at once: the ensemble is struggling
			case opened:
				return nil
			}
			continue // ready changed meanwhile: look again
		}
		p.b.log.Debug("waiting for more participants", "here", len(q), "size", p.b.size)
		// Ready's creation, change or deletion: look again. A creation is
		// not taken as the opening without reading it: a ready that a
		// participant did not write (garbage, an empty record) admits
		// nobody.
		select {
		case <-watch:
		case <-ctx.Done():
		}
	}
}

// liveOnly returns q without the participant-shaped znodes that no session
// stands behind or that are gone; me is this participant's, live. Each
// name is checked once: a live ephemeral znode stays live until it is
// deleted, and then it leaves the listing. The checks go out together (one
// round trip; exists needs no permission).
func (p *participant) liveOnly(ctx context.Context, q []string, me string) ([]string, error) {
	if p.live == nil {
		p.live = map[string]bool{}
	}
	var check []string
	for _, n := range q {
		if _, known := p.live[n]; !known && n != me {
			check = append(check, n)
		}
	}
	if len(check) > 0 {
		found := make([]bool, len(check))
		stats := make([]*zk.Stat, len(check))
		err := p.b.s.Do(ctx, cluster.Op{Name: "exists", Path: p.b.dir + "/*", Idempotent: true}, func(conn *zk.Conn) error {
			errs := make([]error, len(check))
			var wg sync.WaitGroup
			for i, n := range check {
				wg.Add(1)
				go func() {
					defer wg.Done()
					found[i], stats[i], errs[i] = conn.Exists(p.b.dir + "/" + n)
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		})
		if err != nil {
			return nil, err
		}
		for i, n := range check {
			p.live[n] = found[i] && protected.TakesPart(stats[i])
		}
	}
	out := q[:0:0]
	for _, n := range q {
		if n == me || p.live[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// create makes the participant znode: ephemeral, sequential and protected
// by the participant's GUID, so that after a connection lost during the
// create it finds its own znode instead of arriving twice (see
// protected.Shape.Enqueue).
func (p *participant) create(ctx context.Context) error {
	path, session, strays, err := participants.Enqueue(ctx, p.b.s, p.b.root, p.b.dir, p.guid, p.data, backoff)
	// The next listing, or abandon, deletes the strays.
	p.strays = p.strays || strays
	if err != nil {
		return err
	}
	p.path, p.session = path, session
	return nil
}

// removeStrays deletes the znodes of this participant other than its own
// (left by a create whose outcome was lost), when there may be any.
func (p *participant) removeStrays(ctx context.Context, q []string, me string) {
	if !p.strays {
		return
	}
	p.strays = false
	p.b.log.Debug("deleting stray participant znodes", "dir", p.b.dir, "guid", p.guid)
	if err := participants.Delete(ctx, p.b.s, p.b.dir, p.guid, q, me); err != nil {
		p.strays = true // next time
	}
}

// abandon gives up the participant's znodes after a failed or cancelled
// Enter: deleted now if ZooKeeper answers within the session timeout, else
// by the session as soon as it can.
func (p *participant) abandon(ctx context.Context) {
	s := p.b.s
	if p.path != "" && p.session == s.ID() {
		if err := protected.Abandon(ctx, s, p.path); err != nil {
			p.b.log.Debug("deleting the participant znode once connected", "path", p.path, "err", err)
		}
	}
	if p.strays {
		participants.SweepLater(s, p.b.dir, p.guid, s.ID(), backoff)
	}
}

// sleep waits for the backoff, or less if ctx ends or the session closes.
func (p *participant) sleep(ctx context.Context) {
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-p.b.s.Done():
	}
}
