package main

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"
)

// znode is one znode under the root as read, with its children.
type znode struct {
	path     string
	name     string
	data     []byte
	stat     *zk.Stat
	acl      []zk.ACL // read only for doctor
	aclErr   error
	children []*znode
}

func (z *znode) ephemeral() bool { return z.stat.EphemeralOwner != 0 }

// child returns the child called name, or nil.
func (z *znode) child(name string) *znode {
	if z == nil {
		return nil
	}
	for _, c := range z.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// errNoRoot: the root znode does not exist.
var errNoRoot = errors.New("does not exist")

// readTree reads root and everything under it, one znode at a time (so not
// as one snapshot: what changes during the read may show half-changed; a
// watch then re-reads). Znodes deleted during the read are left out. With
// withACL it also reads each znode's ACL.
func (c *client) readTree(root string, withACL bool) (*znode, error) {
	z, err := c.readZnode(root, withACL)
	if err != nil {
		return nil, err
	}
	if z == nil {
		return nil, fmt.Errorf("root %s %w on %s (no zkactor node has used it: check -root)", root, errNoRoot, joinServers(c.servers))
	}
	return z, nil
}

// readZnode reads path and its subtree; nil, nil when path is gone.
func (c *client) readZnode(path string, withACL bool) (*znode, error) {
	data, stat, err := c.get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", path, err)
	}
	z := &znode{path: path, name: baseName(path), data: data, stat: stat}
	if withACL {
		z.acl, _, z.aclErr = c.conn.GetACL(path)
	}
	if stat.NumChildren == 0 && stat.EphemeralOwner != 0 {
		return z, nil // an ephemeral has no children; no child watch needed
	}
	names, err := c.children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get children %s: %w", path, err)
	}
	sort.Strings(names)
	for _, n := range names {
		child, err := c.readZnode(joinPath(path, n), withACL)
		if err != nil {
			return nil, err
		}
		if child != nil {
			z.children = append(z.children, child)
		}
	}
	return z, nil
}

func (c *client) get(path string) ([]byte, *zk.Stat, error) {
	if c.watches == nil || !c.watches.arm(path, watchData) {
		return c.conn.Get(path)
	}
	data, stat, _, err := c.conn.GetW(path)
	if err != nil {
		c.watches.disarm(path, watchData)
	}
	return data, stat, err
}

func (c *client) children(path string) ([]string, error) {
	if c.watches == nil || !c.watches.arm(path, watchChildren) {
		names, _, err := c.conn.Children(path)
		return names, err
	}
	names, _, _, err := c.conn.ChildrenW(path)
	if err != nil {
		c.watches.disarm(path, watchChildren)
	}
	return names, err
}

type watchKind int

const (
	watchData watchKind = iota
	watchChildren
)

type watchKey struct {
	path string
	kind watchKind
}

// watches remembers which watches are set, so that a re-read sets a watch
// only where the last one has fired (go-zookeeper keeps a channel for every
// GetW and ChildrenW until its watch fires), and tells the follower of any
// change through changed. Events come from go-zookeeper's event callback,
// which must not block: event only updates a map and signals.
type watches struct {
	mu      sync.Mutex
	armed   map[watchKey]bool
	changed chan struct{} // capacity 1: one pending signal stands for any number of changes
}

func newWatches() *watches {
	return &watches{armed: map[watchKey]bool{}, changed: make(chan struct{}, 1)}
}

// arm marks a watch as set before the request that sets it, so that an
// event arriving before the reply cannot be lost; it reports whether the
// watch was not set already.
func (w *watches) arm(path string, kind watchKind) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := watchKey{path, kind}
	if w.armed[k] {
		return false
	}
	w.armed[k] = true
	return true
}

func (w *watches) disarm(path string, kind watchKind) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.armed, watchKey{path, kind})
}

// event is go-zookeeper's event callback: the fired watches (as in
// go-zookeeper's notifyWatches) are no longer set.
func (w *watches) event(ev zk.Event) {
	w.mu.Lock()
	switch ev.Type {
	case zk.EventNodeDataChanged:
		delete(w.armed, watchKey{ev.Path, watchData})
	case zk.EventNodeChildrenChanged:
		delete(w.armed, watchKey{ev.Path, watchChildren})
	case zk.EventNodeDeleted:
		delete(w.armed, watchKey{ev.Path, watchData})
		delete(w.armed, watchKey{ev.Path, watchChildren})
	case zk.EventNotWatching: // session expired or connection closed: no watch is left
		w.armed = map[watchKey]bool{}
	case zk.EventSession:
		if ev.State != zk.StateHasSession {
			w.mu.Unlock()
			return
		}
		// (Re)connected: read again, in case the server was unreachable
		// while the last read failed.
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}
