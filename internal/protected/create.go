package protected

import (
	"context"
	"errors"
	"time"

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

// Refused reports the errors of a create or a delete that retrying cannot
// cure: the server refused it (an ACL, a bad path or argument), the name is
// bad, or the Session is closed.
func Refused(err error) bool {
	for _, e := range []error{zk.ErrNoAuth, zk.ErrInvalidACL, zk.ErrBadArguments, zk.ErrNoChildrenForEphemerals, zk.ErrInvalidPath, cluster.ErrBadName, cluster.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Enqueue creates the owner's znode in dir, the queue: ephemeral,
// sequential and named for guid, with the parents below root made as
// needed. After a connection lost during the create it looks for a znode of
// guid instead of creating a second one, and a znode left to a session that
// expired during the create is not taken for the current session's. It
// returns the znode and the session that owns it.
//
// strays reports that znodes of guid may exist besides path (a create whose
// outcome stayed unknown): the caller deletes them (Delete, or SweepLater
// when it gives up). A create whose reply comes after ctx ended is undone:
// its znode deleted by the session once connected, or swept after backoff.
// Errors are ctx's, the server's refusal (Refused), or a connection error
// after which it did not find its znode: the caller retries.
func (sh Shape) Enqueue(ctx context.Context, s *cluster.Session, root, dir, guid string, data []byte, backoff time.Duration) (path string, session int64, strays bool, err error) {
	prefix := dir + "/" + sh.Name(guid)
	// The caller gave up before the reply: whatever the create did is a
	// stray now, for the session to delete.
	late := func(created string, session int64, err error) {
		switch {
		case err == nil:
			s.DeleteWhenConnected(created)
		case zkutil.IsTransient(err):
			sh.SweepLater(s, dir, guid, session, backoff)
		}
	}
	for {
		created, session, err := Create(ctx, s, root, prefix, data, late)
		if err == nil && session != 0 {
			return created, session, strays, nil
		}
		if err == nil {
			// The session changed during the create: ask whose it is.
			owner, err := Owner(ctx, s, created)
			if err != nil {
				return "", 0, true, err
			}
			if owner != 0 && owner == s.ID() {
				return created, owner, strays, nil
			}
			continue // gone with the old session
		}
		// Unless the server refused it, the create may have been applied
		// (a lost reply, or Do gave up waiting: its late outcome may not
		// reach the callback above if it finishes just as Do stops
		// waiting).
		strays = strays || !Refused(err)
		if ctx.Err() != nil || !zkutil.IsTransient(err) {
			return "", 0, strays, err
		}
		// Unknown outcome: look for our GUID once reconnected.
		path, owner, err := sh.Find(ctx, s, dir, guid)
		if err != nil {
			return "", 0, strays, err
		}
		if path != "" {
			return path, owner, strays, nil
		}
		if err := ctx.Err(); err != nil {
			return "", 0, strays, err
		}
	}
}
