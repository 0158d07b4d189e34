package boss_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// Deadlines. Nodes run with a 1 s session timeout, so a dead boss's
// successor is elected within about a second of its death.
const (
	startTimeout    = 20 * time.Second // a node joins and prints its role
	failoverTimeout = 15 * time.Second
	workTimeout     = 20 * time.Second
)

// TestBoss builds cmd/boss once, into its own temporary directory (removed
// when it ends), for the subtests that run it.
func TestBoss(t *testing.T) {
	bin := buildBoss(t, t.TempDir())
	zkAddrs := zktest.Shared(t).Addrs()
	newCluster := func(t *testing.T) *env { return newEnv(t, bin, zkAddrs, zktest.Root(t)) }

	t.Run("Help", func(t *testing.T) { testHelp(t, newCluster(t)) })
	t.Run("NoBoss", func(t *testing.T) { testNoBoss(t, newCluster(t)) })
	t.Run("NoWorkers", func(t *testing.T) { testNoWorkers(t, newCluster(t)) })
	t.Run("Calm", func(t *testing.T) { testCalm(t, newCluster(t)) })
	t.Run("BossKilled", func(t *testing.T) { testBossKilled(t, newCluster(t)) })
	t.Run("WorkerKilled", func(t *testing.T) { testWorkerKilled(t, newCluster(t)) })
	t.Run("GarbageAmongJobs", func(t *testing.T) { testGarbageAmongJobs(t, newCluster(t)) })
	t.Run("OversizedJob", func(t *testing.T) { testOversizedJob(t, newCluster(t)) })
	t.Run("SameToken", func(t *testing.T) { testSameToken(t, newCluster(t)) })
	t.Run("ResubmitAcrossFailover", func(t *testing.T) { testResubmitAcrossFailover(t, newCluster(t)) })
}

func testHelp(t *testing.T, e *env) {
	e.flags = nil
	code, out := e.submit("-h")
	if code != 0 {
		t.Errorf("boss -h: exit %d, want 0", code)
	}
	for _, want := range []string{"-zk", "ZK_SERVERS", "-root", "ZKACTOR_ROOT", "-listen", "-session-timeout", "-assign-timeout", "-token", "-v", "sleep:", "at least once"} {
		if !strings.Contains(out, want) {
			t.Errorf("boss -h does not mention %q:\n%s", want, out)
		}
	}
}

func testNoBoss(t *testing.T, e *env) {
	code, out := e.submit("somejob")
	if code == 0 {
		t.Fatalf("boss somejob with no boss running: exit 0, want non-zero:\n%s", out)
	}
	if !strings.Contains(out, "no boss is running") {
		t.Errorf("boss somejob with no boss running does not say so:\n%s", out)
	}
}

// startCluster starts a boss, waits for its election, then two workers.
func startCluster(t *testing.T, e *env) (boss, w1, w2 *proc) {
	t.Helper()
	boss = e.start("boss")
	e.out.waitLine(t, startTimeout, boss, "I'm the boss!", 1)
	e.out.waitLine(t, startTimeout, boss, "I don't do any work! Start a worker.", 1)
	w1, w2 = e.start("worker1"), e.start("worker2")
	e.out.waitLine(t, startTimeout, w1, "Worker waiting for task...", 1)
	e.out.waitLine(t, startTimeout, w2, "Worker waiting for task...", 1)
	return boss, w1, w2
}

// doneAtLeastOnce waits until every job has a "Doing task:" line.
func doneAtLeastOnce(t *testing.T, e *env, jobs []string) {
	t.Helper()
	e.out.waitFor(t, workTimeout, fmt.Sprintf("every job of %q is done", jobs), func(lines []line) bool {
		for _, job := range jobs {
			if !hasLine(lines, "Doing task: "+job) {
				return false
			}
		}
		return true
	})
}

func hasLine(lines []line, text string) bool {
	return slices.ContainsFunc(lines, func(l line) bool { return l.text == text })
}

// A job submitted while no worker runs waits for the first one.
func testNoWorkers(t *testing.T, e *env) {
	boss := e.start("boss")
	e.out.waitLine(t, startTimeout, boss, "I'm the boss!", 1)
	e.mustSubmit("early bird")
	e.out.waitLine(t, workTimeout, boss, "Where is my workforce?!", 1)
	w := e.start("worker")
	e.out.waitLine(t, workTimeout, w, "Doing task: early bird", 1)
	e.out.waitLine(t, workTimeout, boss, "Job done: early bird", 1)
}

