package global

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
)

// The queue as a resource (PettingZoo's leader queue): the candidates
// waiting behind a global's leader are its spare capacity. Queue reads
// them, Place tells this node's candidacy where it stands, ObserveQueue
// streams the size. All three count exactly what the candidates count
// (parseCandidate's shape, takesPart's ephemeral rule), so that a
// monitor and the election agree on who is queued.

// Candidate is one candidate in a global's queue, as Queue reads it.
type Candidate struct {
	// Position is the candidate's place: 0 heads the queue (it leads, or
	// is about to), 1 is next, and so on.
	Position int
	// Znode is the candidate znode's name, _c_<guid>-c-<sequence>.
	Znode string
	// Sequence is the sequence number ZooKeeper gave the znode; the queue
	// is in sequence order.
	Sequence int64
	// Epoch is the znode's creation zxid: the epoch of its term, if it
	// leads.
	Epoch int64
	// PID is the global's PID if this candidate is elected, and NodeID the
	// node it stands for; nil and "" when the znode's data is not a
	// Candidate record, or its ACL does not let this session read it (it
	// still holds its place).
	PID    *actor.PID
	NodeID string
	// Session is the ZooKeeper session that owns the znode.
	Session int64
}

// Queue reads the queue of the global name: every candidate, in order, with
// its node, PID, position, sequence and epoch. It reads ZooKeeper each time
// (one listing and one read per candidate), and caches nothing.
func (e *Elections) Queue(ctx context.Context, name string) ([]Candidate, error) {
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("zkactor: read queue %q: %w", name, err)
	}
	q, err := e.readQueue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("zkactor: read queue %q: %w", name, err)
	}
	return q, nil
}

// Place returns the position of this node's candidacy for name in the
// queue (0: it heads it). It is an error wrapping ErrNotCandidate when this
// node does not stand for name, or when its candidacy has no znode in the
// queue right now (it is entering, or re-entering after a session expiry).
func (e *Elections) Place(ctx context.Context, name string) (int, error) {
	if err := cluster.ValidateName(name); err != nil {
		return 0, fmt.Errorf("zkactor: place in queue %q: %w", name, err)
	}
	e.mu.Lock()
	c := e.candidacies[name]
	e.mu.Unlock()
	if c == nil {
		return 0, fmt.Errorf("zkactor: place in queue %q: %w", name, ErrNotCandidate)
	}
	q, err := e.readQueue(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("zkactor: place in queue %q: %w", name, err)
	}
	// The candidacy's znode is the first of its GUID that the current
	// session owns (as findOwn picks it); others are strays being removed.
	session := e.s.ID()
	for _, cand := range q {
		if guid, _, _ := parseCandidate(cand.Znode); guid == c.guid && cand.Session == session {
			return cand.Position, nil
		}
	}
	return 0, fmt.Errorf("zkactor: place in queue %q: %w (no znode of this node's candidacy in the queue right now)", name, ErrNotCandidate)
}

// ObserveQueue streams the size of name's queue (the candidates, the
// leader included): the current size first, then every change, until ctx
// ends or Elections closes; then the channel is closed. A slow reader sees
// only the latest. It is a channel, as Observe is, because its readers are
// monitors rather than actors. A change costs one listing and one exists
// per candidate that joined, whatever the queue's length (one per
// candidate when the directory's children version shows changes that the
// names hide: a znode deleted and created again under its name, or one
// that came and went between two listings). A bad name gives a channel
// closed at once.
func (e *Elections) ObserveQueue(ctx context.Context, name string) <-chan int {
	if err := cluster.ValidateName(name); err != nil {
		e.log.Warn("observe queue: bad name", "name", name, "err", err)
		out := make(chan int)
		close(out)
		return out
	}
	memo := &queueMemo{}
	return observe(e, ctx, "observe queue", name, func(ctx context.Context) (int, <-chan zk.Event, error) {
		return e.queueSize(ctx, name, memo)
	}, func(a, b int) bool { return a == b })
}

