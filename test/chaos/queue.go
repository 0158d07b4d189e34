package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/recipes/workqueue"
)

// The work queue: with Config.Queue, every node process opens the work
// queue "chaos" (package recipes/workqueue) and runs a taker that takes an
// item, works on it for 20–120 ms and acknowledges it; the workload puts
// items with keys of its own from random nodes. A node reports
//
//	qput <key> ok <id> | qput <key> err <error>   Put returned
//	qtake <key> <id> <attempt>                    Take returned the item
//	qack <key> <id>                               Ack returned nil: the item is done
//
// and one invariant judges them (issue 11):
//
//	queue-delivery: at least once: every item whose Put returned nil is
//	    acknowledged by some taker, within session timeout + 5 s of the
//	    heal (an item whose taker died or was cut off comes back when its
//	    claim goes with the session). A Put that failed may have landed:
//	    it is not required.
//
// A work queue is at-least-once by design: a taker cut off from ZooKeeper
// may still work on an item that another takes after its session expired,
// so "one taker at a time" is not judged.
const (
	childQueueEnv = "ZKACTOR_CHAOS_QUEUE" // "1": the node process runs a taker
	queueName     = "chaos"
)

// taker is a node process's work queue and taking loop.
type taker struct {
	q      *workqueue.Queue
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startTaker(node *zka.Node, root string, log *slog.Logger, out *emitter) (*taker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	q, err := workqueue.Open(ctx, node.Session(), queueName, workqueue.Options{Root: root, Producer: node.NodeID(), Logger: log.With("part", "queue")})
	cancel()
	if err != nil {
		return nil, err
	}
	ctx, cancel = context.WithCancel(context.Background())
	tk := &taker{q: q, cancel: cancel}
	tk.done.Add(1)
	go func() {
		defer tk.done.Done()
		for ctx.Err() == nil {
			tctx, tcancel := context.WithTimeout(ctx, commandWait)
			it, err := q.Take(tctx)
			tcancel()
			if err != nil {
				if ctx.Err() == nil && tctx.Err() == nil {
					select { // ZooKeeper away: a retry delay, not a spin
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
				continue
			}
			out.emit("qtake", it.Key, it.ID, it.Attempts)
			select {
			case <-ctx.Done():
			case <-time.After(20*time.Millisecond + rand.N(100*time.Millisecond)):
			}
			actx, acancel := context.WithTimeout(context.Background(), commandWait)
			if err := q.Ack(actx, it); err == nil {
				out.emit("qack", it.Key, it.ID)
			}
			acancel()
		}
	}()
	return tk, nil
}

// put is the node's "put <key>" command.
func (tk *taker) put(key string) (string, error) {
	if tk == nil {
		return "", fmt.Errorf("this node runs no work queue")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	return tk.q.Put(ctx, key, []byte("work "+key))
}

// stop ends the taking loop and closes the queue (what it holds goes back).
func (tk *taker) stop() {
	tk.cancel()
	tk.done.Wait()
	tk.q.Close()
}

// queueDelivery: every acknowledged Put is done at least once.
type queueDelivery struct{ persisting }

func (*queueDelivery) Name() string  { return "queue-delivery" }
func (*queueDelivery) Settles() bool { return true }

func (inv *queueDelivery) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Queue {
		return nil
	}
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+5*time.Second)
	var probs []problem
	ok, _ := tr.Await(deadline, func() (bool, string) {
		if len(tr.r.liveNodes()) == 0 {
			return true, "" // nobody to take them until nodes start again
		}
		probs = probs[:0]
		tr.r.withState(func(s *state) {
			for key := range s.qput {
				if !s.qdone[key] {
					probs = append(probs, problem{key: "undone|" + key, focus: key,
						what: fmt.Sprintf("item %s was put (acknowledged) and is not done", key)})
				}
			}
		})
		slices.SortFunc(probs, func(a, b problem) int { return strings.Compare(a.what, b.what) })
		return len(probs) == 0, ""
	})
	if ok {
		inv.clear()
		return nil
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}