func testCalm(t *testing.T, e *env) {
	boss, w1, w2 := startCluster(t, e)
	var jobs []string
	for i := 1; i <= 6; i++ {
		job := fmt.Sprintf("calm-%d", i)
		jobs = append(jobs, job)
		e.mustSubmit(job)
	}
	e.out.waitLine(t, workTimeout, boss, "Job done: ", len(jobs))

	lines, _ := e.out.snapshot()
	for _, job := range jobs {
		n := 0
		for _, l := range lines {
			if l.text == "Doing task: "+job {
				n++
			}
		}
		if n != 1 {
			t.Errorf("job %q done %d times, want exactly once", job, n)
		}
		if countLines(lines, "Delegating task: "+job+" to ", boss) != 1 {
			t.Errorf("the boss did not say once that it delegated %q", job)
		}
	}
	if n := countLines(lines, "Doing task: ", boss); n != 0 {
		t.Errorf("the first boss did %d tasks; as in the original, it only delegates", n)
	}
	// Round-robin over two workers: both get work.
	for _, w := range []*proc{w1, w2} {
		if countLines(lines, "Doing task: ", w) == 0 {
			t.Errorf("%s did no task: delegation is not round-robin", w.name)
		}
	}
	if countLines(lines, "Where is my workforce?!") != 0 {
		t.Error("the boss complained of no workers while two were registered")
	}
}

func testBossKilled(t *testing.T, e *env) {
	boss, w1, w2 := startCluster(t, e)
	// Slow enough that some are still queued at the workers when the boss dies.
	var jobs []string
	for i := 1; i <= 4; i++ {
		job := fmt.Sprintf("before-%d sleep:300ms", i)
		jobs = append(jobs, job)
		e.mustSubmit(job)
	}
	e.out.waitFor(t, workTimeout, "a worker starts a job", func(lines []line) bool {
		return countLines(lines, "Doing task: before-", w1, w2) > 0
	})
	boss.kill(t)

	e.out.waitFor(t, failoverTimeout, "a worker is elected boss", func(lines []line) bool {
		return countLines(lines, "I'm the boss!", w1, w2) > 0
	})
	// The new boss keeps working: it has two workers, itself included.
	e.out.waitFor(t, startTimeout, "the new boss counts its workers", func(lines []line) bool {
		return countLines(lines, "I've got ", w1, w2) > 0
	})

	for i := 1; i <= 3; i++ {
		job := fmt.Sprintf("after-%d", i)
		jobs = append(jobs, job)
		e.mustSubmit(job)
	}
	doneAtLeastOnce(t, e, jobs)
	e.out.waitFor(t, workTimeout, "the new boss hears every job done", func(lines []line) bool {
		done := map[string]bool{}
		for _, l := range lines {
			if l.proc != "boss" && strings.HasPrefix(l.text, "Job done: ") {
				done[strings.SplitN(strings.TrimPrefix(l.text, "Job done: "), " (", 2)[0]] = true
			}
		}
		for _, job := range jobs {
			if !strings.HasPrefix(job, "before-") && !done[job] {
				return false
			}
		}
		return true
	})
}

func testWorkerKilled(t *testing.T, e *env) {
	boss, w1, w2 := startCluster(t, e)
	// "sleep:3s" makes the worker hold the job for 3 s.
	const job = "slow sleep:3s"
	e.mustSubmit(job)
	var holder, other *proc
	e.out.waitFor(t, workTimeout, "a worker starts the slow job", func(lines []line) bool {
		switch {
		case hasProcLine(lines, w1, "Doing task: "+job):
			holder, other = w1, w2
		case hasProcLine(lines, w2, "Doing task: "+job):
			holder, other = w2, w1
		}
		return holder != nil
	})
	holder.kill(t)

	e.out.waitLine(t, failoverTimeout, other, "Doing task: "+job, 1)
	e.out.waitLine(t, workTimeout, boss, "Job done: "+job, 1)
	if n := e.out.count("Worker ", boss); n == 0 {
		t.Error("the boss did not say that the worker is gone")
	}
}

func hasProcLine(lines []line, p *proc, text string) bool {
	return slices.ContainsFunc(lines, func(l line) bool { return l.proc == p.name && l.text == text })
}

