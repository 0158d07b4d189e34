package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
)

// Expected versions with a meaning of their own, for Set, SetOverride and
// DeleteOverride. Any other negative version is ErrInvalid.
const (
	// Absent: the record must not exist yet; the write creates it.
	Absent int32 = -1
	// AnyVersion: write (or delete) whatever version is there, creating
	// the record if it is absent. No compare-and-set: the last writer wins.
	AnyVersion int32 = -2
)

// Options configures a Store.
type Options struct {
	// Root is the cluster's znode root (default cluster.DefaultRoot); the
	// configs live under <Root>/config.
	Root string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Store reads, writes and watches the configs of services: a record per
// service and an override per process, merged. It borrows a cluster.Session
// (and an actor system, to send subscribers their configs); it manages no
// connection of its own.
type Store struct {
	system *actor.ActorSystem
	s      *cluster.Session
	root   string
	log    *slog.Logger

	life    context.Context // ends with Close: subscriptions' requests end with it
	endLife context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	spares map[string][]<-chan zk.Event // by path: watches ended subscriptions left armed
	closed bool
}

// NewStore returns a Store on session s for the cluster under opts.Root.
// It makes no request: znodes are created by the first write.
func NewStore(system *actor.ActorSystem, s *cluster.Session, opts Options) (*Store, error) {
	if opts.Root == "" {
		opts.Root = cluster.DefaultRoot
	}
	if err := cluster.ValidateRoot(opts.Root); err != nil {
		return nil, fmt.Errorf("zkactor: config store: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st := &Store{
		system: system,
		s:      s,
		root:   opts.Root,
		log:    opts.Logger.With("recipe", "config"),
		subs:   map[*subscription]struct{}{},
		spares: map[string][]<-chan zk.Event{},
	}
	st.life, st.endLife = context.WithCancel(context.Background())
	return st, nil
}

// Close ends every subscription and waits, within ctx, until their
// goroutines have stopped. It does not close the session. It is idempotent.
func (st *Store) Close(ctx context.Context) error {
	st.mu.Lock()
	st.closed = true
	st.spares = nil
	subs := make([]*subscription, 0, len(st.subs))
	for sub := range st.subs {
		subs = append(subs, sub)
	}
	st.mu.Unlock()
	st.endLife()
	for _, sub := range subs {
		sub.stop()
	}
	done := make(chan struct{})
	go func() {
		st.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkactor: close config store: %w", context.Cause(ctx))
	}
}

// ConfigPath is the parent of every service's config znode.
func (st *Store) ConfigPath() string { return st.root + "/config" }

// ServicePath is the znode of a service's config record.
func (st *Store) ServicePath(service string) string { return st.ConfigPath() + "/" + service }

// OverridesPath is the parent of a service's overrides.
func (st *Store) OverridesPath(service string) string { return st.ServicePath(service) + "/overrides" }

// OverridePath is the znode of one process's override.
func (st *Store) OverridePath(service, process string) string {
	return st.OverridesPath(service) + "/" + process
}

func validNames(op, service, process string, processRequired bool) error {
	if err := cluster.ValidateName(service); err != nil {
		return fmt.Errorf("zkactor: config %s %q: service: %w", op, service, err)
	}
	if process == "" && !processRequired {
		return nil
	}
	if err := cluster.ValidateName(process); err != nil {
		return fmt.Errorf("zkactor: config %s %q/%q: process: %w", op, service, process, err)
	}
	return nil
}

// Get returns the merged config of process in service, with both parts as
// read and their versions. process "" reads the service's record alone. A
// service without a record reads as the empty object
// (Config.ServiceRecord.Exists false). The two znodes are read one after
// the other, without a watch; a Subscribe delivers merged configs of parts
// that held together. A part whose data is not a Record is an error
// wrapping ErrBadRecord.
func (st *Store) Get(ctx context.Context, service, process string) (*configv1.Config, error) {
	if err := validNames("get", service, process, false); err != nil {
		return nil, err
	}
	svc, ov, err := st.readParts(ctx, service, process, false)
	if err != nil {
		return nil, fmt.Errorf("zkactor: config get %q/%q: %w", service, process, err)
	}
	cfg := merged(service, process, svc, ov)
	if cfg.Error != "" {
		return nil, fmt.Errorf("zkactor: config get %q/%q: %w: %s", service, process, ErrBadRecord, cfg.Error)
	}
	return cfg, nil
}

// part is one record as read, with the watch the read left (if asked for).
type part struct {
	pb    *configv1.Part // Values nil when absent or unusable
	watch <-chan zk.Event
}

// readParts reads the service's record and (unless process is "") the
// process's override.
func (st *Store) readParts(ctx context.Context, service, process string, watch bool) (svc, ov *part, err error) {
	if svc, err = st.readPart(ctx, st.ServicePath(service), watch); err != nil {
		return nil, nil, err
	}
	if process == "" {
		return svc, &part{pb: &configv1.Part{Version: Absent}}, nil
	}
	if ov, err = st.readPart(ctx, st.OverridePath(service, process), watch); err != nil {
		return nil, nil, err
	}
	return svc, ov, nil
}

// readPart reads one config znode, leaving a watch when asked: a data
// watch when it exists, an exists watch when it does not, so that its
// creation is seen. An absent znode's revision is the pzxid of its nearest
// existing ancestor: the zxid of the last create or delete among that
// ancestor's children, which is at or after the znode's own deletion.
//
// When an ended subscription left an unfired watch on p, the read takes it
// over instead of setting one more (see keepSpare): armed before the read
// and not fired, it fires for every change after the read, and one that
// fired before the read's reply is seen by the caller's check of its
// watches after the read.
func (st *Store) readPart(ctx context.Context, p string, watch bool) (*part, error) {
	if !watch {
		return st.readPartOnce(ctx, p, false)
	}
	spare := st.takeSpare(p)
	if spare == nil {
		return st.readPartOnce(ctx, p, true)
	}
	out, err := st.readPartOnce(ctx, p, false)
	if err != nil {
		st.keepSpare(p, spare)
		return nil, err
	}
	out.watch = spare
	return out, nil
}

// keepSpare keeps a watch on p that nobody waits on any more (its
// subscription ended) for the next subscription's read of p.
// go-zookeeper cannot remove a watch: each one stays in the client until
// its znode changes, so without this every Subscribe on a config that does
// not change would leave two more behind.
func (st *Store) keepSpare(p string, w <-chan zk.Event) {
	if w == nil || spent(w) {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.spares != nil {
		st.spares[p] = append(st.spares[p], w)
	}
}

// takeSpare returns an unfired watch kept on p, or nil.
func (st *Store) takeSpare(p string) <-chan zk.Event {
	st.mu.Lock()
	defer st.mu.Unlock()
	for ws := st.spares[p]; len(ws) > 0; ws = st.spares[p] {
		w := ws[len(ws)-1]
		if len(ws) == 1 {
			delete(st.spares, p)
		} else {
			st.spares[p] = ws[:len(ws)-1]
		}
		if !spent(w) {
			return w
		}
	}
	return nil
}

// spent reports a watch that fired (or ended with the session). Nobody
// else waits on a kept watch, so taking its event loses nothing.
func spent(w <-chan zk.Event) bool {
	select {
	case <-w:
		return true
	default:
		return false
	}
}

func (st *Store) readPartOnce(ctx context.Context, p string, watch bool) (*part, error) {
	for {
		var (
			data []byte
			stat *zk.Stat
			w    <-chan zk.Event
		)
		err := st.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			if watch {
				data, stat, w, err = c.GetW(p)
			} else {
				data, stat, err = c.Get(p)
			}
			return err
		})
		if err == nil {
			out := &part{pb: &configv1.Part{Exists: true, Version: stat.Version, Revision: stat.Mzxid}, watch: w}
			rec, err := decode(data)
			if err != nil {
				out.pb.Error = fmt.Sprintf("%s (version %d): %v", p, stat.Version, err)
			} else {
				out.pb.Values = rec.GetValues()
			}
			return out, nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, zkError(err)
		}
		var exists bool
		err = st.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			if watch {
				exists, _, w, err = c.ExistsW(p)
			} else {
				exists, _, err = c.Exists(p)
			}
			return err
		})
		if err != nil {
			return nil, zkError(err)
		}
		if exists {
			continue // created meanwhile
		}
		rev, err := st.ancestorRevision(ctx, p)
		if err != nil {
			return nil, err
		}
		return &part{pb: &configv1.Part{Version: Absent, Revision: rev}, watch: w}, nil
	}
}

