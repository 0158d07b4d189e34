package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// A boss that cannot take the jobs when elected (the queue's items are
// unreadable to it) keeps trying until it can, rather than carrying on
// without them until the next failover.
func TestBossRetriesTakingUntilItSucceeds(t *testing.T) {
	h := newHarness(t)
	h.putJob("left", "left behind")
	c := h.foreign()
	if err := c.AddAuth("digest", []byte("foreign:secret")); err != nil {
		t.Fatal(err)
	}
	// items/ readable by the foreign client only, until the ACL opens.
	dir := h.root + "/queues/jobs/items"
	if _, err := c.SetACL(dir, zk.DigestACL(zk.PermAll, "foreign", "secret"), -1); err != nil {
		t.Fatal(err)
	}

	work := h.worker(always)
	h.start(bossConfig{}, 1)
	h.logs.waitFor(t, "cannot take an item; trying again", 2) // it tried, and tried again
	if _, err := c.SetACL(dir, zk.WorldACL(zk.PermAll), -1); err != nil {
		t.Fatal(err)
	}
	if w := nextWork(t, work); w.Job.Id != "job-left" || w.Job.Text != "left behind" {
		t.Fatalf("delegated %v, want job-left", w.Job)
	}
	h.out.waitFor(t, "Job done: left behind (job-left)", 1)
}

// What is not a job among the queue's items is skipped (and logged): znodes
// that are not items, and items whose key or payload is not a job's. The
// jobs next to them are all delegated, oldest first.
func TestBossSkipsWhatIsNotAJob(t *testing.T) {
	h := newHarness(t)
	c := h.foreign()
	dir := h.root + "/queues/jobs/items"
	open := zk.WorldACL(zk.PermAll)
	h.putJob("first", "first")
	create(t, c, dir+"/job-garbage-0000000100", []byte("\xff\xff\xff\xff"), open)
	create(t, c, dir+"/notajob", nil, open)
	for key, payload := range map[string][]byte{"job-bad.token": mustJob(t, "bad token"), "foreign": mustJob(t, "foreign"), "job-empty": nil, "job-junk": []byte("\xff\xff")} {
		if _, err := h.jobs.Put(t.Context(), key, payload); err != nil {
			t.Fatal(err)
		}
	}
	h.putJob("second", "second")
	work := h.worker(always)
	h.start(bossConfig{}, 1)
	var got []string
	for range 2 {
		got = append(got, nextWork(t, work).Job.Id)
	}
	if want := "job-first job-second"; strings.Join(got, " ") != want {
		t.Errorf("delegated %q, want %q", strings.Join(got, " "), want)
	}
	h.out.waitFor(t, "Job done: second (job-second)", 1)
	for _, what := range []string{"job-garbage-0000000100", "notajob", "job-bad.token", "foreign", "job-empty", "job-junk"} {
		h.logs.waitFor(t, what, 1)
	}
	if n := h.logs.count("WARN skipping a"); n < 6 {
		t.Errorf("%d warnings about skipped items, want 6", n)
	}
}

