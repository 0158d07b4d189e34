package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/recipes/lock"
)

// Locks: with Config.Locks, every node process runs a locker (package
// recipes/lock) that takes the lock "chaos" again and again, holds it for
// 100–400 ms and unlocks it. While it holds the lock it acts every 50 ms,
// each time only after Held.Err said the lock is still its own, as a
// holder should. It reports its tenure as a global reports its term:
//
//	lstart lock/chaos <token> <path> <node>   Lock returned
//	ltick lock/chaos <token> <began>          it acted (Err was nil at began)
//	lstop lock/chaos <token>                  it stopped acting: it unlocks, or Err reported the loss
//
// and two invariants judge them (issue 11):
//
//	one-lock-holder: never two tenures of the lock at once (one-global's
//	    check over the tenures).
//	live-lock: within session timeout + 3 s of the heal, some live node
//	    holds the lock again (a tenure running on a live node, or one begun
//	    since the heal).
const (
	childLocksEnv = "ZKACTOR_CHAOS_LOCKS" // "1": the node process runs a locker
	lockName      = "chaos"
	lockAct       = 50 * time.Millisecond
)

// locker is a node process's locking loop.
type locker struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startLocker(node *zka.Node, root string, log *slog.Logger, out *emitter) (*locker, error) {
	m, err := lock.New(node.Session(), root, lockName, lock.Options{NodeID: node.NodeID(), Logger: log.With("part", "lock")})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &locker{cancel: cancel}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for ctx.Err() == nil {
			lctx, lcancel := context.WithTimeout(ctx, commandWait)
			h, err := m.Lock(lctx)
			lcancel()
			if err != nil {
				select { // a retry delay, not to spin while ZooKeeper is away
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			hold(ctx, h, node.NodeID(), out)
			uctx, ucancel := context.WithTimeout(context.Background(), commandWait)
			_ = h.Unlock(uctx)
			ucancel()
		}
	}()
	return l, nil
}

// hold acts as the holder of h until its time is up, ctx ends, or Err
// reports the loss; it reports the tenure.
func hold(ctx context.Context, h *lock.Held, node string, out *emitter) {
	name := "lock/" + lockName
	out.emit("lstart", name, h.Token(), h.Path(), node)
	defer out.emit("lstop", name, h.Token())
	end := time.Now().Add(100*time.Millisecond + rand.N(300*time.Millisecond))
	for time.Now().Before(end) {
		began := Now()
		if h.Err() != nil {
			return
		}
		out.emit("ltick", name, h.Token(), began)
		select {
		case <-ctx.Done():
			return
		case <-h.Lost():
			return
		case <-time.After(lockAct):
		}
	}
}

// stop ends the loop, unlocking what it holds.
func (l *locker) stop() {
	l.cancel()
	l.done.Wait()
}

// newOneLockHolder is one-global over the lock's tenures.
func newOneLockHolder() *oneGlobal {
	return &oneGlobal{seen: map[string]bool{}, name: "one-lock-holder", what: "holders of",
		of: func(s *state) *timeline { return s.ltl }, allowance: true}
}

// liveLock: after the heal, the lock is held again by a live node.
type liveLock struct{}

func (*liveLock) Name() string  { return "live-lock" }
func (*liveLock) Settles() bool { return true }

func (inv *liveLock) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Locks {
		return nil
	}
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+3*time.Second)
	name := "lock/" + lockName
	ok, _ := tr.Await(deadline, func() (bool, string) {
		live := map[string]bool{}
		for _, n := range tr.r.liveNodes() {
			live[n.label] = true
		}
		if len(live) == 0 {
			return true, ""
		}
		held := false
		now := Now()
		tr.r.withState(func(s *state) {
			for _, t := range s.ltl.terms[name] {
				if live[t.Src] && (t.Start > tr.healedAt || s.ltl.end(t, now) >= now) {
					held = true
				}
			}
		})
		return held, ""
	})
	if ok {
		return nil
	}
	return []Violation{tr.Violation(inv.Name(), deadline,
		fmt.Sprintf("no live node held the lock %q within %v of the heal", lockName, tr.r.cfg.SessionTimeout+3*time.Second), name).
		Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
}
