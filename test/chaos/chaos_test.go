package chaos_test

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/chaos"
	"github.com/zkactor/zkactor/test/zktest"
)

// The flags of the checker. Without any, `go test` runs the smoke that CI
// runs; `make chaos` runs every class 100 times.
var (
	seed    = flag.Uint64("seed", 1, "seed of the run: every random choice derives from it")
	trials  = flag.Int("trials", 1, "trials per fault class")
	classes = flag.String("classes", strings.Join(smokeClasses, ","), `fault classes to run, comma-separated, or "all"`)
	nodes   = flag.Int("nodes", 3, "node processes")
	timeout = flag.Duration("session-timeout", 2*time.Second, "the nodes' ZooKeeper session timeout")
	each    = flag.Bool("stop-each-class", false, "stop every node after each class to check for leftover ephemerals")
	grains  = flag.Bool("grains", true, "run a protoactor cluster member (package provider) in every node process, with its invariants")
	roles   = flag.Bool("roles", true, "every node process applies for the roles of a role set (package recipes/rolematch), with their invariants")
	locks   = flag.Bool("locks", true, "every node process runs a locker (package recipes/lock), with its invariants")
	queue   = flag.Bool("queue", true, "every node process runs a work queue taker (package recipes/workqueue), with puts in the workload and its invariant")
	subs    = flag.Bool("subscriptions", true, "every node process subscribes to the workload's services (package recipes/subscription), with its invariant")
	barrier = flag.Bool("barrier", true, "the driver runs rounds of a double barrier over the node processes (package recipes/barrier), with its invariants")
	config  = flag.Bool("config", true, "every node process subscribes to a service's config and writes it (package recipes/config), with its invariants")
	verbose = flag.Bool("v", false, "log every event and trial (pass as -args -v to go test)")
)

// smokeClasses are the classes of the default run: cheap ones that touch
// every part (a dead node, a frozen one, an expired session, a foreign
// delete, a burst, a grains member declared dead).
var smokeClasses = []string{"kill", "pause", "expiry", "delete-candidate", "burst-candidates", "delete-member"}

func TestMain(m *testing.M) {
	if chaos.IsChild() {
		// A node process: it must not run the tests, nor start ZooKeeper.
		os.Exit(chaos.RunChild())
	}
	zktest.Main(m)
}

// TestChaos runs the randomized fault checker and fails on any violation.
func TestChaos(t *testing.T) {
	all := chaos.DefaultFaultClasses()
	var run []chaos.FaultClass
	if *classes == "all" {
		run = all
	} else {
		byName := map[string]chaos.FaultClass{}
		for _, c := range all {
			byName[c.Name()] = c
		}
		for _, name := range strings.Split(*classes, ",") {
			c, ok := byName[strings.TrimSpace(name)]
			if !ok {
				t.Fatalf("no fault class %q; there are: %s", name, names(all))
			}
			run = append(run, c)
		}
	}
	r := chaos.Start(t, chaos.Config{
		Seed:           *seed,
		Trials:         *trials,
		Nodes:          *nodes,
		SessionTimeout: *timeout,
		StopEachClass:  *each,
		Verbose:        *verbose,
		Grains:         *grains,
		Roles:          *roles,
		Locks:          *locks,
		Queue:          *queue,
		Subscriptions:  *subs,
		Barrier:        *barrier,
		Config:         *config,
	})
	for _, c := range run {
		r.RunClass(c)
	}
	rep := r.Finish()
	t.Logf("chaos report\n%s", rep.Table())
	for _, v := range rep.Violations {
		t.Errorf("%s", v)
	}
}

func names(cs []chaos.FaultClass) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name())
	}
	return strings.Join(s, ", ")
}
