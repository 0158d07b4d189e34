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

// createAttempts bounds the retries of CreateWithParents when a container
// parent is reaped between its create and the child's.
const createAttempts = 4

// CreateWithParents creates path with flags and acl, creating missing
// parents on the way:
//   - the immediate parent, when it lies two or more levels below root, as a
//     container (ZooKeeper deletes it once its last child is gone, so
//     services and elections leave nothing behind);
//   - every other parent persistent: those above root with an open ACL (they
//     are not ours to protect), root and those below it with acl.
//
// It retries a few times when a container parent is reaped under it. It
// returns the created path (with its sequence number for a sequential
// create). An error of the create itself is go-zookeeper's, unwrapped; an
// error creating a parent names the parent.
func CreateWithParents(c *zk.Conn, root, path string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	for attempt := 1; ; attempt++ {
		created, err := c.Create(path, data, flags, acl)
		if !errors.Is(err, zk.ErrNoNode) || attempt == createAttempts {
			return created, err
		}
		if err := ensureParents(c, root, path, acl); err != nil {
			return "", err
		}
	}
}

// ensureParents creates the missing parents of path, top down.
func ensureParents(c *zk.Conn, root, path string, acl []zk.ACL) error {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return nil // a child of "/": nothing to create
	}
	parent := path[:i]
	var chain []string
	for p := parent; len(p) > 0 && p != "/"; p = p[:strings.LastIndexByte(p, '/')] {
		chain = append(chain, p)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		p := chain[i]
		var err error
		switch {
		case len(p) < len(root):
			// Above our root: not ours to protect.
			_, err = c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		case p == parent && strings.Count(p[len(root):], "/") >= 2:
			_, err = c.CreateContainer(p, nil, zk.FlagContainer, acl)
		default:
			_, err = c.Create(p, nil, 0, acl)
		}
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create parent %s: %w", p, err)
		}
	}
	return nil
}
