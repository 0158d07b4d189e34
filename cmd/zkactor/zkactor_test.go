package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// fixture is a small cluster: two nodes, a service on both with metadata, a
// global with a queue of two (n1 leads), and one boss job in the work
// queue "jobs".
type fixture struct {
	servers []string
	root    string
	n1, n2  *testnode.Node
	raw     *zk.Conn // a plain client, for what the test plants
	leader  *actor.PID
	epoch   int64
	jobs    *workqueue.Queue // n1's handle on cmd/boss's queue
	job     string           // the job's item id
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	zkc := zktest.Shared(t)
	f := &fixture{servers: zkc.Addrs(), root: zktest.Root(t), raw: zkc.Connect(t)}
	f.n1 = testnode.New(t, testnode.Options{Servers: f.servers, Root: f.root})
	f.n2 = testnode.New(t, testnode.Options{Servers: f.servers, Root: f.root})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, r := range []struct {
		n    *testnode.Node
		zone string
	}{{f.n1, "a"}, {f.n2, "b"}} {
		if err := r.n.Registry.Register(ctx, "worker", r.n.Spawn(t), map[string]string{"zone": r.zone}); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	props := actor.PropsFromFunc(func(actor.Context) {})
	var err error
	if f.leader, err = f.n1.Elections.RegisterCandidate(ctx, "boss", props); err != nil {
		t.Fatalf("n1 stands: %v", err)
	}
	if _, err := f.n2.Elections.RegisterCandidate(ctx, "boss", props); err != nil {
		t.Fatalf("n2 stands: %v", err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		var ok bool
		if f.epoch, ok = f.n1.Elections.Epoch("boss"); !ok {
			return fmt.Errorf("n1's term has not started")
		}
		return nil
	})
	// As cmd/boss records a job (cmd/boss/jobs.go): key job-<token>, payload its text.
	f.jobs = openQueue(t, f.n1, f.root, "jobs")
	job, _ := proto.Marshal(&bossv1.Job{Text: "feed the cat"})
	if f.job, err = f.jobs.Put(ctx, "job-abc", job); err != nil {
		t.Fatalf("put the job: %v", err)
	}
	return f
}

func openQueue(t *testing.T, n *testnode.Node, root, name string) *workqueue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := workqueue.Open(ctx, n.Session, name, workqueue.Options{Root: root, Producer: n.Registry.NodeID()})
	if err != nil {
		t.Fatalf("open queue %s: %v", name, err)
	}
	t.Cleanup(q.Close)
	return q
}

// create plants a znode (the command never writes; the test does).
func (f *fixture) create(t *testing.T, c *zk.Conn, rel string, data []byte, flags int32) string {
	t.Helper()
	p, err := zkutil.CreateWithParents(c, f.root, f.root+rel, data, flags, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("plant %s: %v", rel, err)
	}
	return p
}

func (f *fixture) args(cmd string, extra ...string) []string {
	return append([]string{cmd, "-zk", strings.Join(f.servers, ","), "-root", f.root}, extra...)
}