// The reproduction: a job acknowledged while no worker existed, a
// foreign client's garbage among the jobs, the boss killed. The next boss
// skips the garbage and does the job.
func testGarbageAmongJobs(t *testing.T, e *env) {
	boss := e.start("boss")
	e.out.waitLine(t, startTimeout, boss, "I'm the boss!", 1)
	e.mustSubmit("lost and found")
	e.out.waitLine(t, workTimeout, boss, "Where is my workforce?!", 1)
	c := zktest.Dial(t, e.zkAddrs, 4*time.Second)
	// The jobs are items of the queue <root>/queues/jobs (recipes/workqueue).
	for name, data := range map[string]string{"job-garbage-0000000000": "\xff\xff\xff\xff", "job-empty-0000000001": "", "junk": "junk"} {
		if _, err := c.Create(e.root+"/queues/jobs/items/"+name, []byte(data), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create garbage %s: %v", name, err)
		}
	}
	boss.kill(t)

	w1, w2 := e.start("node1"), e.start("node2")
	e.out.waitFor(t, failoverTimeout+workTimeout, "the job is done after the failover", func(lines []line) bool {
		return countLines(lines, "Doing task: lost and found", w1, w2) > 0
	})
}

// A job too large for a znode is refused with a clear message, and the
// boss goes on working.
func testOversizedJob(t *testing.T, e *env) {
	boss, _, _ := startCluster(t, e)
	// 1.2 MiB, between jute.maxbuffer (1 MiB) and 1.5 MiB, in words each
	// below the kernel's limit on one argument (128 KiB).
	var words []string
	for range 20 {
		words = append(words, strings.Repeat("x", 60<<10))
	}
	code, out := e.submit(words...)
	if code == 0 || !strings.Contains(out, "too large") || !strings.Contains(out, "65536 bytes") {
		t.Errorf("a 1.2 MiB job: exit %d, want non-zero and a message that it is too large (limit 65536 bytes):\n%.500s", code, out)
	}
	e.mustSubmit("small")
	e.out.waitLine(t, workTimeout, boss, "Job done: small", 1)
}

// Submitting twice with the same token records one job, done once.
func testSameToken(t *testing.T, e *env) {
	boss := e.start("boss")
	e.out.waitLine(t, startTimeout, boss, "I'm the boss!", 1)
	for range 2 {
		code, out := e.submit("-token", "same-token", "twice")
		if code != 0 || !strings.Contains(out, "Job accepted: job-same-token") {
			t.Fatalf("submit -token same-token: exit %d, want 0 and \"Job accepted: job-same-token\":\n%s", code, out)
		}
	}
	code, out := e.submit("-token", "same-token", "another job")
	if code == 0 || !strings.Contains(out, "already names a different job") {
		t.Errorf("another job under the same token: exit %d, want non-zero and why:\n%s", code, out)
	}
	w := e.start("worker")
	e.out.waitLine(t, workTimeout, boss, "Job done: twice (job-same-token)", 1)
	e.mustSubmit("later")
	e.out.waitLine(t, workTimeout, boss, "Job done: later", 1)
	if n := e.out.count("Doing task: twice", w); n != 1 {
		t.Errorf("the job submitted twice with one token was done %d times, want once", n)
	}
}

// A requestor whose boss cannot record the job (its ZooKeeper connection
// is blackholed, so the outcome is unknown) submits again, with the same
// token, until the boss elected next accepts it: it does not give up with
// "rejected" while the job may or may not have been recorded.
func testResubmitAcrossFailover(t *testing.T, e *env) {
	proxy := zktest.NewProxy(t, e.zkAddrs[0])
	boss := e.start("boss", "-zk", proxy.Addr())
	e.out.waitLine(t, startTimeout, boss, "I'm the boss!", 1)
	w := e.start("worker")
	e.out.waitLine(t, startTimeout, w, "Worker waiting for task...", 1)

	proxy.Blackhole()
	code, out := e.submit("-token", "patient", "through the failover")
	if code != 0 || !strings.Contains(out, "Job accepted: job-patient") {
		t.Fatalf("submit while the boss is cut off from ZooKeeper: exit %d, want 0 and \"Job accepted: job-patient\":\n%s", code, out)
	}
	e.out.waitLine(t, workTimeout, w, "Doing task: through the failover", 1)
	e.out.waitLine(t, workTimeout, w, "Job done: through the failover (job-patient)", 1)
}