func mustJob(t *testing.T, text string) []byte {
	t.Helper()
	b, err := jobPayload(text)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Submission is idempotent: the token is the job's identity, so a
// requestor that resubmits after an unknown outcome (the Put may have been
// applied although the boss answered Rejected) finds its job instead
// of recording it twice.
func TestSubmitIsIdempotent(t *testing.T) {
	h := newHarness(t)
	// Holds job-T1 and job-T2: the test sends their Done.
	work := h.worker(func(w *bossv1.Work) bool { return w.Job.Id != "job-T1" && w.Job.Id != "job-T2" })
	h.start(bossConfig{}, 1)
	// The Put of an earlier Submit was applied, but its reply was lost: the
	// boss answered Rejected. The requestor submits again, with the same
	// token. (Done only after the answer: a job done and acknowledged is
	// gone from the queue, and a Submit that reached the boss before the
	// job did would then record it again, to run at least once more.)
	h.putJob("T1", "feed the cat")
	h.mustAccept("T1", "feed the cat")
	if w := nextWork(t, work); w.Job.Id != "job-T1" {
		t.Fatalf("delegated %v, want job-T1", w.Job)
	}
	h.system.Root.Send(h.boss, &bossv1.Done{JobId: "job-T1", Worker: "test"})
	h.out.waitFor(t, "Job done: feed the cat (job-T1)", 1)

	h.mustAccept("T2", "wash up")
	if w := nextWork(t, work); w.Job.Id != "job-T2" {
		t.Fatalf("delegated %v, want job-T2", w.Job)
	}
	h.mustAccept("T2", "wash up") // a resubmission: the same job
	res, err := h.submit("T2", "something else", wait)
	if r, ok := res.(*bossv1.Rejected); err != nil || !ok || r.Retry || !strings.Contains(r.Reason, "already names a different job") {
		t.Errorf("another job under a used token: %v, %v; want Rejected, not to retry", res, err)
	}
	h.system.Root.Send(h.boss, &bossv1.Done{JobId: "job-T2", Worker: "test"})
	h.out.waitFor(t, "Job done: wash up (job-T2)", 1)
	h.mustAccept("T3", "last")
	if w := nextWork(t, work); w.Job.Id != "job-T3" {
		t.Fatalf("delegated %v, want job-T3 (job-T2 delegated twice?)", w.Job)
	}
	h.out.waitFor(t, "Job done: last (job-T3)", 1)
	if n := h.out.count("Delegating task: wash up"); n != 1 {
		t.Errorf("job-T2 delegated %d times, want once", n)
	}
	// Every job done is gone from the queue; job-T1's and job-T2's Done
	// came from the test, so nothing is left at all.
	c := h.foreign()
	zktest.Eventually(t, wait, func() error {
		names, _, err := c.Children(h.root + "/queues/jobs/items")
		if err != nil || len(names) != 0 {
			return fmt.Errorf("items left: %v, %v", names, err)
		}
		return nil
	})
}

// A worker that holds a job past the assignment timeout (it restarted
// under the same PID, and forgot it) gets it again.
func TestAssignmentTimesOut(t *testing.T) {
	h := newHarness(t)
	n := 0
	work := h.worker(func(*bossv1.Work) bool { n++; return n > 1 }) // forgets the first
	h.start(bossConfig{assignTimeout: 300 * time.Millisecond}, 1)
	h.mustAccept("slow", "forgotten")
	first, again := nextWork(t, work), nextWork(t, work)
	if first.Job.Id != "job-slow" || again.Job.Id != "job-slow" {
		t.Fatalf("delegated %v then %v, want job-slow twice", first.Job, again.Job)
	}
	h.out.waitFor(t, "not done by", 1)
	h.out.waitFor(t, "Job done: forgotten (job-slow)", 1)
}

// Every delegation carries the boss's epoch, from its Elected message.
func TestWorkCarriesTheEpoch(t *testing.T) {
	h := newHarness(t)
	work := h.worker(always)
	h.start(bossConfig{}, 42)
	h.mustAccept("e", "with epoch")
	if w := nextWork(t, work); w.Epoch != 42 {
		t.Errorf("Work.epoch %d, want 42", w.Epoch)
	}
}

// A worker refuses work from a boss older than one it has served, and
// tells it; that boss then delegates nothing more and turns requestors
// away to its successor.
func TestWorkerRefusesAnOlderBoss(t *testing.T) {
	h := newHarness(t)
	out := newLines()
	worker := h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &workerActor{out: &printer{w: out}} }))
	answers := make(chan any, 10)
	probe := h.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *bossv1.Done, *bossv1.Refused:
			answers <- m
		}
	}))
	boss := pbPID(probe)
	send := func(id string, epoch int64) any {
		h.system.Root.Send(worker, &bossv1.Work{Job: &bossv1.Job{Id: id, Text: id}, Boss: boss, Epoch: epoch})
		select {
		case a := <-answers:
			return a
		case <-time.After(wait):
			t.Fatalf("no answer to %s", id)
			return nil
		}
	}
	if a, ok := send("new", 5).(*bossv1.Done); !ok || a.JobId != "new" {
		t.Fatalf("Work of epoch 5: %v, want Done", a)
	}
	if a, ok := send("same", 5).(*bossv1.Done); !ok || a.JobId != "same" {
		t.Fatalf("Work of epoch 5 again: %v, want Done", a)
	}
	if a, ok := send("old", 3).(*bossv1.Refused); !ok || a.JobId != "old" || a.Epoch != 5 {
		t.Fatalf("Work of epoch 3 after 5: %v, want Refused with epoch 5", a)
	}
	if out.count("Doing task: old") != 0 || out.count("Refusing task: old") != 1 {
		t.Errorf("the worker did the old boss's task, or did not say it refused it")
	}

	// The boss's side.
	work := h.worker(func(*bossv1.Work) bool { return false })
	h.start(bossConfig{}, 3)
	h.mustAccept("a", "before")
	w := nextWork(t, work)
	h.system.Root.Send(h.boss, &bossv1.Refused{JobId: w.Job.Id, Worker: "w", Epoch: 5})
	h.out.waitFor(t, "has served a newer boss", 1)
	res, err := h.submit("b", "after", wait)
	if r, ok := res.(*bossv1.Rejected); err != nil || !ok || !r.Retry {
		t.Errorf("Submit to a superseded boss: %v, %v; want Rejected, to retry", res, err)
	}
}

