package global

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
)

// readLeader reads who heads the queue of dir, and leaves a watch on dir's
// children (or on dir itself when it does not exist). It follows the rule
// the candidates follow (see takesPart).
func (e *Elections) readLeader(ctx context.Context, name string) (*Leader, <-chan zk.Event, error) {
	dir := e.layout.GlobalPath(name)
	names, _, watch, err := e.listWatched(ctx, dir)
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
		if isNoNode(err) {
			continue // gone meanwhile; the watch fires for it
		}
		if err != nil {
			return nil, nil, err
		}
		if !takesPart(stat) {
			continue // persistent: not a candidate
		}
		rec, err := records.Candidate(data)
		if err != nil {
			e.log.Warn("the head of a global's queue is not a candidate zkactor can read: no global to name while it is there",
				"path", p, "bytes", len(data), "err", err)
			return &Leader{Name: name}, watch, nil
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

// listWatched lists dir's children with a watch on them or, when dir does
// not exist, leaves a watch on its creation (names and stat are nil then),
// so that the caller hears of the next change either way.
func (e *Elections) listWatched(ctx context.Context, dir string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	for {
		var (
			names []string
			stat  *zk.Stat
			watch <-chan zk.Event
		)
		err := e.s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			names, stat, watch, err = c.ChildrenW(dir)
			return err
		})
		if !isNoNode(err) {
			if err != nil {
				return nil, nil, nil, err
			}
			return names, stat, watch, nil
		}
		var exists bool
		err = e.s.Do(ctx, cluster.Op{Name: "exists", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			exists, _, watch, err = c.ExistsW(dir)
			return err
		})
		if err != nil {
			return nil, nil, nil, err
		}
		if !exists {
			return nil, nil, watch, nil
		}
		// Created meanwhile: list it.
	}
}

func isNoNode(err error) bool { return errors.Is(err, zk.ErrNoNode) }
