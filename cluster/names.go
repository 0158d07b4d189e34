package cluster

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength bounds service and global names, in bytes. ZooKeeper paths
// have no hard limit of their own, but a name ends up in every lookup path
// and in log lines, so it is kept short.
const MaxNameLength = 255

// DefaultRoot is the znode under which a cluster keeps everything.
const DefaultRoot = "/zkactor"

// ValidateName reports whether name can be used as a service or global name:
// non-empty valid UTF-8 of at most MaxNameLength bytes, with no '/', no
// control or other unprintable characters, and not "." or "..". The error
// wraps ErrBadName and quotes the name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrBadName, len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadName, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved", ErrBadName, name)
	case name == "zookeeper":
		// ZooKeeper reserves /zookeeper only at the top level, but refusing
		// it everywhere keeps the rule simple to state.
		return fmt.Errorf("%w: %q is reserved", ErrBadName, name)
	}
	for _, r := range name {
		if r == '/' {
			return fmt.Errorf("%w: %q contains '/'", ErrBadName, name)
		}
		if !unicode.IsPrint(r) || unicode.IsSpace(r) && r != ' ' {
			return fmt.Errorf("%w: %q contains the unprintable character %U", ErrBadName, name, r)
		}
	}
	return nil
}

// validateRoot checks a znode root such as "/zkactor" or "/apps/zkactor".
func validateRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" || strings.HasSuffix(root, "/") || path.Clean(root) != root {
		return fmt.Errorf("%w: root %q must be an absolute znode path like /zkactor", ErrBadName, root)
	}
	for _, part := range strings.Split(root[1:], "/") {
		if err := ValidateName(part); err != nil {
			return fmt.Errorf("root %q: %w", root, err)
		}
	}
	return nil
}

// Layout names the znodes of one cluster under its root. See the package
// documentation for the picture.
type Layout struct{ Root string }

// NodesPath is the parent of the per-node ephemeral znodes.
func (l Layout) NodesPath() string { return l.Root + "/nodes" }

// NodePath is the ephemeral znode of one live node.
func (l Layout) NodePath(nodeID string) string { return l.NodesPath() + "/" + nodeID }

// ServicesPath is the parent of every service.
func (l Layout) ServicesPath() string { return l.Root + "/services" }

// ServicePath is the container znode that holds one service's registrations.
func (l Layout) ServicePath(name string) string { return l.ServicesPath() + "/" + name }

// RegistrationPath is the ephemeral znode of one registration.
func (l Layout) RegistrationPath(name, registrationID string) string {
	return l.ServicePath(name) + "/" + registrationID
}

// GlobalsPath is the parent of every election.
func (l Layout) GlobalsPath() string { return l.Root + "/globals" }

// GlobalPath is the container znode under which the candidates for one
// global name queue.
func (l Layout) GlobalPath(name string) string { return l.GlobalsPath() + "/" + name }
