package global

import (
	"context"
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
)

// SetTestHookDetached sets testHookDetached for the test's duration.
func SetTestHookDetached(t *testing.T, f func(pid *actor.PID)) {
	testHookDetached = f
	t.Cleanup(func() { testHookDetached = nil })
}

// Ending reports how many candidacies Elections keeps as ending (waited
// for by a later candidacy of their name), for the leak test.
func Ending(e *Elections) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ending)
}

// Strays lists the candidate znodes of e's session that no live candidacy
// of e names, and every znode past the first of one candidacy: what a
// stopped, resigned or abandoned candidacy left behind. It reads the tree
// on e's own session, within ctx, and returns nil once e is closed (its
// session's ephemerals end with it).
func Strays(ctx context.Context, e *Elections) ([]string, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, nil
	}
	live := map[string]bool{}
	for _, c := range e.candidacies {
		live[c.guid] = true
	}
	e.mu.Unlock()
	sid := e.s.ID()
	list := func(dir string) ([]string, error) {
		var names []string
		err := e.s.Do(ctx, cluster.Op{Name: "list", Path: dir}, func(c *zk.Conn) (err error) {
			names, _, err = c.Children(dir)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		return names, err
	}
	names, err := list(e.layout.GlobalsPath())
	if err != nil {
		return nil, err
	}
	var strays []string
	seen := map[string]bool{}
	for _, name := range names {
		dir := e.layout.GlobalPath(name)
		children, err := list(dir)
		if err != nil {
			return nil, err
		}
		// In queue order: of several znodes of one candidacy, the first is
		// its own and the later ones strays.
		for _, child := range queue(children) {
			var st *zk.Stat
			err := e.s.Do(ctx, cluster.Op{Name: "exists", Path: dir + "/" + child}, func(c *zk.Conn) (err error) {
				_, st, err = c.Exists(dir + "/" + child)
				return err
			})
			if err != nil {
				return nil, err
			}
			if st == nil || st.EphemeralOwner != sid {
				continue
			}
			guid, _, _ := parseCandidate(child)
			if !live[guid] || seen[guid] {
				strays = append(strays, dir+"/"+child)
			}
			seen[guid] = true
		}
	}
	return strays, nil
}