// zkactor runs the command in process and returns its exit status and output.
func zkactor(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestInspectJSON(t *testing.T) {
	f := newFixture(t)
	code, out, stderr := zkactor(t, f.args("inspect", "-json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Root != f.root || len(r.Unreadable) != 0 {
		t.Errorf("root %q, unreadable %v", r.Root, r.Unreadable)
	}
	nodes := map[string]string{}
	for _, n := range r.Nodes {
		nodes[n.ID] = n.Address
		if n.StartedAt.IsZero() || !strings.HasPrefix(n.Session, "0x") {
			t.Errorf("node %+v: no start time or session", n)
		}
	}
	want := map[string]string{
		f.n1.Registry.NodeID(): f.n1.System.Address(),
		f.n2.Registry.NodeID(): f.n2.System.Address(),
	}
	if fmt.Sprint(nodes) != fmt.Sprint(want) {
		t.Errorf("nodes %v, want %v", nodes, want)
	}

	if len(r.Services) != 1 || r.Services[0].Name != "worker" || len(r.Services[0].Members) != 2 {
		t.Fatalf("services %+v, want worker with 2 members", r.Services)
	}
	zones := map[string]string{}
	for _, m := range r.Services[0].Members {
		zones[m.NodeID] = m.Metadata["zone"]
		if m.PID.Address != nodes[m.NodeID] || m.PID.ID == "" {
			t.Errorf("member %+v: PID not on its node", m)
		}
	}
	if zones[f.n1.Registry.NodeID()] != "a" || zones[f.n2.Registry.NodeID()] != "b" {
		t.Errorf("metadata by node %v, want zone a on n1, b on n2", zones)
	}

	if len(r.Globals) != 1 {
		t.Fatalf("globals %+v, want boss", r.Globals)
	}
	g := r.Globals[0]
	if g.Name != "boss" || g.Leader == nil || *g.Leader.PID != (PID{f.leader.Address, f.leader.Id}) ||
		g.Leader.NodeID != f.n1.Registry.NodeID() || g.Epoch != f.epoch {
		t.Errorf("global %+v (leader %+v), want boss led by %v on n1, epoch %d", g, g.Leader, f.leader, f.epoch)
	}
	if len(g.Queue) != 2 || g.Queue[0].NodeID != f.n1.Registry.NodeID() || g.Queue[1].NodeID != f.n2.Registry.NodeID() ||
		g.Queue[1].Position != 1 || g.Queue[0].Sequence >= g.Queue[1].Sequence || g.Queue[1].PID == nil {
		t.Errorf("queue %+v, want n1 then n2", g.Queue)
	}

	if len(r.Jobs) != 1 || r.Jobs[0].ID != "job-abc" || r.Jobs[0].Text != "feed the cat" || r.Jobs[0].SubmittedAt.IsZero() ||
		r.Jobs[0].Item != f.job || r.Jobs[0].Key != "job-abc" || r.Jobs[0].Producer != f.n1.Registry.NodeID() ||
		r.Jobs[0].PutAt != r.Jobs[0].SubmittedAt || r.Jobs[0].Attempts != 0 || r.Jobs[0].Claim != nil {
		t.Errorf("jobs %+v, want job-abc, unclaimed", r.Jobs)
	}
	// Stable names: the raw document has them, and nothing null where a list belongs.
	for _, key := range []string{`"nodes":`, `"services":`, `"members":`, `"metadata":`, `"globals":`, `"leader":`, `"epoch":`,
		`"queue":`, `"position":`, `"jobs":`, `"submitted_at":`, `"unreadable": []`} {
		if !strings.Contains(out, key) {
			t.Errorf("the document has no %s", key)
		}
	}
}

func TestInspectText(t *testing.T) {
	f := newFixture(t)
	code, out, stderr := zkactor(t, f.args("inspect")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("\n%s", out)
	n1, n2 := f.n1.Registry.NodeID(), f.n2.Registry.NodeID()
	for _, want := range []string{
		"root " + f.root,
		"NODES (2)", n1 + "  ", n2 + "  ", f.n1.System.Address(),
		"SERVICES (1)", "worker (2)", "zone=a", "zone=b",
		"GLOBALS (1)", fmt.Sprintf("boss: leader %s/%s on %s, epoch %d", f.leader.Address, f.leader.Id, n1, f.epoch),
		"JOBS (1)", "job-abc", "feed the cat",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	// The queue: n1 at position 0, n2 at 1.
	var queue []string
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Fields(line); len(fields) == 5 && (fields[2] == n1 || fields[2] == n2) {
			queue = append(queue, fields[0]+" "+fields[2])
		}
	}
	if strings.Join(queue, ",") != "0 "+n1+",1 "+n2 {
		t.Errorf("queue lines %q, want n1 at 0 and n2 at 1", queue)
	}
}

// syncBuffer is a bytes.Buffer the watching command writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
}

func TestInspectWatch(t *testing.T) {
	f := newFixture(t)
	var out, errOut syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, f.args("inspect", "-watch", "-json", "-for", "60s"), &out, &errOut) }()

	reports := func() ([]Report, error) {
		var rs []Report
		for _, line := range out.lines() {
			if line == "" {
				continue
			}
			var r Report
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return nil, fmt.Errorf("line %q: %v", line, err)
			}
			rs = append(rs, r)
		}
		return rs, nil
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		rs, err := reports()
		if err == nil && len(rs) == 0 {
			err = fmt.Errorf("no report yet")
		}
		return err
	})

	// One change at a time, each waited for, so that each needs its own
	// watch: a job taken (its item's data and a child of claims/), a new
	// service (a children watch), the leader resigning (a deletion).
	last := func() (Report, error) {
		rs, err := reports()
		if err != nil {
			return Report{}, err
		}
		return rs[len(rs)-1], nil
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := f.jobs.Take(ctx2); err != nil {
		t.Fatal(err)
	}
	claimedBy := session(f.n1.Session.ID())
	zktest.Eventually(t, 10*time.Second, func() error {
		r, err := last()
		if err == nil && (len(r.Jobs) != 1 || r.Jobs[0].Attempts != 1 || r.Jobs[0].Claim == nil || r.Jobs[0].Claim.Session != claimedBy) {
			err = fmt.Errorf("the last report has jobs %+v, want job-abc claimed by %s", r.Jobs, claimedBy)
		}
		return err
	})
	if err := f.n1.Registry.Register(ctx2, "late", f.n1.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		r, err := last()
		if err == nil && (len(r.Services) != 2 || r.Services[0].Name != "late") {
			err = fmt.Errorf("the last report has services %+v", r.Services)
		}
		return err
	})
	if err := f.n1.Elections.Resign(ctx2, "boss"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		r, err := last()
		if g := r.Globals; err == nil && (len(g) != 1 || len(g[0].Queue) != 1 || g[0].Leader == nil || g[0].Leader.NodeID != f.n2.Registry.NodeID()) {
			err = fmt.Errorf("the last report has globals %+v, want n2 leading alone", g)
		}
		return err
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, strings.Join(errOut.lines(), "\n"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("inspect -watch did not stop when its context ended")
	}
}

