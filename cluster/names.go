package cluster

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// MaxNameLength bounds service and global names, in bytes. ZooKeeper paths
// have no hard limit of their own, but a name ends up in every lookup path
// and in log lines, so it is kept short.
const MaxNameLength = 255

// DefaultRoot is the znode under which a cluster keeps everything.
const DefaultRoot = "/zkactor"

// ValidateName reports whether name can be used as a service or global name
// or a node id: exactly the path components that both go-zookeeper's
// client-side check and the ZooKeeper server (PathUtils.validatePath)
// accept, bounded to MaxNameLength bytes. That is a non-empty string of
// valid UTF-8, other than "." and "..", without
//   - '/' (it separates components);
//   - U+0000–U+001F and U+007F–U+009F (control characters);
//   - U+D800–U+F8FF (surrogates and the private use area; go-zookeeper
//     refuses U+F000–U+F8FF, the server the whole range);
//   - U+FFF0–U+FFFF (specials, among them U+FFFC and U+FFFD, which is also
//     what invalid UTF-8 decodes to);
//   - anything beyond U+FFFF: the server sees such a character as a UTF-16
//     surrogate pair and refuses it.
//
// The error wraps ErrBadName and quotes the name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrBadName, len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadName, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not a znode name (relative paths are refused)", ErrBadName, name)
	}
	for _, r := range name {
		if r == '/' {
			return fmt.Errorf("%w: %q contains '/'", ErrBadName, name)
		}
		if !zkPathRune(r) {
			return fmt.Errorf("%w: %q contains %U, which ZooKeeper refuses in a path", ErrBadName, name, r)
		}
	}
	return nil
}

// zkPathRune reports whether ZooKeeper accepts r in a path component (the
// server works on UTF-16 code units; go-zookeeper's list is a subset).
func zkPathRune(r rune) bool {
	switch {
	case r <= 0x1f, r >= 0x7f && r <= 0x9f:
		return false
	case r >= 0xd800 && r <= 0xf8ff:
		return false
	case r >= 0xfff0:
		return false
	}
	return true
}

// ValidateRoot reports whether root can be a cluster's znode root, such as
// "/zkactor" or "/apps/zkactor": an absolute path of valid names outside
// ZooKeeper's own /zookeeper. The error wraps ErrBadName.
func ValidateRoot(root string) error { return validateRoot(root) }

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
	if root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/") {
		// ZooKeeper's own subtree (quotas, config).
		return fmt.Errorf("%w: root %q lies in ZooKeeper's reserved /zookeeper", ErrBadName, root)
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
