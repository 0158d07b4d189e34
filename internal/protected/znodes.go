package protected

import (
	"context"
	"errors"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
)

// Create sends one create of an ephemeral sequential znode at prefix (a
// path ending in Shape.Name), with the parents below root made as
// zkutil.CreateWithParents makes them. It reads the client's session just
// before and after the create, in the same exchange: session is the one
// that owns created, or 0 when the session changed during the create (the
// znode may have gone with the old one: ask Owner).
//
// An error leaves the outcome unknown unless the server refused the create:
// the caller looks for its GUID (Find) once reconnected. late is called, as
// plumbing.DoLate calls it, when the caller gave up (ctx ended) before the
// reply: with what the create made (if err is nil), the session it was sent
// on and its error; whatever it made is a stray now.
func Create(ctx context.Context, s *cluster.Session, root, prefix string, data []byte, late func(created string, session int64, err error)) (string, int64, error) {
	// Locals, not results: late may read them after Create has returned.
	var (
		created       string
		before, after int64
	)
	err := plumbing.DoLate(ctx, s, "create", prefix, func(err error) { late(created, before, err) }, func(conn *zk.Conn) error {
		var err error
		before = conn.SessionID()
		created, err = zkutil.CreateWithParents(conn, root, prefix, data, zk.FlagEphemeral|zk.FlagSequence, s.ACL())
		after = conn.SessionID()
		return err
	})
	switch {
	case err != nil:
		return "", 0, err
	case before != after:
		return created, 0, nil
	}
	return created, after, nil
}

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