// ancestorRevision is the pzxid of p's nearest existing ancestor.
func (st *Store) ancestorRevision(ctx context.Context, p string) (int64, error) {
	for dir := path.Dir(p); ; dir = path.Dir(dir) {
		var (
			exists bool
			stat   *zk.Stat
		)
		err := st.s.Do(ctx, cluster.Op{Name: "exists", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			exists, stat, err = c.Exists(dir)
			return err
		})
		if err != nil {
			return 0, zkError(err)
		}
		if exists || dir == "/" {
			return stat.Pzxid, nil
		}
	}
}

// merged builds the Config of two parts. A part with unusable data
// contributes nothing and its error is the Config's.
func merged(service, process string, svc, ov *part) *configv1.Config {
	cfg := &configv1.Config{
		Service:       service,
		Process:       process,
		ServiceRecord: svc.pb,
		Override:      ov.pb,
		Revision:      max(svc.pb.GetRevision(), ov.pb.GetRevision()),
		Values:        Merge(svc.pb.GetValues(), ov.pb.GetValues()),
	}
	var errs []string
	for _, p := range []*part{svc, ov} {
		if p.pb.GetError() != "" {
			errs = append(errs, p.pb.GetError())
		}
	}
	cfg.Error = strings.Join(errs, "; ")
	return cfg
}

// zkError marks an ACL refusal with ErrNotAllowed.
func zkError(err error) error {
	if errors.Is(err, zk.ErrNoAuth) {
		return fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return err
}
