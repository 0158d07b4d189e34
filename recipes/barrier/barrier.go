package barrier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
	"github.com/zkactor/zkactor/internal/zkutil"
	barrierv1 "github.com/zkactor/zkactor/proto/recipes/barrier/v1"
)

// Sentinel errors for the decisions a caller makes. Everything else is
// wrapped with the barrier's name, the operation and the znode path.
var (
	// ErrEntered: Enter on a Barrier that is inside already.
	ErrEntered = errors.New("zkactor: already inside the barrier")
	// ErrNotEntered: Leave on a Barrier that has not entered.
	ErrNotEntered = errors.New("zkactor: not inside the barrier")
)

// backoff is how long a participant waits before it retries a request that
// failed.
const backoff = 100 * time.Millisecond

// readyName is the znode that opens the barrier, beside the participants.
const readyName = "ready"

// Options configures a Barrier.
type Options struct {
	// NodeID is recorded in the participant znodes, for operators; optional.
	NodeID string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Barrier is one participant of the double barrier name: Enter returns once
// size participants have entered, Leave once all of them have left. A
// Barrier is used by one goroutine at a time (calls are serialised); each
// process or actor that takes part has its own.
type Barrier struct {
	s    *cluster.Session
	root string
	name string
	dir  string
	size int
	log  *slog.Logger
	node string

	mu     sync.Mutex // serialises Enter and Leave
	inside bool
	p      *participant // while inside
}

// New returns a participant of the barrier name under root (a cluster root
// such as "/zkactor") on session s, for a barrier of size participants.
// It makes no request. Every participant must agree on size.
func New(s *cluster.Session, root, name string, size int, opts Options) (*Barrier, error) {
	if s == nil {
		return nil, fmt.Errorf("barrier %q: no session", name)
	}
	if err := cluster.ValidateRoot(root); err != nil {
		return nil, fmt.Errorf("barrier %q: %w", name, err)
	}
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	if size < 1 || size > math.MaxInt32 {
		// Ready records the size as an int32.
		return nil, fmt.Errorf("barrier %q: size %d, want 1 to %d", name, size, math.MaxInt32)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Barrier{
		s: s, root: root, name: name, dir: Path(root, name), size: size, node: opts.NodeID,
		log: log.With("barrier", name),
	}, nil
}

// Path is the container znode that holds the participants of barrier name
// and its ready znode.
func Path(root, name string) string { return root + "/barriers/" + name }

// Enter adds this participant and returns once size participants have
// entered (this one included), or ctx ends: then its znode is deleted and
// ctx's error returned. A participant whose session expires while it waits
// enters again on the new session; one whose session ends while it waits
// does not count. A late arrival passes at once while at least size
// participants are inside.
func (b *Barrier) Enter(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inside {
		return fmt.Errorf("barrier %q: %w", b.name, ErrEntered)
	}
	data, err := proto.Marshal(&barrierv1.Participant{Name: b.name, NodeId: b.node, Since: timestamppb.Now()})
	if err != nil {
		return fmt.Errorf("barrier %q: %w", b.name, err)
	}
	p := &participant{b: b, guid: protected.NewGUID(), data: data}
	if err := p.enter(ctx); err != nil {
		p.abandon(ctx)
		return fmt.Errorf("barrier %q: enter: %w", b.name, err)
	}
	b.inside, b.p = true, p
	b.log.Debug("entered", "path", p.path)
	return nil
}

// Leave removes this participant and returns once every participant has
// left, or ctx ends (call it again then). A participant whose session ended
// while inside is gone already: Leave does not wait for it, and its own
// Leave only waits for the others.
func (b *Barrier) Leave(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.inside {
		return fmt.Errorf("barrier %q: %w", b.name, ErrNotEntered)
	}
	if err := b.p.leave(ctx); err != nil {
		return fmt.Errorf("barrier %q: leave: %w", b.name, err)
	}
	b.inside, b.p = false, nil
	b.log.Debug("left")
	return nil
}

// open reports whether the barrier is open for the participant of sequence
// seq: ready exists and admits it. It leaves a watch on ready (its creation,
// change or deletion wakes the participant), and returns ready's version
// (-1 when absent) for a participant that renews it.
func (p *participant) open(ctx context.Context, seq int64) (ok bool, version int32, watch <-chan zk.Event, err error) {
	s, path := p.b.s, p.b.dir+"/"+readyName
	// Each request writes variables of its own, read only once Do returned
	// its outcome: a request Do gave up on (ctx ended) may still complete
	// and write them, and must not write what open returns (the results,
	// or the first request's stat while the second reads it).
	var (
		found bool
		stat  *zk.Stat
		ch    <-chan zk.Event
	)
	err = s.Do(ctx, cluster.Op{Name: "exists", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		found, stat, ch, err = conn.ExistsW(path)
		return err
	})
	if err != nil {
		return false, 0, nil, err
	}
	watch = ch
	var data []byte
	if found {
		// The watch set above covers the data read here.
		var getStat *zk.Stat
		err = s.Do(ctx, cluster.Op{Name: "get", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
			var err error
			data, getStat, err = conn.Get(path)
			return err
		})
		if err == nil {
			stat = getStat
		}
		switch {
		case errors.Is(err, zk.ErrNoNode):
			found = false
		case err != nil:
			return false, 0, nil, err
		}
	}
	if !found {
		return false, -1, watch, nil
	}
	var rec barrierv1.Ready
	// A participant always writes a size: an empty record (which any
	// bytes that parse may be) admits nobody, not the sequences up to 0.
	if err := proto.Unmarshal(data, &rec); err != nil || rec.Size < 1 {
		p.b.log.Debug("the ready znode holds no Ready record: ignored", "path", path)
		return false, stat.Version, watch, nil
	}
	return seq <= rec.LastSequence, stat.Version, watch, nil
}

// openUp opens the barrier for everyone up to lastSeq: it creates ready,
// or renews one left over from an earlier round (version ≥ 0). It reports
// false when someone else changed ready meanwhile (look again).
func (p *participant) openUp(ctx context.Context, version int32, lastSeq int64) (bool, error) {
	s, path := p.b.s, p.b.dir+"/"+readyName
	data, err := proto.Marshal(&barrierv1.Ready{Size: int32(p.b.size), Since: timestamppb.Now(), LastSequence: lastSeq})
	if err != nil {
		return false, err
	}
	err = s.Do(ctx, cluster.Op{Name: "open", Path: path}, func(conn *zk.Conn) error {
		if version < 0 {
			_, err := conn.Create(path, data, 0, s.ACL())
			return err
		}
		_, err := conn.Set(path, data, version)
		return err
	})
	switch {
	case err == nil:
		p.b.log.Debug("opened the barrier", "last_sequence", lastSeq)
		return true, nil
	case errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode):
		return false, nil
	}
	return false, err
}

// leave is the second half of the double barrier: the lowest participant
// waits for the highest to go, every other one deletes itself and waits
// for the lowest; the last one deletes ready with itself.
func (p *participant) leave(ctx context.Context) error {
	s := p.b.s
	dead := map[string]bool{} // participant-shaped znodes no session stands behind
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := protected.Children(ctx, s, p.b.dir)
		if err != nil {
			if errors.Is(err, cluster.ErrClosed) {
				return err
			}
			p.sleep(ctx)
			continue
		}
		var q []string
		for _, n := range participants.Order(names) {
			if !dead[n] {
				q = append(q, n)
			}
		}
		me := ""
		if p.path != "" && p.session == s.ID() {
			me = p.path[strings.LastIndexByte(p.path, '/')+1:]
		}
		idx := slices.Index(q, me)
		switch {
		case len(q) == 0:
			return nil
		case idx >= 0 && len(q) == 1:
			return p.deleteLast(ctx)
		case idx > 0:
			if err := p.deleteOwn(ctx); err != nil {
				p.sleep(ctx)
				continue
			}
			q = append(q[:idx:idx], q[idx+1:]...)
		}
		target := q[0]
		if idx == 0 {
			target = q[len(q)-1]
		}
		watch, gone, err := p.watch(ctx, target)
		switch {
		case errors.Is(err, cluster.ErrClosed):
			return err
		case err != nil:
			p.sleep(ctx)
			continue
		case gone:
			continue
		case watch == nil:
			dead[target] = true
			continue
		}
		select {
		case <-watch:
		case <-ctx.Done():
		}
	}
}

