package main

import (
	"context"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// A boss that has learnt it is superseded (a worker refused its Work for
// a newer epoch) delegated nothing more, but its feeder went on taking
// jobs (up to 1024): the jobs the new boss accepted were claimed by the
// old one's session and hidden from the new boss until the old term
// ended. The deposed boss now stops its feeder, which gives back what it
// holds: the successor gets every job.
func TestAttackDeposedBossGivesTheJobsBack(t *testing.T) {
	h := newHarness(t)
	work := h.worker(func(*bossv1.Work) bool { return false })
	h.start(bossConfig{}, 3)
	h.mustAccept("a", "before")
	w := nextWork(t, work)
	h.system.Root.Send(h.boss, &bossv1.Refused{JobId: w.Job.Id, Worker: "w", Epoch: 5})
	h.out.waitFor(t, "has served a newer boss", 1)

	// The successor, on a session of its own, accepts a job and takes
	// every job from the queue.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := dialSession(t)
	next, err := workqueue.Open(ctx, s, queueName, workqueue.Options{Root: h.root, Producer: "successor"})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	payload, err := jobPayload("after")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := next.Put(ctx, jobID("b"), payload); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		it, err := next.Take(ctx)
		if err != nil {
			t.Fatalf("the successor has %v of the jobs; the rest stay with the deposed boss: %v", got, err)
		}
		got[it.Key] = true
	}
	if !got[jobID("a")] || !got[jobID("b")] {
		t.Errorf("the successor took %v, want both jobs", got)
	}
}

// dialSession opens a session of its own on the shared ZooKeeper, closed
// when the test ends.
func dialSession(t *testing.T) *cluster.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: zktest.Shared(t).Addrs(), SessionTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
