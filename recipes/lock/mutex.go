package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
	lockv1 "github.com/zkactor/zkactor/proto/recipes/lock/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// Sentinel errors for the decisions a caller makes. Everything else is
// wrapped with the lock's name, the operation and the znode path.
var (
	// ErrLocked: TryLock found the lock held (or waited for) by another.
	ErrLocked = errors.New("zkactor: lock is held by another")
	// ErrLost: the lock was held and is no more (Held.Err tells why).
	ErrLost = errors.New("zkactor: lock lost")
)

// backoff is how long a waiter waits before it retries a request that
// failed, unless something wakes it first.
const backoff = 100 * time.Millisecond

// Options configures a Mutex.
type Options struct {
	// NodeID is recorded in the waiter znodes, for operators; optional.
	NodeID string
	// Holder is recorded in the waiter znodes as the actor the lock is
	// taken for; optional. See Held.Follow to tie the lock to it.
	Holder *actor.PID
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Mutex is a lock named name under a cluster's root, taken on a borrowed
// session. It is safe for concurrent use: each Lock or TryLock call queues
// on its own, as another process would.
type Mutex struct {
	s    *cluster.Session
	root string
	name string
	dir  string
	data []byte
	log  *slog.Logger
}

// New returns the mutex name under root (a cluster root such as "/zkactor")
// on session s. It makes no request. The name must pass
// cluster.ValidateName, the root cluster.ValidateRoot.
func New(s *cluster.Session, root, name string, opts Options) (*Mutex, error) {
	if s == nil {
		return nil, fmt.Errorf("lock %q: no session", name)
	}
	if err := cluster.ValidateRoot(root); err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	rec := &lockv1.Waiter{Name: name, NodeId: opts.NodeID, Since: timestamppb.Now()}
	if opts.Holder != nil {
		rec.Holder = &pb.PID{Address: opts.Holder.Address, Id: opts.Holder.Id}
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Mutex{
		s: s, root: root, name: name, dir: Path(root, name), data: data,
		log: log.With("lock", name),
	}, nil
}

// Path is the container znode under which the waiters of lock name queue.
func Path(root, name string) string { return root + "/locks/" + name }

// Name is the lock's name.
func (m *Mutex) Name() string { return m.name }

// Lock waits until this caller holds the lock, or ctx ends. It queues a
// waiter znode that watches only its predecessor, and returns once the
// waiter heads the queue and the session's lease holds (see the package
// documentation). If ctx ends first, the waiter's znode is deleted and
// ctx's error is returned. A session that expires while waiting makes the
// call queue again, at the back.
func (m *Mutex) Lock(ctx context.Context) (*Held, error) { return m.acquire(ctx, false) }

// TryLock takes the lock if nobody holds it or waits for it, and else
// returns an error wrapping ErrLocked at once, leaving nothing behind.
// It still waits, within ctx, for ZooKeeper's answers and for the session's
// lease.
func (m *Mutex) TryLock(ctx context.Context) (*Held, error) { return m.acquire(ctx, true) }

func (m *Mutex) acquire(ctx context.Context, try bool) (*Held, error) {
	release := m.s.HoldLease()
	w := &waiter{m: m, guid: protected.NewGUID()}
	if err := w.run(ctx, try); err != nil {
		w.abandon(ctx)
		release()
		return nil, err
	}
	m.log.Debug("locked", "path", w.path, "token", w.token)
	return newHeld(m, w, release), nil
}
