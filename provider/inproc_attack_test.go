package provider_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/wrapperspb"

	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/provider"
	"github.com/zkactor/zkactor/test/zktest"
)

// The attack tests below run one member in the test process itself, to
// reach into it (hooks around StartMember, grains and singletons of their
// own, goroutine stacks), next to members in child processes. protoactor's
// remote.Start writes grpc's global logger, which the race detector flags
// once two remotes have lived in one process, so each such test re-executes
// the test binary for itself alone (as test/isolate_test.go does): that
// process has one in-process member for its whole life, and zktest.Main
// checks it for leftover goroutines once the test has passed.
const attackIsolatedEnv = "ZKACTOR_PROVIDER_ATTACK_ISOLATED"

// attackInOwnProcess runs the calling test in a process of its own and
// reports true once that has finished; in that process it reports false.
func attackInOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(attackIsolatedEnv) != "" {
		return false
	}
	srv := zktest.Shared(t).Addrs()
	// The member in that process is a protoactor-go cluster member, and
	// protoactor's gossip races with itself now and then (its state is
	// marshalled while its actor changes it); the race detector then fails
	// the test whatever it found. A run that failed only that way, with no
	// race in zkactor's code, is run again, at most twice.
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$",
			"-test.count=1", "-test.v", "-test.timeout=3m")
		cmd.Env = append(os.Environ(), attackIsolatedEnv+"="+strings.Join(srv, ","))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		output := out.String()
		t.Logf("in its own process (%v, attempt %d):\n%s", time.Since(start).Round(time.Millisecond), attempt, output)
		if err == nil || leftoversOnlyOutsideZkactor(output) {
			return true
		}
		if attempt < 3 && onlyForeignRaces(output) {
			t.Logf("the run met a data race outside zkactor's code (protoactor's): running it again")
			continue
		}
		t.Errorf("the test's own process: %v", err)
		return true
	}
}

// onlyForeignRaces reports whether a run's output has race reports and
// none of them is zkactor's (zktest.ZkactorRace).
func onlyForeignRaces(output string) bool {
	reports := zktest.RaceReports(output)
	for _, r := range reports {
		if zktest.ZkactorRace(r) {
			return false
		}
	}
	return len(reports) > 0
}

// leftoversOnlyOutsideZkactor reports whether the isolated process failed
// only on zktest.Main's leftover-goroutine check, and none of the
// goroutines left over runs zkactor's code: protoactor's remote and gossip
// leave some behind (an endpoint writer's two-second reconnect sleep,
// throttles, grpc's serializers), which is not what these tests judge.
func leftoversOnlyOutsideZkactor(output string) bool {
	if strings.Contains(output, "--- FAIL") || !strings.Contains(output, "--- PASS") {
		return false
	}
	i := strings.Index(output, "goroutines left over after the tests passed")
	if i < 0 {
		return false
	}
	return !strings.Contains(output[i:], "github.com/zkactor/zkactor/")
}

// attackServers is the parent's shared ZooKeeper, in the isolated process.
func attackServers(t testing.TB) []string {
	s := os.Getenv(attackIsolatedEnv)
	if s == "" {
		t.Fatal("not in an isolated process")
	}
	return strings.Split(s, ",")
}

// grainEvent is what an in-process grain or singleton went through.
type grainEvent struct {
	what     string // "activated", "deactivated", "elected", "stopped", "handled"
	identity string
	epoch    int64
	at       int64 // CLOCK_MONOTONIC ns
}

// inproc is a member in the test process.
type inproc struct {
	t      *testing.T
	p      *provider.Provider
	c      *pcluster.Cluster
	system *actor.ActorSystem

	once    sync.Once
	mu      sync.Mutex
	members []string
	events  []grainEvent
}

func (m *inproc) record(e grainEvent) {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
}

func (m *inproc) eventsOf(what string) []grainEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []grainEvent
	for _, e := range m.events {
		if e.what == what {
			out = append(out, e)
		}
	}
	return out
}

func (m *inproc) topology() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.members, " ")
}

