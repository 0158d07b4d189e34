package global

import (
	"context"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
)

// sweeper deletes the candidate znodes of finished candidacies that could
// not be deleted when they finished (ZooKeeper was unreachable, or a create
// whose outcome was lost landed afterwards). A candidacy's znodes all carry
// its GUID, so "every child of dir with this GUID" names them. Left alone,
// they would go only with the session: a live node would hold a place in
// the queue, and at its head leave the name leaderless.
type sweeper struct {
	e    *Elections
	wake chan struct{}

	mu      sync.Mutex
	pending map[sweep]int64 // → the session that owned the znodes
}

type sweep struct{ dir, guid string }

// sweepRetry is how often pending sweeps are retried while connected.
const sweepRetry = time.Second

func newSweeper(e *Elections) *sweeper {
	sw := &sweeper{e: e, wake: make(chan struct{}, 1), pending: map[sweep]int64{}}
	e.wg.Add(1)
	go sw.loop()
	return sw
}

func (sw *sweeper) wakeUp() {
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// add schedules the deletion of every znode of guid under dir.
func (sw *sweeper) add(dir, guid string) {
	sw.mu.Lock()
	sw.pending[sweep{dir, guid}] = sw.e.s.ID()
	sw.mu.Unlock()
	sw.wakeUp()
}

func (sw *sweeper) loop() {
	defer sw.e.wg.Done()
	t := time.NewTicker(sweepRetry)
	defer t.Stop()
	for {
		select {
		case <-sw.e.quit:
			return
		case <-sw.wake:
		case <-t.C:
		}
		if !sw.e.s.Connected() {
			continue
		}
		sw.mu.Lock()
		var todo []sweep
		for k, session := range sw.pending {
			if session != 0 && session != sw.e.s.ID() {
				delete(sw.pending, k) // gone with their session
				continue
			}
			todo = append(todo, k)
		}
		sw.mu.Unlock()
		for _, k := range todo {
			ctx, cancel := context.WithTimeout(context.Background(), sw.e.s.RequestTimeout())
			go func() { // end the sweep early on Close
				select {
				case <-sw.e.quit:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := sw.sweep(ctx, k.dir, k.guid)
			cancel()
			if err == nil {
				sw.mu.Lock()
				delete(sw.pending, k)
				sw.mu.Unlock()
			}
		}
	}
}

// sweep deletes every child of dir that carries guid.
func (sw *sweeper) sweep(ctx context.Context, dir, guid string) error {
	s := sw.e.s
	var names []string
	err := s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		names, _, err = conn.Children(dir)
		return err
	})
	if err != nil {
		if isNoNode(err) {
			return nil
		}
		return err
	}
	for _, n := range names {
		if g, _, ok := parseCandidate(n); !ok || g != guid {
			continue
		}
		p := dir + "/" + n
		if err := s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			return zkutil.Delete(conn, p, -1)
		}); err != nil {
			return err
		}
	}
	return nil
}
