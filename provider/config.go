package provider

import (
	"errors"
	"log/slog"
	"time"

	"github.com/zkactor/zkactor/cluster"
)

// DefaultActivationTimeout bounds one activation request to a member when
// Config.ActivationTimeout is not set.
const DefaultActivationTimeout = 5 * time.Second

// Config configures a Provider.
type Config struct {
	// Servers is the ZooKeeper ensemble, "host:port" each. Required.
	Servers []string
	// Root is the znode root of the cluster (default cluster.DefaultRoot).
	// Members and clients of one protoactor cluster share it.
	Root string
	// SessionTimeout is the requested ZooKeeper session timeout (default
	// cluster.DefaultSessionTimeout). A member whose session expires is dead
	// (see the package documentation).
	SessionTimeout time.Duration
	// RequestTimeout bounds a ZooKeeper request whose caller gave no
	// deadline (default cluster.DefaultRequestTimeout).
	RequestTimeout time.Duration
	// ActivationTimeout bounds one identity lookup that has to activate:
	// the request to the chosen member and its answer (default
	// DefaultActivationTimeout).
	ActivationTimeout time.Duration
	// Auth, when set, is used for the session and the ACLs of the znodes.
	Auth *cluster.DigestAuth
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if len(c.Servers) == 0 {
		return errors.New("zkactor provider: Config.Servers is empty")
	}
	if c.Root == "" {
		c.Root = cluster.DefaultRoot
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = cluster.DefaultSessionTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = cluster.DefaultRequestTimeout
	}
	if c.ActivationTimeout <= 0 {
		c.ActivationTimeout = DefaultActivationTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Sentinel errors for the decisions a caller makes. Bad kind or identity
// names are cluster.ErrBadName.
var (
	// ErrDead: the member's ZooKeeper session ended (expired, or its znode
	// was deleted by someone else). The incarnation is over; Supervise
	// starts a new one.
	ErrDead = errors.New("zkactor provider: the member is dead (its ZooKeeper session ended)")
	// ErrNoMember: no live member hosts the kind.
	ErrNoMember = errors.New("zkactor provider: no member hosts the kind")
	// ErrActivationFailed: the chosen member could not activate the
	// identity (it is shutting down, its lease ran out, or ZooKeeper
	// refused); a later lookup tries again.
	ErrActivationFailed = errors.New("zkactor provider: activation failed")
	// ErrStarted: StartMember or StartClient was called twice.
	ErrStarted = errors.New("zkactor provider: already started")
	// ErrShutdown: the provider was shut down.
	ErrShutdown = errors.New("zkactor provider: shut down")
)
