package protected

import (
	"context"
	"errors"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
)

// Owner returns the session that owns the ephemeral path, 0 if it is gone.
func Owner(ctx context.Context, s *cluster.Session, path string) (int64, error) {
	var stat *zk.Stat
	err := s.Do(ctx, cluster.Op{Name: "exists", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		_, stat, err = conn.Exists(path)
		return err
	})
	if err != nil || stat == nil {
		return 0, err
	}
	return stat.EphemeralOwner, nil
}

// Children lists dir, the directory a queue lives in; a dir that does not
// exist is an empty queue.
func Children(ctx context.Context, s *cluster.Session, dir string) ([]string, error) {
	var names []string
	err := s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		names, _, err = conn.Children(dir)
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, nil
	case err != nil:
		// The request may still be running (Do stopped waiting): its
		// results are not ours to read.
		return nil, err
	}
	return names, nil
}

// Find returns the first znode of guid under dir that the current session
// owns, with that session, or "" when there is none: what a create whose
// outcome was lost made, if it was applied on this session.
func (sh Shape) Find(ctx context.Context, s *cluster.Session, dir, guid string) (string, int64, error) {
	names, err := Children(ctx, s, dir)
	if err != nil {
		return "", 0, err
	}
	for _, n := range sh.Own(names, guid) {
		p := dir + "/" + n
		owner, err := Owner(ctx, s, p)
		if err != nil {
			return "", 0, err
		}
		if owner != 0 && owner == s.ID() {
			return p, owner, nil
		}
	}
	return "", 0, nil
}

// Delete deletes the znodes of guid among names (children of dir) except
// keep ("" keeps none): the strays of creates whose outcome was lost. It
// tries each and returns the first error; a znode already gone counts as
// deleted.
func (sh Shape) Delete(ctx context.Context, s *cluster.Session, dir, guid string, names []string, keep string) error {
	var first error
	for _, n := range sh.Own(names, guid) {
		if n == keep {
			continue
		}
		p := dir + "/" + n
		err := s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
			return zkutil.Delete(conn, p, -1)
		})
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Abandon deletes path, the caller's own znode, when it gives up on it:
// now if ZooKeeper answers within the session timeout (a client cut off for
// that long has lost its session, and the znode, anyway), else by the
// session as soon as it can (Session.DeleteWhenConnected). It returns the
// error of the attempt now; the delete is then left to the session.
func Abandon(ctx context.Context, s *cluster.Session, path string) error {
	del, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Timeout())
	defer cancel()
	err := cluster.ErrNotConnected
	if s.Connected() {
		err = s.Do(del, cluster.Op{Name: "delete", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
			return zkutil.Delete(conn, path, -1)
		})
	}
	if err != nil {
		s.DeleteWhenConnected(path)
	}
	return err
}

// Sweep deletes every znode of guid under dir.
func (sh Shape) Sweep(ctx context.Context, s *cluster.Session, dir, guid string) error {
	names, err := Children(ctx, s, dir)
	if err != nil {
		return err
	}
	return sh.Delete(ctx, s, dir, guid, names, "")
}

// SweepLater deletes every znode of guid under dir that session owns, as
// soon as the client is connected on it, trying again every backoff: the
// strays of creates whose outcome was lost after their caller gave up. The
// goroutine belongs to the session: it ends once the znodes are gone, the
// session has ended (taking them along), the server refuses (Refused), or
// the Session is closed.
func (sh Shape) SweepLater(s *cluster.Session, dir, guid string, session int64, backoff time.Duration) {
	if session == 0 {
		return
	}
	go func() {
		t := time.NewTicker(backoff)
		defer t.Stop()
		for {
			if id := s.ID(); id != session && id != 0 {
				return // gone with their session
			}
			if s.Connected() {
				ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
				err := sh.Sweep(ctx, s, dir, guid)
				cancel()
				if err == nil || Refused(err) {
					return // done, or never will be (an ACL refuses it)
				}
			}
			select {
			case <-s.Done():
				return
			case <-t.C:
			}
		}
	}()
}
