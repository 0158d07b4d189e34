package cluster

import "errors"

// Sentinel errors for the decisions a caller makes. Everything else is
// wrapped with the operation and the znode path.
var (
	// ErrBadName: a service, global or root name that cannot become a znode path.
	ErrBadName = errors.New("zkactor: bad name")
	// ErrNotConnected: ZooKeeper could not be reached within the caller's
	// deadline (or the session's request timeout when ctx has none).
	ErrNotConnected = errors.New("zkactor: not connected to ZooKeeper")
	// ErrClosed: the session, registry or node was closed.
	ErrClosed = errors.New("zkactor: closed")
	// ErrOwnedElsewhere: an ephemeral znode this node wants exists but
	// belongs to another ZooKeeper session.
	ErrOwnedElsewhere = errors.New("zkactor: znode is owned by another session")
	// ErrNodeIDTaken: another live session holds this node id's znode under
	// <root>/nodes. The registry refuses to join and touches nothing.
	ErrNodeIDTaken = errors.New("zkactor: node id taken")
	// ErrTooLarge: data that would make a znode larger than zkactor allows.
	ErrTooLarge = errors.New("zkactor: data too large")
)