// watch leaves a watch on the participant target; gone when it has left
// already, a nil watch when no session stands behind it. A znode this
// session may not read (another client's ACL) gets no watch, and Leave
// polls it after the backoff: an exists watch would be set but, on current
// servers, never fire for it (they deliver no event on a znode the watcher
// may not read).
func (p *participant) watch(ctx context.Context, target string) (<-chan zk.Event, bool, error) {
	path := p.b.dir + "/" + target
	var (
		stat  *zk.Stat
		watch <-chan zk.Event
	)
	err := p.b.s.Do(ctx, cluster.Op{Name: "get", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
		var err error
		_, stat, watch, err = conn.GetW(path)
		return err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	case !protected.TakesPart(stat):
		p.b.log.Debug("passing over a participant znode no session stands behind", "path", path)
		return nil, false, nil
	}
	return watch, false, nil
}

// deleteOwn deletes this participant's znode.
func (p *participant) deleteOwn(ctx context.Context) error {
	path := p.path
	err := p.b.s.Do(ctx, cluster.Op{Name: "delete", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
		return zkutil.Delete(conn, path, -1)
	})
	if err == nil {
		p.path = ""
	}
	return err
}

// deleteLast deletes ready and this participant's znode together (one
// request), or the participant alone when ready is gone already.
func (p *participant) deleteLast(ctx context.Context) error {
	path, ready := p.path, p.b.dir+"/"+readyName
	err := p.b.s.Do(ctx, cluster.Op{Name: "delete", Path: path, Idempotent: true}, func(conn *zk.Conn) error {
		_, err := conn.Multi(&zk.DeleteRequest{Path: ready, Version: -1}, &zk.DeleteRequest{Path: path, Version: -1})
		if errors.Is(err, zk.ErrNoNode) {
			return zkutil.Delete(conn, path, -1)
		}
		return err
	})
	if err == nil {
		p.path = ""
	}
	return err
}