// readQueue lists name's queue and reads every candidate in it. A znode
// gone meanwhile, or that does not take part (takesPart), is passed over.
func (e *Elections) readQueue(ctx context.Context, name string) ([]Candidate, error) {
	dir := e.layout.GlobalPath(name)
	var names []string
	err := e.s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		names, _, err = c.Children(dir)
		return err
	})
	if isNoNode(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Candidate
	for _, n := range queue(names) {
		p := dir + "/" + n
		var (
			data []byte
			stat *zk.Stat
		)
		err := e.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			data, stat, err = c.Get(p)
			return err
		})
		if errors.Is(err, zk.ErrNoAuth) {
			// Another client's znode that this session may not read: it
			// takes part as any other (takesPart reads only its owner,
			// which exists shows without permission), with no record.
			// Failing instead would hide the whole queue while it lives.
			data = nil
			err = e.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
				var err error
				var ok bool
				ok, stat, err = c.Exists(p)
				if err == nil && !ok {
					err = zk.ErrNoNode
				}
				return err
			})
		}
		if isNoNode(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !takesPart(stat) {
			continue
		}
		_, seq, _ := parseCandidate(n)
		cand := Candidate{Position: len(out), Znode: n, Sequence: seq, Epoch: stat.Czxid, Session: stat.EphemeralOwner}
		if rec, err := records.Candidate(data); err == nil {
			cand.PID = actor.NewPID(rec.Pid.Address, rec.Pid.Id)
			cand.NodeID = rec.NodeId
		} else {
			e.log.Debug("a queued candidate's data is not a Candidate record", "path", p, "err", err)
		}
		out = append(out, cand)
	}
	return out, nil
}

// queueMemo is what ObserveQueue learnt of a queue's znodes: whether each
// takes part, and the directory's children at that listing. A znode's
// owner never changes, and ZooKeeper never reuses a sequence number in
// one life of the directory (czxid), but another client may delete a
// znode and create one under the same name (a persistent one replaced by
// an ephemeral one, say) between two listings. So the memo is trusted
// only when the directory's children version moved by exactly the
// creates and deletes the names show; otherwise every name is looked at
// again.
type queueMemo struct {
	czxid     int64
	cversion  int32
	children  map[string]bool // every child at the last listing
	takesPart map[string]bool
}

// provesSame reports whether a listing (the directory's stat and its
// children) shows no change beyond its names since the memo's listing.
func (m *queueMemo) provesSame(stat *zk.Stat, listed map[string]bool) bool {
	if m.takesPart == nil || m.czxid != stat.Czxid {
		return false
	}
	changes := 0
	for n := range listed {
		if !m.children[n] {
			changes++
		}
	}
	for n := range m.children {
		if !listed[n] {
			changes++
		}
	}
	return int64(stat.Cversion)-int64(m.cversion) == int64(changes)
}

// queueSize lists name's queue with a watch and counts the candidates that
// take part, looking only at names the memo does not know.
func (e *Elections) queueSize(ctx context.Context, name string, memo *queueMemo) (int, <-chan zk.Event, error) {
	dir := e.layout.GlobalPath(name)
	names, stat, watch, err := e.listWatched(ctx, dir)
	if err != nil {
		return 0, nil, err
	}
	if stat == nil { // no queue yet
		*memo = queueMemo{}
		return 0, watch, nil
	}
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
	}
	if !memo.provesSame(stat, listed) {
		memo.takesPart = map[string]bool{}
	}
	memo.czxid, memo.cversion, memo.children = stat.Czxid, stat.Cversion, listed
	size := 0
	for _, n := range queue(names) {
		part, ok := memo.takesPart[n]
		if !ok {
			p := dir + "/" + n
			var st *zk.Stat
			err := e.s.Do(ctx, cluster.Op{Name: "exists", Path: p, Idempotent: true}, func(c *zk.Conn) error {
				var err error
				_, st, err = c.Exists(p)
				return err
			})
			if err != nil {
				return 0, nil, err
			}
			if st == nil || st.Czxid == 0 {
				continue // gone meanwhile: the watch fires for it
			}
			part = takesPart(st)
			memo.takesPart[n] = part
		}
		if part {
			size++
		}
	}
	for n := range memo.takesPart {
		if !listed[n] {
			delete(memo.takesPart, n)
		}
	}
	return size, watch, nil
}