func TestInspectWatchFor(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	code, out, stderr := zkactor(t, f.args("inspect", "-watch", "-for", "300ms")...)
	if code != 0 || !strings.Contains(out, "NODES (2)") {
		t.Fatalf("exit %d, output %q, stderr %q", code, out, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("-for 300ms took %v", d)
	}
}

type finding struct{ kind, path string }

func runDoctorJSON(t *testing.T, f *fixture) (int, map[finding][]string, string) {
	t.Helper()
	code, out, stderr := zkactor(t, f.args("doctor", "-json")...)
	var doc struct{ Findings []Finding }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("doctor -json: %v\n%s\n%s", err, out, stderr)
	}
	got := map[finding][]string{}
	for _, x := range doc.Findings {
		got[finding{x.Kind, x.Path}] = append(got[finding{x.Kind, x.Path}], x.Problem)
	}
	return code, got, stderr
}

func TestDoctorClean(t *testing.T) {
	f := newFixture(t)
	code, out, stderr := zkactor(t, f.args("doctor")...)
	if code != 0 || out != "" {
		t.Fatalf("doctor on a clean cluster: exit %d, findings:\n%s%s", code, out, stderr)
	}
}

// TestDoctorCleanDigest: a cluster whose nodes use a digest ACL (world
// read beside it) is clean too.
func TestDoctorCleanDigest(t *testing.T) {
	servers, root := zktest.Shared(t).Addrs(), zktest.Root(t)
	auth := &cluster.DigestAuth{User: "ops", Password: "secret"}
	n1 := testnode.New(t, testnode.Options{Servers: servers, Root: root, Auth: auth})
	testnode.New(t, testnode.Options{Servers: servers, Root: root, Auth: auth})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n1.Registry.Register(ctx, "worker", n1.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Elections.RegisterCandidate(ctx, "boss", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
		t.Fatal(err)
	}
	args := []string{"-zk", strings.Join(servers, ","), "-root", root}
	code, out, stderr := zkactor(t, append([]string{"doctor"}, args...)...)
	if code != 0 || out != "" {
		t.Fatalf("doctor on a clean cluster with digest ACLs: exit %d, findings:\n%s%s", code, out, stderr)
	}
	// Without credentials, inspect still reads everything.
	code, out, stderr = zkactor(t, append([]string{"inspect"}, args...)...)
	if code != 0 || !strings.Contains(out, "worker (1)") || !strings.Contains(out, "boss: leader") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, stderr)
	}
}