// A job too large for a znode is rejected at once, with a clear reason,
// and the boss's ZooKeeper connection survives.
func TestOversizedJobIsRejected(t *testing.T) {
	h := newHarness(t)
	var drops atomic.Int32
	stop := h.session.Notify(func(ev cluster.Event) {
		if ev.Kind != cluster.Connected {
			drops.Add(1)
		}
	})
	defer stop()
	h.worker(always)
	h.start(bossConfig{}, 1)
	big := strings.Repeat("x", 1200<<10) // between jute.maxbuffer (1 MiB) and 1.5 MiB
	res, err := h.submit("big", big, wait)
	r, ok := res.(*bossv1.Rejected)
	if err != nil || !ok || r.Retry || !strings.Contains(r.Reason, "too large") {
		t.Fatalf("Submit of %d bytes: %v, %v; want Rejected as too large, not to retry", len(big), res, err)
	}
	if !strings.Contains(r.Reason, "65536 bytes") {
		t.Errorf("the reason does not give the limit: %s", r.Reason)
	}
	h.mustAccept("small", strings.Repeat("y", maxJobText)) // the limit itself is fine
	if n := drops.Load(); n != 0 {
		t.Errorf("the boss's ZooKeeper session had %d events other than connected: its connection dropped", n)
	}
}

// The boss answers while a ZooKeeper write is in flight: it does not wait
// inside Receive.
func TestBossAnswersWhileWriting(t *testing.T) {
	proxies, addrs := zktest.Proxies(t, zktest.Shared(t))
	h := newHarness(t, addrs...)
	h.worker(always)
	h.start(bossConfig{}, 1)
	h.mustAccept("warm", "warm up") // <root>/jobs exists, the connection is used

	proxies[0].Blackhole()
	defer proxies[0].Restore()
	stuck := h.system.Root.RequestFuture(h.boss, &bossv1.Submit{Token: "stuck", Text: "in flight"}, wait)
	start := time.Now()
	res, err := h.submit("", "no token", time.Second) // needs no ZooKeeper
	if _, ok := res.(*bossv1.Rejected); err != nil || !ok {
		t.Fatalf("while a create is in flight, the boss answered %v, %v after %v; want Rejected at once", res, err, time.Since(start))
	}
	proxies[0].Restore()
	res, err = stuck.Result()
	switch r := res.(type) {
	case *bossv1.Accepted:
	case *bossv1.Rejected:
		if !r.Retry {
			t.Errorf("the stuck Submit: %v; want Accepted, or Rejected to retry", r)
		}
	default:
		t.Errorf("the stuck Submit: %v, %v; want an answer", res, err)
	}
}

func pbPID(p *actor.PID) *zkactorv1.PID { return &zkactorv1.PID{Address: p.Address, Id: p.Id} }