// counter is the in-process counterpart of the children's counter grain:
// it answers "<count> <member id> <epoch>".
func (m *inproc) counter() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var count int
		var a provider.Activation
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch msg := ctx.Message().(type) {
			case *actor.Started:
				a, _ = provider.ActivationOf(ctx)
				m.record(grainEvent{"activated", a.Identity, a.Epoch, monoNow()})
			case *actor.Stopped:
				m.record(grainEvent{"deactivated", a.Identity, a.Epoch, monoNow()})
			case *wrapperspb.StringValue:
				switch msg.Value {
				case "incr":
					count++
				case "stop":
					ctx.Stop(ctx.Self())
				case "slow":
					// A handler that takes a while (well within the lease).
					m.record(grainEvent{"handling", a.Identity, a.Epoch, monoNow()})
					time.Sleep(1500 * time.Millisecond)
					m.record(grainEvent{"handled", a.Identity, a.Epoch, monoNow()})
				}
				ctx.Respond(wrapperspb.String(fmt.Sprintf("%d %s %d", count, a.MemberID, a.Epoch)))
			}
		})
	})
}

// singleton records its term and answers any string with "alive".
func (m *inproc) singleton(name string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		var epoch int64
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch msg := ctx.Message().(type) {
			case *zkactorv1.Elected:
				epoch = msg.Epoch
				m.record(grainEvent{"elected", name, epoch, monoNow()})
			case *actor.Stopped:
				m.record(grainEvent{"stopped", name, epoch, monoNow()})
			case *wrapperspb.StringValue:
				ctx.Respond(wrapperspb.String(fmt.Sprintf("alive %d", epoch)))
			}
		})
	})
}

// hookedProvider runs before() just before the provider's StartMember.
type hookedProvider struct {
	*provider.Provider
	before func()
}

func (h *hookedProvider) StartMember(c *pcluster.Cluster) error {
	if h.before != nil {
		h.before()
	}
	return h.Provider.StartMember(c)
}

// newInproc builds an in-process member (not started). wrap, if set, wraps
// the provider handed to protoactor.
func newInproc(t *testing.T, cfg provider.Config, wrap func(*provider.Provider) pcluster.ClusterProvider) *inproc {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := provider.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}))
	m := &inproc{t: t, p: p, system: system}
	system.EventStream.Subscribe(func(evt any) {
		if tp, ok := evt.(*pcluster.ClusterTopology); ok {
			var ids []string
			for _, mem := range tp.Members {
				ids = append(ids, mem.Id)
			}
			slices.Sort(ids)
			m.mu.Lock()
			m.members = ids
			m.mu.Unlock()
		}
	})
	var cp pcluster.ClusterProvider = p
	if wrap != nil {
		cp = wrap(p)
	}
	m.c = pcluster.New(system, pcluster.Configure("test", cp, p.IdentityLookup(),
		remote.Configure("127.0.0.1", 0),
		pcluster.WithKinds(pcluster.NewKind(counterKind, m.counter()))))
	t.Cleanup(m.shutdown)
	return m
}

// shutdown stops the provider, then protoactor's actor system and remote;
// it is idempotent.
func (m *inproc) shutdown() {
	m.once.Do(func() {
		_ = m.p.Shutdown(false)
		m.system.Shutdown()
		if m.c.Remote != nil {
			m.c.Remote.Shutdown(false)
		}
	})
}

// startMember runs protoactor's StartMember, which panics on errors.
func (m *inproc) startMember() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("StartMember: %v", r)
		}
	}()
	m.c.StartMember()
	return nil
}

func (m *inproc) request(identity, op string) (answer, error) {
	res, err := m.c.Request(identity, counterKind, wrapperspb.String(op), pcluster.WithTimeout(2*time.Second))
	if err != nil {
		return answer{}, err
	}
	s, ok := res.(*wrapperspb.StringValue)
	if !ok {
		return answer{}, fmt.Errorf("answer %T", res)
	}
	return parseAnswer(m.t, s.Value), nil
}

func (m *inproc) requestEventually(identity, op string) answer {
	m.t.Helper()
	var a answer
	zktest.Eventually(m.t, wait, func() error {
		var err error
		a, err = m.request(identity, op)
		return err
	})
	return a
}

// waitTopology waits until the in-process member's topology is want.
func (m *inproc) waitTopology(want ...string) {
	m.t.Helper()
	w := strings.Join(sorted(want...), " ")
	zktest.Eventually(m.t, wait, func() error {
		if got := m.topology(); got != w {
			return fmt.Errorf("in-process member sees [%s], want [%s]", got, w)
		}
		return nil
	})
}