func TestDoctorFindsGarbage(t *testing.T) {
	f := newFixture(t)
	zkc := zktest.Shared(t)
	guid := strings.Repeat("ab", 16)
	junk := []byte{0xff, 0x00, 'j', 'u', 'n', 'k'}

	// A foreign znode under services/.
	f.create(t, f.raw, "/services/worker/garbage", junk, 0)
	// A persistent candidate-shaped znode in boss's queue: it takes no part.
	persistent := f.create(t, f.raw, "/globals/boss/_c_"+guid+"-c-0000000000", junk, 0)
	// A name whose head is another client's ephemeral, with a node queued behind.
	foreign := f.create(t, f.raw, "/globals/ghost/_c_"+guid+"-c-", junk, zk.FlagEphemeral|zk.FlagSequence)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.n2.Elections.RegisterCandidate(ctx, "ghost", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
		t.Fatal(err)
	}
	// A service znode with an ACL of its own.
	if _, err := f.raw.Create(f.root+"/services/readonly", nil, 0, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatal(err)
	}
	// A second "node" (another client's session) with n1's address.
	impostor, _ := proto.Marshal(&pb.Node{Id: "impostor", Address: f.n1.System.Address()})
	f.create(t, zkc.Connect(t), "/nodes/impostor", impostor, zk.FlagEphemeral)
	// A candidate whose client lost its connection (behind a proxy that is
	// cut): its session lives on the server but is connected nowhere.
	proxies, addrs := zktest.Proxies(t, zkc)
	lost := zktest.Dial(t, addrs, 30*time.Second)
	cand, _ := proto.Marshal(&pb.Candidate{Name: "boss", Pid: &pb.PID{Address: "lost:1", Id: "boss"}, NodeId: "lost"})
	stale := f.create(t, lost, "/globals/boss/_c_"+strings.Repeat("cd", 16)+"-c-", cand, zk.FlagEphemeral|zk.FlagSequence)
	proxies[0].Cut()

	want := map[finding]bool{
		{kindGarbage, f.root + "/services/worker/garbage"}: true,
		{kindGarbage, persistent}:                          true,
		{kindGarbage, foreign}:                             true,
		{kindForeignSession, foreign}:                      true,
		{kindNoLeader, f.root + "/globals/ghost"}:          true,
		{kindACL, f.root + "/services/readonly"}:           true,
		{kindDuplicateAddr, f.root + "/nodes"}:             true,
		{kindStaleSession, stale}:                          true,
	}
	var (
		code int
		got  map[finding][]string
	)
	// The server notices the cut connection of the lost session at once,
	// but asynchronously: wait until cons no longer lists it.
	zktest.Eventually(t, 10*time.Second, func() error {
		code, got, _ = runDoctorJSON(t, f)
		if _, ok := got[finding{kindStaleSession, stale}]; !ok {
			return fmt.Errorf("no stale-session for %s yet: %v", stale, got)
		}
		return nil
	})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing %s %s", w.kind, w.path)
		}
	}
	for g, problems := range got {
		if !want[g] {
			t.Errorf("unexpected %s %s: %v", g.kind, g.path, problems)
		}
	}
	// The text form: one finding per line, "<kind> <path>: <problem>".
	code, out, _ := zkactor(t, f.args("doctor")...)
	t.Logf("doctor:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) < len(want) {
		t.Errorf("text form: exit %d, %d lines, want 1 and at least %d", code, len(lines), len(want))
	}
	for _, line := range lines {
		kind, rest, _ := strings.Cut(line, " ")
		path, problem, _ := strings.Cut(rest, ": ")
		if !strings.HasPrefix(path, f.root) || problem == "" || !wantKinds[kind] {
			t.Errorf("line %q is not <kind> <path>: <problem>", line)
		}
	}
}

