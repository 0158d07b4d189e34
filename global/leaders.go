package global

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// candidateMark separates a candidate znode's protection prefix from its
// sequence number: _c_<guid>-c-0000000042.
const candidateMark = "-c-"

// sequenceOf returns the sequence number of a candidate znode name, or
// false for a name that is not a candidate's.
func sequenceOf(name string) (int64, bool) {
	i := strings.LastIndex(name, candidateMark)
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(name[i+len(candidateMark):], 10, 64)
	return n, err == nil
}

// queue orders candidate znode names by sequence number, dropping names
// that are not candidates'.
func queue(names []string) []string {
	type cand struct {
		name string
		seq  int64
	}
	var cs []cand
	for _, n := range names {
		if seq, ok := sequenceOf(n); ok {
			cs = append(cs, cand{n, seq})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// readLeader reads who heads the queue of dir, and leaves a watch on dir's
// children (or on dir itself when it does not exist). A head whose data
// zkactor cannot read is skipped with a warning: the next one is taken.
func (e *Elections) readLeader(ctx context.Context, name string) (*Leader, <-chan zk.Event, error) {
	dir := e.layout.GlobalPath(name)
	for {
		var (
			names []string
			watch <-chan zk.Event
		)
		err := e.s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			names, _, watch, err = c.ChildrenW(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			var exists bool
			err = e.s.Do(ctx, cluster.Op{Name: "exists", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
				var err error
				exists, _, watch, err = c.ExistsW(dir)
				return err
			})
			if err != nil {
				return nil, nil, err
			}
			if exists {
				continue
			}
			return &Leader{Name: name}, watch, nil
		}
		if err != nil {
			return nil, nil, err
		}
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
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone meanwhile; the watch fires for it
			}
			if err != nil {
				return nil, nil, err
			}
			rec := &pb.Candidate{}
			if err := proto.Unmarshal(data, rec); err != nil || rec.GetPid().GetAddress() == "" || rec.GetPid().GetId() == "" {
				e.log.Warn("skipping a candidate zkactor cannot read (foreign or corrupt data)", "path", p, "bytes", len(data), "err", err)
				continue
			}
			return &Leader{
				Name:   name,
				PID:    actor.NewPID(rec.Pid.Address, rec.Pid.Id),
				NodeID: rec.NodeId,
				Epoch:  stat.Czxid,
			}, watch, nil
		}
		return &Leader{Name: name}, watch, nil
	}
}

// leaderCache serves WhereisGlobal: name → *Leader, filled on a miss and
// swept when the watch on the name's queue fires (a candidate joined or
// left, or the session ended). A hit is a sync.Map load.
type leaderCache struct {
	e       *Elections
	entries sync.Map
}

func (lc *leaderCache) get(ctx context.Context, name string) (*Leader, error) {
	if l, ok := lc.entries.Load(name); ok {
		return l.(*Leader), nil
	}
	l, watch, err := lc.e.readLeader(ctx, name)
	if err != nil {
		return nil, err
	}
	lc.entries.Store(name, l)
	lc.e.wg.Add(1)
	go func() {
		defer lc.e.wg.Done()
		select {
		case <-watch:
		case <-lc.e.quit:
		}
		lc.entries.CompareAndDelete(name, l)
	}()
	return l, nil
}

func (lc *leaderCache) evict(name string) { lc.entries.Delete(name) }

func (lc *leaderCache) sweep() {
	lc.entries.Range(func(k, _ any) bool { lc.entries.Delete(k); return true })
}
