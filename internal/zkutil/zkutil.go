// Package zkutil holds the small ZooKeeper recipes that zkactor's packages
// share: "delete, ignoring no-node" and "create, making the parents". They
// work on a plain *zk.Conn, one request (or a few) each, and take no
// context: callers run them inside cluster.Session.Do, which bounds the
// wait and adds the operation and path to the error.
package zkutil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Delete deletes path if its version matches (-1 matches any). A path that
// does not exist counts as deleted: the caller wanted it gone, and it is.
// Other errors are go-zookeeper's, unwrapped, so that errors.Is sees them.
func Delete(c *zk.Conn, path string, version int32) error {
	err := c.Delete(path, version)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// createAttempts bounds the retries of a create when a container parent is
// reaped between its create and the child's.
const createAttempts = 4

// CreateWithParents creates path with flags and acl, creating missing
// parents on the way:
//   - the immediate parent, when it lies two or more levels below root, as a
//     container (ZooKeeper deletes it once its last child is gone, so
//     services and elections leave nothing behind);
//   - every other parent persistent: those above root with an open ACL (they
//     are not ours to protect), root and those below it with acl.
//
// It tries the create first and makes parents only when it fails for want
// of one, bottom up: one request when the parent exists, three when only
// the immediate parent is missing. It retries a few times when a container
// parent is reaped under it. It returns the created path (with its
// sequence number for a sequential create). An error of the create itself
// is go-zookeeper's, unwrapped; an error creating a parent names the
// parent.
func CreateWithParents(c *zk.Conn, root, path string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	leafParent := parentOf(path)
	for attempt := 1; ; attempt++ {
		created, err := c.Create(path, data, flags, acl)
		if !errors.Is(err, zk.ErrNoNode) || attempt == createAttempts {
			return created, err
		}
		if err := ensureDir(c, root, leafParent, leafParent, acl); err != nil {
			return "", err
		}
	}
}

// parentOf returns the parent of path, "" for "/" and its children.
func parentOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return ""
	}
	return path[:i]
}

// ensureDir creates dir unless it exists, and its missing parents, bottom
// up: the create of dir is tried first, so that an existing chain costs one
// request. leafParent is the parent of the znode being created, which is
// made a container (see CreateWithParents).
func ensureDir(c *zk.Conn, root, dir, leafParent string, acl []zk.ACL) error {
	if dir == "" {
		return nil
	}
	for attempt := 1; ; attempt++ {
		var err error
		switch {
		case len(dir) < len(root):
			// Above our root: not ours to protect.
			_, err = c.Create(dir, nil, 0, zk.WorldACL(zk.PermAll))
		case dir == leafParent && strings.Count(dir[len(root):], "/") >= 2:
			_, err = c.CreateContainer(dir, nil, zk.FlagContainer, acl)
		default:
			_, err = c.Create(dir, nil, 0, acl)
		}
		if err == nil || errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		if !errors.Is(err, zk.ErrNoNode) || attempt == createAttempts {
			return fmt.Errorf("create parent %s: %w", dir, err)
		}
		if err := ensureDir(c, root, parentOf(dir), leafParent, acl); err != nil {
			return err
		}
	}
}

// IsTransient reports errors after which the same request may succeed
// once the client has (re)connected. For a create, the outcome of such a
// request is unknown: it may have been applied.
func IsTransient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}

// EnsureParent makes the parent of path, and any missing above it, as
// CreateWithParents would for path: one request when the parent exists or
// only the parent is missing. For a path whose parent is likely missing
// (the first registration of a name), EnsureParent then CreateWithParents
// costs two requests where CreateWithParents alone costs three (the
// child's create, the parent's, the child's again); and the caller may do
// something between the two.
func EnsureParent(c *zk.Conn, root, path string, acl []zk.ACL) error {
	p := parentOf(path)
	return ensureDir(c, root, p, p, acl)
}