var wantKinds = map[string]bool{kindGarbage: true, kindStaleSession: true, kindForeignSession: true, kindNoLeader: true, kindACL: true, kindDuplicateAddr: true}

func TestZooKeeperDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, cmd := range []string{"inspect", "doctor"} {
		start := time.Now()
		code, out, stderr := zkactor(t, cmd, "-zk", addr, "-timeout", "1s")
		took := time.Since(start)
		if code != exitFailed || out != "" {
			t.Errorf("%s: exit %d, output %q, want 2 and nothing", cmd, code, out)
		}
		if !strings.Contains(stderr, "no ZooKeeper server answered at "+addr+" within 1s") {
			t.Errorf("%s: unclear error %q", cmd, stderr)
		}
		if took > 5*time.Second {
			t.Errorf("%s: gave up after %v with -timeout 1s", cmd, took)
		}
	}
}

func TestNoRoot(t *testing.T) {
	root := zktest.Root(t)
	code, out, stderr := zkactor(t, "inspect", "-zk", strings.Join(zktest.Shared(t).Addrs(), ","), "-root", root)
	if code != exitFailed || out != "" || !strings.Contains(stderr, "root "+root+" does not exist") {
		t.Errorf("exit %d, output %q, stderr %q", code, out, stderr)
	}
}

// TestReadOnly: the command calls no go-zookeeper method that writes.
func TestReadOnly(t *testing.T) {
	writes := map[string]bool{
		"Create": true, "CreateContainer": true, "CreateProtectedEphemeralSequential": true, "CreateTTL": true,
		"Set": true, "Delete": true, "Multi": true, "SetACL": true, "CreateWithParents": true,
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range pkgs {
		for _, file := range pkg.Files {
			ast.Inspect(file, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && writes[sel.Sel.Name] {
					t.Errorf("%s: calls %s", fset.Position(sel.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
}

func TestACLRules(t *testing.T) {
	digest := zk.DigestACL(zk.PermAll, "ops", "secret")
	zkactorDigest := append(digest, zk.WorldACL(zk.PermRead)...)
	if worldWritableBesideDigest(zkactorDigest) {
		t.Errorf("digest + world read flagged")
	}
	if !worldWritableBesideDigest(append(digest, zk.WorldACL(zk.PermWrite)...)) {
		t.Errorf("digest + world write not flagged")
	}
	if worldWritableBesideDigest(zk.WorldACL(zk.PermAll)) {
		t.Errorf("an open ACL (no digest) flagged")
	}
	if !sameACL(zkactorDigest, append(zk.WorldACL(zk.PermRead), digest...)) || sameACL(zkactorDigest, digest) {
		t.Errorf("sameACL depends on order, or misses a difference")
	}
	if got := formatACL(zkactorDigest); !strings.Contains(got, "world:anyone:r") || !strings.Contains(got, "digest:ops:") || !strings.HasSuffix(strings.Split(got, ",")[0], ":cdrwa") {
		t.Errorf("formatACL = %q", got)
	}
}