// pickOf is the provider's rendezvous choice (lookup.go's pick), computed
// from the member ids: FNV-64a of "<member>\x00<kind>/<identity>",
// MurmurHash3's finalizer, highest wins.
func pickOf(members []string, kind, identity string) string {
	var best string
	var score uint64
	for _, m := range members {
		h := fnv.New64a()
		h.Write([]byte(m))
		h.Write([]byte{0})
		h.Write([]byte(kind))
		h.Write([]byte{'/'})
		h.Write([]byte(identity))
		s := h.Sum64()
		s ^= s >> 33
		s *= 0xff51afd7ed558ccd
		s ^= s >> 33
		s *= 0xc4ceb9fe1a85ec53
		s ^= s >> 33
		if best == "" || s > score {
			best, score = m, s
		}
	}
	return best
}

var watchOwnFrame = regexp.MustCompile(`provider\.\(\*IdentityLookup\)\.watchOwn\(`)

// ownWatchers counts the goroutines in IdentityLookup.watchOwn (armed on
// an activation's znode, or arming).
func ownWatchers() int {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	return len(watchOwnFrame.FindAllIndex(buf[:n], -1))
}

// TestAttackOwnWatchGivesUpAfterOneFailedArm: an activation's own-znode
// watch (watchOwn) is abandoned for good when one ExistsW fails, which a
// ZooKeeper link that stays silent for longer than Config.RequestTimeout
// does while the session (and the lease) survive: that is any
// configuration whose RequestTimeout is shorter than about half the
// session timeout (SessionTimeout 30s with the default RequestTimeout of
// 10s, say). Here the re-arm after a data change meets such a silence.
// From then on the grain runs unwatched: when someone else deletes its
// znode (the package doc: "znode deleted by someone else ─► grain stopped
// at once"), it is not stopped, another member activates the identity,
// and both activations answer requests.
func TestAttackOwnWatchGivesUpAfterOneFailedArm(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, srv[0])
	a := newInproc(t, provider.Config{
		Servers: []string{proxy.Addr()}, Root: root,
		SessionTimeout: 8 * time.Second, RequestTimeout: time.Second,
	}, nil)
	if err := a.startMember(); err != nil {
		t.Fatal(err)
	}
	aID := a.system.ID
	a.waitTopology(aID)

	// Activations made while a is the only member: all on a.
	const n = 12
	first := map[string]answer{}
	for i := range n {
		id := fmt.Sprintf("wo-%d", i)
		first[id] = a.requestEventually(id, "incr")
		if first[id].member != aID {
			t.Fatalf("%s on %s, want %s", id, first[id].member, aID)
		}
	}
	zktest.Eventually(t, wait, func() error {
		if got := ownWatchers(); got != n {
			return fmt.Errorf("%d own-znode watches armed, want %d", got, n)
		}
		return nil
	})

	b := startChild(t, childOpts{servers: srv, root: root})
	a.waitTopology(aID, b.ID)
	waitMembers(t, []string{aID, b.ID}, b)
	var onB []string // identities that b would activate itself
	for i := range n {
		id := fmt.Sprintf("wo-%d", i)
		if pickOf([]string{aID, b.ID}, counterKind, id) == b.ID {
			onB = append(onB, id)
		}
	}
	if len(onB) == 0 {
		t.Fatalf("none of %d identities hashes to the second member (odds 1 in 4096): the test proves nothing this time", n)
	}

	// a's requests stop reaching ZooKeeper (its replies still come); a data
	// change on every activation znode makes each watchOwn re-arm, which
	// meets the silence.
	conn := zktest.Dial(t, srv, 10*time.Second)
	layoutPath := func(id string) string {
		return root + "/activations/" + counterKind + "/" + id
	}
	proxy.DropToTarget()
	for i := range n {
		p := layoutPath(fmt.Sprintf("wo-%d", i))
		data, _, err := conn.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Set(p, data, -1); err != nil {
			t.Fatal(err)
		}
	}
	// A correct implementation keeps trying; this one gives up after
	// RequestTimeout. Wait for either (bounded by three RequestTimeouts).
	cut := time.Now()
	zktest.Eventually(t, wait, func() error {
		if ownWatchers() == 0 || time.Since(cut) > 3*time.Second {
			return nil
		}
		return fmt.Errorf("%d own-znode watches still armed or arming", ownWatchers())
	})
	left := ownWatchers()
	proxy.Restore()
	zktest.Eventually(t, wait, func() error {
		if !a.p.Session().Connected() || !time.Now().Before(a.p.Session().SafeUntil()) {
			return errors.New("a has not reconnected yet")
		}
		return nil
	})
	if d := a.eventsOf("deactivated"); len(d) != 0 {
		t.Fatalf("activations stopped during the short silence (the lease should have held): %v", d)
	}
	t.Logf("after %v of silence towards ZooKeeper: %d of %d own-znode watches left", time.Since(cut).Round(time.Millisecond), left, n)

	// Someone deletes the activation znodes.
	for i := range n {
		if err := conn.Delete(layoutPath(fmt.Sprintf("wo-%d", i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	// A foreign delete lets another member activate at once, and a hears
	// of it one notification later (as a global's leader does): that much
	// overlap is the delete's, not the watch's. So a gets its
	// notifications first; with its watches abandoned it never stops them.
	zktest.Eventually(t, wait, func() error {
		if d := len(a.eventsOf("deactivated")); d < n {
			return fmt.Errorf("%d of %d old activations stopped after their znodes were deleted (the watch was abandoned after one failed ExistsW)", d, n)
		}
		return nil
	})
	var failures []string
	for _, id := range onB {
		// b activates the identity anew (the record is gone).
		nb := requestEventually(t, b, id, "incr")
		if nb.member != b.ID {
			continue
		}
		// a still has the old PID (protoactor's PidCache): is the old
		// activation still there to answer it?
		na, err := a.request(id, "incr")
		if err == nil && na.member == aID && na.epoch == first[id].epoch {
			failures = append(failures, fmt.Sprintf("%s: b's activation (epoch %d) answered %d; a's old one (epoch %d), whose znode was deleted, answered %d",
				id, nb.epoch, nb.count, na.epoch, na.count))
		}
	}
	if len(failures) > 0 {
		t.Errorf("two activations of one identity answer at once (the grain was not stopped when its znode was deleted: its watch was abandoned after one failed ExistsW):\n%s",
			strings.Join(failures, "\n"))
	}
}

// TestAttackJoinRetriedOnANewSession: the member znode's create is retried
// by Session.Do on whatever session the client has by then (Idempotent),
// and the provider registers for Expired only after the join. A member
// whose first session expires while its join create is applied but
// unanswered therefore re-creates <root>/nodes/<id> on a new session: the
// others saw the id join and leave (protoactor blocked it for good), the id
// comes back under the same name, and the member never learns that it
// died: Err stays nil, Dead never closes (Supervise would never restart
// it), and the others never admit it again. The package doc: the member
// znode "is never re-created: a member whose znode is gone is dead".
func TestAttackJoinRetriedOnANewSession(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, srv[0])
	b := startChild(t, childOpts{servers: srv, root: root})
	waitMembers(t, []string{b.ID}, b)

	var s1 int64
	a := newInproc(t, provider.Config{Servers: []string{proxy.Addr()}, Root: root, SessionTimeout: time.Second},
		func(p *provider.Provider) pcluster.ClusterProvider {
			return &hookedProvider{Provider: p, before: func() {
				s1 = p.Session().ID()
				// The join's create reaches ZooKeeper; its reply is lost.
				proxy.DropFromTarget()
			}}
		})
	aID := a.system.ID
	started := make(chan error, 1)
	go func() { started <- a.startMember() }()

	conn := zktest.Dial(t, srv, 10*time.Second)
	nodePath := root + "/nodes/" + aID
	zktest.Eventually(t, wait, func() error {
		ok, stat, err := conn.Exists(nodePath)
		if err != nil || !ok {
			return fmt.Errorf("%s exists = %v, %v", nodePath, ok, err)
		}
		if stat.EphemeralOwner != s1 {
			return fmt.Errorf("%s owned by %#x, want the first session %#x", nodePath, stat.EphemeralOwner, s1)
		}
		return nil
	})
	waitMembers(t, []string{aID, b.ID}, b) // b admitted a
	// The session expires: b drops the member (and blocks its id).
	proxy.Blackhole()
	waitMembers(t, []string{b.ID}, b)
	proxy.Restore()

	select {
	case err := <-started:
		if err != nil {
			t.Logf("StartMember failed (the join was not retried on the new session): %v", err)
			return
		}
	case <-time.After(40 * time.Second):
		t.Fatal("StartMember did not return")
	}
	_, stat, err := conn.Exists(nodePath)
	if err != nil {
		t.Fatal(err)
	}
	s2 := a.p.Session().ID()
	t.Logf("first session %#x; after StartMember the provider's session is %#x and %s is owned by %#x", s1, s2, nodePath, stat.EphemeralOwner)

	// Either the member knows it died, or the others take it back: nothing
	// else is a consistent cluster.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.do("members")
		if a.p.Err() != nil || strings.Contains(got, aID) {
			t.Logf("consistent: Err=%v, b sees [%s]", a.p.Err(), got)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %#x expired during the join, yet %s was re-created on session %#x under the same id: "+
				"the member is not dead (Err() = %v, Dead open) and believes it is a member (its topology [%s]), "+
				"while b, which saw the id leave, keeps it out for good (b sees [%s])",
				s1, nodePath, stat.EphemeralOwner, a.p.Err(), a.topology(), got)
		}
		select {
		case <-a.p.Dead():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestAttackDeathByDeletedNodeReleasesBeforeGrainsStop: when someone else
// deletes a member's znode, the member dies (the package doc: "The same
// happens when someone else deletes a member's node znode"). Its session
// is alive, so it could still vouch for its activations; but die() only
// sends them a Stop and closes the session at once, on another goroutine,
// without waiting for them to stop (Shutdown waits: "Activations end
// before their znodes can go"). Closing the session deletes the activation
// znodes, so another member activates an identity while its activation on
// the dead member is still handling a message (here one that takes 1.5 s,
// well within the 3.6 s lease): two activations at once.
func TestAttackDeathByDeletedNodeReleasesBeforeGrainsStop(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	a := newInproc(t, provider.Config{Servers: srv, Root: root, SessionTimeout: 4 * time.Second}, nil)
	if err := a.startMember(); err != nil {
		t.Fatal(err)
	}
	aID := a.system.ID
	b := startChild(t, childOpts{servers: srv, root: root, sessionTimeout: 4 * time.Second})
	a.waitTopology(aID, b.ID)
	waitMembers(t, []string{aID, b.ID}, b)

	var id string
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("dd-%d", i); pickOf([]string{aID, b.ID}, counterKind, c) == aID {
			id = c
		}
	}
	first := a.requestEventually(id, "incr")
	if first.member != aID {
		t.Fatalf("%s activated on %s, want %s", id, first.member, aID)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := a.request(id, "slow")
		slow <- err
	}()
	zktest.Eventually(t, wait, func() error {
		if len(a.eventsOf("handling")) == 0 {
			return errors.New("the slow message is not being handled yet")
		}
		return nil
	})
	conn := zktest.Dial(t, srv, 10*time.Second)
	if err := conn.Delete(root+"/nodes/"+aID, -1); err != nil {
		t.Fatal(err)
	}
	again := requestEventually(t, b, id, "incr")
	if again.member != b.ID || again.epoch <= first.epoch {
		t.Fatalf("after a's death: %+v", again)
	}
	bStarted := eventTime(b, "activated", id, again.epoch)
	if err := <-slow; err != nil {
		t.Logf("the slow request: %v", err)
	}
	zktest.Eventually(t, wait, func() error {
		if len(a.eventsOf("deactivated")) == 0 {
			return errors.New("a's activation has not stopped")
		}
		return nil
	})
	handled := a.eventsOf("handled")[0].at
	stopped := a.eventsOf("deactivated")[0].at
	t.Logf("a dead: %v; b activated %s (epoch %d) %v after a's handler ended, %v after a's activation (epoch %d) stopped",
		a.p.Err(), id, again.epoch, time.Duration(bStarted-handled).Round(time.Millisecond),
		time.Duration(bStarted-stopped).Round(time.Millisecond), first.epoch)
	if bStarted == 0 || bStarted < stopped {
		t.Errorf("two activations of %s at once: b's (epoch %d) started %v before a's (epoch %d) stopped; a's was still handling a message, and its member had closed its session (deleting the znode) without waiting for it",
			id, again.epoch, time.Duration(stopped-bStarted).Round(time.Millisecond), first.epoch)
	}
}

// zkactorFrame matches a stack frame in zkactor's library code (not the
// tests').
var zkactorFrame = regexp.MustCompile(`github\.com/zkactor/zkactor/(cluster|global|provider|internal/[a-z]+)\.`)

// zkactorGoroutines returns the stacks of the goroutines that run
// zkactor's library code.
func zkactorGoroutines() []string {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if zkactorFrame.MatchString(g) {
			out = append(out, g)
		}
	}
	return out
}

// TestAttackNoGoroutinesLeftAfterDeathAndShutdown: a member with
// activations and a singleton dies (its znode deleted by someone else), is
// shut down, and leaves no goroutine of zkactor's behind.
func TestAttackNoGoroutinesLeftAfterDeathAndShutdown(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	a := newInproc(t, provider.Config{Servers: srv, Root: root, SessionTimeout: 2 * time.Second}, nil)
	if err := a.startMember(); err != nil {
		t.Fatal(err)
	}
	aID := a.system.ID
	a.waitTopology(aID)
	for i := range 5 {
		a.requestEventually(fmt.Sprintf("leak-%d", i), "incr")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.p.Singleton(ctx, "ledger", a.singleton("ledger")); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, wait, func() error {
		if len(a.eventsOf("elected")) == 0 {
			return errors.New("not elected yet")
		}
		return nil
	})
	conn := zktest.Dial(t, srv, 10*time.Second)
	if err := conn.Delete(root+"/nodes/"+aID, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.p.Dead():
	case <-time.After(wait):
		t.Fatal("not dead")
	}
	a.shutdown()
	zktest.Eventually(t, wait, func() error {
		if g := zkactorGoroutines(); len(g) > 0 {
			return fmt.Errorf("%d goroutines of zkactor left after Shutdown:\n%s", len(g), strings.Join(g, "\n\n"))
		}
		return nil
	})
}

// TestAttackDeadMemberCandidacySpins: a member that died (its znode deleted
// by someone else) keeps its elections open on its closed session until
// Shutdown; its candidacy tries to enter the election again every 100 ms,
// each failing with "zkactor: closed" and logged as a warning, for as long
// as the application keeps the dead incarnation (without Supervise, "the
// application decides").
func TestAttackDeadMemberCandidacySpins(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := newInproc(t, provider.Config{Servers: srv, Root: root, SessionTimeout: 2 * time.Second, Logger: log}, nil)
	if err := a.startMember(); err != nil {
		t.Fatal(err)
	}
	aID := a.system.ID
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.p.Singleton(ctx, "ledger", a.singleton("ledger")); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, wait, func() error {
		if len(a.eventsOf("elected")) == 0 {
			return errors.New("not elected yet")
		}
		return nil
	})
	conn := zktest.Dial(t, srv, 10*time.Second)
	if err := conn.Delete(root+"/nodes/"+aID, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.p.Dead():
	case <-time.After(wait):
		t.Fatal("not dead")
	}
	died := time.Now()
	retries := func() int { return strings.Count(logs.String(), `msg="entering the election"`) }
	zktest.Eventually(t, wait, func() error {
		if retries() >= 20 || time.Since(died) > 3*time.Second {
			return nil
		}
		return fmt.Errorf("%d retries so far", retries())
	})
	if n := retries(); n >= 20 {
		t.Errorf("the dead member's candidacy tried to enter the election %d times within %v of its death (on a closed session), and goes on until Shutdown",
			n, time.Since(died).Round(time.Millisecond))
	}
}

// TestAttackShutdownWhileActivating: Shutdown while activations are being
// made leaves no grain running, no activation znode, and no goroutine of
// zkactor's.
func TestAttackShutdownWhileActivating(t *testing.T) {
	if attackInOwnProcess(t) {
		return
	}
	srv := attackServers(t)
	root := zktest.Root(t)
	a := newInproc(t, provider.Config{Servers: srv, Root: root, SessionTimeout: 2 * time.Second}, nil)
	if err := a.startMember(); err != nil {
		t.Fatal(err)
	}
	a.waitTopology(a.system.ID)
	a.requestEventually("warm", "incr")
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = a.p.IdentityLookup().Activation(ctx, fmt.Sprintf("sd-%d", i), counterKind)
		}()
	}
	zktest.Eventually(t, wait, func() error {
		if n := len(a.eventsOf("activated")); n < 8 {
			return fmt.Errorf("%d activated so far", n)
		}
		return nil
	})
	a.shutdown()
	conn := zktest.Dial(t, srv, 10*time.Second)
	kids, _, err := conn.Children(root + "/activations/" + counterKind)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatal(err)
	}
	if len(kids) > 0 {
		t.Errorf("activation znodes left after Shutdown returned: %q", kids)
	}
	wg.Wait()
	act, deact := len(a.eventsOf("activated")), len(a.eventsOf("deactivated"))
	t.Logf("%d activated, %d deactivated", act, deact)
	if act != deact {
		t.Errorf("%d grains activated, %d stopped: some still run after Shutdown", act, deact)
	}
	zktest.Eventually(t, wait, func() error {
		if g := zkactorGoroutines(); len(g) > 0 {
			return fmt.Errorf("%d goroutines of zkactor left after Shutdown:\n%s", len(g), strings.Join(g, "\n\n"))
		}
		return nil
	})
}
