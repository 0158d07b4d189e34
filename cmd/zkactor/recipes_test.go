package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

// recipes is the fixture with one of each of the other parts, made by the
// packages themselves (a provider member and its activation are planted
// on a plain client, as package provider writes them):
//   - a work queue "mail" with two items, the first taken by n2;
//   - a role set "shards" with roles s1 (bytes) and s2 (no spec), n1 and
//     n2 applying for one role each, so both are held;
//   - a lock "db" held by n1 (for an actor), n2 waiting behind it;
//   - a barrier "phase-1" of two, both nodes inside;
//   - a config "billing" with an override for process p1;
//   - a member "member-1" hosting kind cart, with identity alice activated.
type recipes struct {
	*fixture
	mailTaken     *workqueue.Item
	mailFree      string
	lockFor       *actor.PID
	lockHolder    int64 // n1's session
	lockWaiter    int64 // n2's session
	member        *zk.Conn
	memberSession int64
	alicePID      *pb.PID
}

func newRecipes(t *testing.T) *recipes {
	t.Helper()
	f := &recipes{fixture: newFixture(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	mail := openQueue(t, f.n1, f.root, "mail")
	if _, err := mail.Put(ctx, "first", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.mailFree, err = mail.Put(ctx, "second", []byte("world!")); err != nil {
		t.Fatal(err)
	}
	if f.mailTaken, err = openQueue(t, f.n2, f.root, "mail").Take(ctx); err != nil {
		t.Fatal(err)
	}

	// A Take waiting on the empty queue "idle": a waiter in its line.
	idle := openQueue(t, f.n1, f.root, "idle")
	takeCtx, stopTaking := context.WithCancel(context.Background())
	taking := make(chan struct{})
	go func() {
		defer close(taking)
		_, _ = idle.Take(takeCtx)
	}()
	t.Cleanup(func() { stopTaking(); <-taking })
	zktest.Eventually(t, 10*time.Second, func() error {
		names, _, err := f.raw.Children(f.root + "/queues/idle/waiters")
		if err == nil && len(names) != 1 {
			err = fmt.Errorf("waiters %v, want 1", names)
		}
		return err
	})

	holder := actor.PropsFromFunc(func(actor.Context) {})
	var roles []*rolematch.Roles
	for _, n := range []*testnode.Node{f.n1, f.n2} {
		r := rolematch.New(n.System, n.Registry, n.Elections, rolematch.Options{})
		roles = append(roles, r)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.Close(ctx)
		})
	}
	if err := roles[0].Post(ctx, "shards", rolematch.Role{Name: "s1", Data: []byte("abc")}, rolematch.Role{Name: "s2"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if _, err := r.Apply(ctx, "shards", 1, holder); err != nil {
			t.Fatal(err)
		}
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		h, err := roles[0].Holders(ctx, "shards")
		if err == nil && len(h) != 2 {
			err = fmt.Errorf("holders %+v, want s1 and s2 held", h)
		}
		return err
	})

	f.lockFor = f.n1.Spawn(t)
	m1, err := lock.New(f.n1.Session, f.root, "db", lock.Options{NodeID: f.n1.Registry.NodeID(), Holder: f.lockFor})
	if err != nil {
		t.Fatal(err)
	}
	held, err := m1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Unlock(context.Background()) })
	f.lockHolder, f.lockWaiter = f.n1.Session.ID(), f.n2.Session.ID()
	m2, err := lock.New(f.n2.Session, f.root, "db", lock.Options{NodeID: f.n2.Registry.NodeID()})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		if h, err := m2.Lock(waitCtx); err == nil {
			_ = h.Unlock(context.Background())
		}
	}()
	t.Cleanup(func() { stopWaiting(); <-waiting })
	zktest.Eventually(t, 10*time.Second, func() error {
		names, _, err := f.raw.Children(lock.Path(f.root, "db"))
		if err == nil && len(names) != 2 {
			err = fmt.Errorf("lock waiters %v, want 2", names)
		}
		return err
	})

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, n := range []*testnode.Node{f.n1, f.n2} {
		b, err := barrier.New(n.Session, f.root, "phase-1", 2, barrier.Options{NodeID: n.Registry.NodeID()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Enter(ctx)
		}()
	}
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("enter the barrier: %v", err)
		}
	}

	store, err := config.NewStore(f.n1.System, f.n1.Session, config.Options{Root: f.root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	values, _ := config.ParseJSON([]byte(`{"rate": 3, "currency": "EUR"}`))
	if _, err := store.Set(ctx, "billing", values, config.Absent); err != nil {
		t.Fatal(err)
	}
	override, _ := config.ParseJSON([]byte(`{"rate": 4}`))
	if _, err := store.SetOverride(ctx, "billing", "p1", override, config.Absent); err != nil {
		t.Fatal(err)
	}

	// A provider member: its node record with kinds, and an activation,
	// on its session.
	f.member = zktest.Shared(t).Connect(t)
	f.memberSession = f.member.SessionID()
	node, _ := proto.Marshal(&pb.Node{Id: "member-1", Address: "127.0.0.1:7001", StartedAt: timestamppb.Now(), Kinds: []string{"cart", "user"}})
	f.create(t, f.member, "/nodes/member-1", node, zk.FlagEphemeral)
	f.alicePID = &pb.PID{Address: "127.0.0.1:7001", Id: "partition-activator/cart/alice"}
	act, _ := proto.Marshal(&pb.Activation{Kind: "cart", Identity: "alice", Pid: f.alicePID, MemberId: "member-1", ActivatedAt: timestamppb.Now()})
	f.create(t, f.member, "/activations/cart/alice", act, zk.FlagEphemeral)
	return f
}

func inspectJSON(t *testing.T, f *fixture) (Report, string) {
	t.Helper()
	code, out, stderr := zkactor(t, f.args("inspect", "-json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r, out
}

func TestInspectRecipesJSON(t *testing.T) {
	f := newRecipes(t)
	r, out := inspectJSON(t, f.fixture)
	if len(r.Unreadable) != 0 {
		t.Errorf("unreadable %+v", r.Unreadable)
	}
	n1, n2 := f.n1.Registry.NodeID(), f.n2.Registry.NodeID()
	s1, s2 := session(f.n1.Session.ID()), session(f.n2.Session.ID())

	var member *Node
	for i, n := range r.Nodes {
		if n.ID == "member-1" {
			member = &r.Nodes[i]
		} else if len(n.Kinds) != 0 {
			t.Errorf("node %s has kinds %v, want none", n.ID, n.Kinds)
		}
	}
	if member == nil || strings.Join(member.Kinds, ",") != "cart,user" || member.Session != session(f.memberSession) {
		t.Errorf("member %+v, want member-1 with kinds cart,user", member)
	}
	if len(r.Activations) != 1 || r.Activations[0].Kind != "cart" || len(r.Activations[0].Activations) != 1 {
		t.Fatalf("activations %+v, want cart/alice", r.Activations)
	}
	if a := r.Activations[0].Activations[0]; a.Identity != "alice" || a.PID != pidOf(f.alicePID) || a.MemberID != "member-1" ||
		a.Epoch == 0 || a.ActivatedAt.IsZero() || a.Session != session(f.memberSession) {
		t.Errorf("activation %+v", a)
	}

	queues := map[string]WorkQueue{}
	for _, q := range r.Queues {
		queues[q.Name] = q
	}
	if len(queues) != 3 || len(queues["jobs"].Items) != 1 || queues["jobs"].Held != 0 || queues["jobs"].Waiting != 0 {
		t.Errorf("queues %+v, want jobs (1 item), idle and mail", r.Queues)
	}
	if idle := queues["idle"]; len(idle.Items) != 0 || idle.Waiting != 1 {
		t.Errorf("idle %+v, want no item and a Take waiting", idle)
	}
	mail := queues["mail"]
	if len(mail.Items) != 2 || mail.Held != 1 {
		t.Fatalf("mail %+v, want 2 items, 1 held", mail)
	}
	taken, free := mail.Items[0], mail.Items[1]
	if taken.ID != f.mailTaken.ID || taken.Key != "first" || taken.Attempts != 1 || taken.PayloadSize != 5 || taken.Producer != n1 ||
		taken.PutAt.IsZero() || taken.Claim == nil || taken.Claim.Session != s2 || !strings.HasPrefix(taken.Claim.Taker, n2+"/") ||
		taken.Claim.TakenAt.IsZero() || taken.Claim.Error != "" {
		t.Errorf("taken item %+v (claim %+v), want first, taken by n2", taken, taken.Claim)
	}
	if free.ID != f.mailFree || free.Key != "second" || free.Attempts != 0 || free.PayloadSize != 6 || free.Claim != nil || free.Sequence <= taken.Sequence {
		t.Errorf("free item %+v, want second, after first, unclaimed", free)
	}

	if len(r.Roles) != 1 || r.Roles[0].Name != "shards" || len(r.Roles[0].Roles) != 2 || len(r.Roles[0].Applicants) != 2 {
		t.Fatalf("roles %+v, want shards with s1, s2 and 2 applicants", r.Roles)
	}
	holders := map[string]bool{}
	for _, ro := range r.Roles[0].Roles {
		h := ro.Holder
		if !ro.Posted || ro.PostedAt.IsZero() || h == nil || h.PID == nil || h.Epoch == 0 || h.Applicant == "" {
			t.Errorf("role %+v (holder %+v), want posted and held", ro, h)
			continue
		}
		holders[h.NodeID] = true
		if want := map[string]string{n1: s1, n2: s2}[h.NodeID]; h.Session != want {
			t.Errorf("role %s held by %s on session %s, want %s", ro.Name, h.NodeID, h.Session, want)
		}
	}
	if s := r.Roles[0].Roles; s[0].Name != "s1" || s[0].Spec != "bytes" || s[0].SpecSize != 3 || s[1].Name != "s2" || s[1].Spec != "" {
		t.Errorf("specs %+v, want s1 bytes (3), s2 none", s)
	}
	if !holders[n1] || !holders[n2] {
		t.Errorf("holders on %v, want n1 and n2", holders)
	}
	for _, a := range r.Roles[0].Applicants {
		if a.Limit != 1 || a.Held != 1 || a.Room != 0 || (a.NodeID != n1 && a.NodeID != n2) || a.Since.IsZero() {
			t.Errorf("applicant %+v, want limit 1, held 1, room 0", a)
		}
	}

	if len(r.Locks) != 1 || r.Locks[0].Name != "db" || len(r.Locks[0].Queue) != 2 {
		t.Fatalf("locks %+v, want db with 2 waiters", r.Locks)
	}
	l := r.Locks[0]
	if l.Holder == nil || l.Holder.NodeID != n1 || l.Holder.Session != session(f.lockHolder) || l.Holder.PID == nil ||
		*l.Holder.PID != (PID{f.lockFor.Address, f.lockFor.Id}) || l.Token != l.Holder.Token || l.Token == 0 {
		t.Errorf("lock holder %+v, token %d, want n1 for %v", l.Holder, l.Token, f.lockFor)
	}
	if w := l.Queue[1]; w.Position != 1 || w.NodeID != n2 || w.Session != session(f.lockWaiter) || w.PID != nil || w.Sequence <= l.Queue[0].Sequence {
		t.Errorf("waiter %+v, want n2 second, for no actor", w)
	}

	if len(r.Barriers) != 1 || r.Barriers[0].Name != "phase-1" || len(r.Barriers[0].Participants) != 2 {
		t.Fatalf("barriers %+v, want phase-1 with 2 participants", r.Barriers)
	}
	b := r.Barriers[0]
	if b.Ready == nil || b.Ready.Size != 2 || b.Ready.Error != "" || b.Ready.LastSequence < b.Participants[1].Sequence {
		t.Errorf("ready %+v, want size 2 admitting both", b.Ready)
	}
	for _, p := range b.Participants {
		if !p.Admitted || (p.NodeID != n1 && p.NodeID != n2) || p.Since.IsZero() {
			t.Errorf("participant %+v, want admitted", p)
		}
	}

	if len(r.Configs) != 1 || r.Configs[0].Service != "billing" || len(r.Configs[0].Overrides) != 1 {
		t.Fatalf("configs %+v, want billing with an override", r.Configs)
	}
	c := r.Configs[0]
	if compact(c.Values) != `{"currency":"EUR","rate":3}` || c.Version != 0 || c.ModifiedAt.IsZero() {
		t.Errorf("config %s version %d, want {currency: EUR, rate: 3} at 0", c.Values, c.Version)
	}
	if o := c.Overrides[0]; o.Process != "p1" || compact(o.Values) != `{"rate":4}` || o.Version != 0 {
		t.Errorf("override %+v (%s)", o, o.Values)
	}

	for _, key := range []string{`"kinds": [`, `"activations": [`, `"queues": [`, `"claim": null`, `"roles": [`, `"applicants": [`,
		`"locks": [`, `"token":`, `"barriers": [`, `"ready": {`, `"configs": [`, `"overrides": [`, `"values": {`} {
		if !strings.Contains(out, key) {
			t.Errorf("the document has no %s", key)
		}
	}
}

func compact(doc json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return err.Error()
	}
	return b.String()
}

func TestInspectRecipesText(t *testing.T) {
	f := newRecipes(t)
	code, out, stderr := zkactor(t, f.args("inspect")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("\n%s", out)
	n1 := f.n1.Registry.NodeID()
	for _, want := range []string{
		"NODES (3)", "cart,user",
		"ACTIVATIONS (1)", "cart (1)", "127.0.0.1:7001/partition-activator/cart/alice",
		"QUEUES (3)", "jobs: 1 items, 0 held, 0 takes waiting", "idle: 0 items, 0 held, 1 takes waiting", "mail: 2 items, 1 held, 0 takes waiting", f.mailTaken.ID, f.mailFree,
		"JOBS (1)",
		"ROLES (1)", "shards: 2 roles, 2 held, 2 applicants", "bytes (3 bytes)", "(no spec)",
		"LOCKS (1)", "db: held by _c_", fmt.Sprintf(" on %s for %s/%s, token ", n1, f.lockFor.Address, f.lockFor.Id), ", 1 waiting",
		"BARRIERS (1)", "phase-1: 2 participants, ready: size 2",
		"CONFIGS (1)", `billing: version 0, modified `, `{"currency":"EUR","rate":3}`, `override p1: version 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	// The activation's line, and the held item's.
	var alice, taken []string
	for _, line := range strings.Split(out, "\n") {
		switch fields := strings.Fields(line); {
		case len(fields) > 0 && fields[0] == "alice":
			alice = fields
		case len(fields) > 0 && fields[0] == f.mailTaken.ID:
			taken = fields
		}
	}
	if len(alice) != 6 || alice[2] != "member-1" || alice[5] != session(f.memberSession) {
		t.Errorf("activation line %q, want alice on member-1", alice)
	}
	if len(taken) != 7 || taken[1] != n1 || taken[3] != "1" || taken[4] != "5" || taken[6] != session(f.n2.Session.ID()) {
		t.Errorf("item line %q, want put by n1, attempt 1, 5 bytes, claimed on n2's session", taken)
	}
}

func TestDoctorCleanRecipes(t *testing.T) {
	f := newRecipes(t)
	code, out, stderr := zkactor(t, f.args("doctor")...)
	if code != 0 || out != "" {
		t.Fatalf("doctor on a clean cluster with every recipe: exit %d, findings:\n%s%s", code, out, stderr)
	}
}

// TestDoctorFindsRecipeGarbage plants, beside every part, what another
// client could leave there; doctor reports each, and inspect skips them
// and lists them as unreadable without failing.
func TestDoctorFindsRecipeGarbage(t *testing.T) {
	f := newRecipes(t)
	junk := []byte{0xff, 0x00, 'j', 'u', 'n', 'k'}
	guid := strings.Repeat("ef", 16)
	root := f.root
	other := zktest.Shared(t).Connect(t) // a client that is no node
	want := map[finding]bool{}
	expect := func(kind, path string) { want[finding{kind, root + path}] = true }

	// Work queues.
	f.create(t, f.raw, "/queues/mail/items/junk", nil, 0)
	expect(kindGarbage, "/queues/mail/items/junk")
	f.create(t, f.raw, "/queues/mail/items/bad-0000000099", junk, 0) // and no key
	expect(kindGarbage, "/queues/mail/items/bad-0000000099")
	expect(kindInconsistent, "/queues/mail/items/bad-0000000099")
	item, _ := proto.Marshal(&workqueuev1.Item{Key: "nokey", Payload: []byte("x"), PutAt: timestamppb.Now()})
	f.create(t, f.raw, "/queues/mail/items/nokey-0000000077", item, 0)
	expect(kindInconsistent, "/queues/mail/items/nokey-0000000077")
	claim, _ := proto.Marshal(&workqueuev1.Claim{Taker: "ghost/1", TakenAt: timestamppb.Now()})
	f.create(t, other, "/queues/mail/claims/orphan-0000000042", claim, zk.FlagEphemeral)
	expect(kindInconsistent, "/queues/mail/claims/orphan-0000000042")
	f.create(t, f.raw, "/queues/mail/claims/"+f.mailFree, junk, 0) // persistent, garbage data
	expect(kindGarbage, "/queues/mail/claims/"+f.mailFree)
	f.create(t, f.raw, "/queues/mail/keys/lonely", nil, 0)
	expect(kindInconsistent, "/queues/mail/keys/lonely")
	f.create(t, f.raw, "/queues/mail/stray", nil, 0)
	expect(kindGarbage, "/queues/mail/stray")
	f.create(t, f.raw, "/queues/mail/waiters/junk", junk, 0) // persistent, not a waiter's name, garbage data
	expect(kindGarbage, "/queues/mail/waiters/junk")
	notJob, _ := proto.Marshal(&workqueuev1.Item{Key: "job-xyz", Payload: junk})
	f.create(t, f.raw, "/queues/jobs/items/job-xyz-0000000005", notJob, 0)
	f.create(t, f.raw, "/queues/jobs/keys/job-xyz", nil, 0)
	expect(kindGarbage, "/queues/jobs/items/job-xyz-0000000005")

	// Role sets.
	ghost, _ := proto.Marshal(&rolematchv1.Assignment{Role: "ghost", Holder: &pb.PID{Address: "x:1", Id: "h"}, Applicant: "nobody"})
	f.create(t, other, "/roles/shards/assignments/ghost", ghost, zk.FlagEphemeral)
	expect(kindInconsistent, "/roles/shards/assignments/ghost") // no spec
	expect(kindForeignSession, "/roles/shards/assignments/ghost")
	f.create(t, f.raw, "/roles/shards/specs/bad", junk, 0)
	expect(kindGarbage, "/roles/shards/specs/bad")
	f.create(t, f.raw, "/roles/shards/applicants/fake", nil, 0) // persistent, empty
	expect(kindGarbage, "/roles/shards/applicants/fake")

	// Locks and barriers.
	f.create(t, f.raw, "/locks/db/_c_"+guid+"-l-0000000000", nil, 0)
	expect(kindGarbage, "/locks/db/_c_"+guid+"-l-0000000000")
	f.create(t, f.raw, "/locks/db/stray", nil, 0)
	expect(kindGarbage, "/locks/db/stray")
	f.create(t, other, "/barriers/phase-2/ready", junk, zk.FlagEphemeral)
	expect(kindGarbage, "/barriers/phase-2/ready")
	f.create(t, f.raw, "/barriers/phase-2/_c_"+guid+"-p-0000000001", nil, 0)
	expect(kindGarbage, "/barriers/phase-2/_c_"+guid+"-p-0000000001")

	// Configs.
	f.create(t, f.raw, "/config/billing/overrides/p2", junk, 0)
	expect(kindGarbage, "/config/billing/overrides/p2")
	f.create(t, f.raw, "/config/billing/extra", nil, 0)
	expect(kindGarbage, "/config/billing/extra")
	f.create(t, f.raw, "/config/broken", junk, 0)
	expect(kindGarbage, "/config/broken")

	// A claim whose taker lost its connection (behind a proxy that is cut):
	// its session lives on the server but is connected nowhere.
	proxies, addrs := zktest.Proxies(t, zktest.Shared(t))
	lost := zktest.Dial(t, addrs, 30*time.Second)
	stale := f.create(t, lost, "/queues/mail/claims/nokey-0000000077", claim, zk.FlagEphemeral)
	proxies[0].Cut()
	want[finding{kindStaleSession, stale}] = true

	// Activations, and cmd/boss's old job store.
	f.create(t, f.raw, "/activations/cart/bob", junk, 0)
	expect(kindGarbage, "/activations/cart/bob")
	f.create(t, f.raw, "/jobs/job-abc", nil, 0)
	expect(kindGarbage, "/jobs")

	var (
		code int
		got  map[finding][]string
	)
	// The server notices the cut connection at once, but asynchronously:
	// wait until cons no longer lists it.
	zktest.Eventually(t, 10*time.Second, func() error {
		code, got, _ = runDoctorJSON(t, f.fixture)
		if _, ok := got[finding{kindStaleSession, stale}]; !ok {
			return fmt.Errorf("no stale-session for %s yet", stale)
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
	_, out, _ := zkactor(t, f.args("doctor")...)
	t.Logf("doctor:\n%s", out)

	// inspect skips what it cannot read, and says so.
	r, _ := inspectJSON(t, f.fixture)
	unreadable := map[string]bool{}
	for _, u := range r.Unreadable {
		unreadable[strings.TrimPrefix(u.Path, root)] = true
	}
	for _, p := range []string{"/queues/mail/items/junk", "/queues/mail/items/bad-0000000099", "/queues/jobs/items/job-xyz-0000000005",
		"/roles/shards/specs/bad", "/roles/shards/applicants/fake", "/barriers/phase-2/ready", "/config/billing/overrides/p2",
		"/config/broken", "/activations/cart/bob"} {
		if !unreadable[p] {
			t.Errorf("%s not listed as unreadable: %v", p, unreadable)
		}
	}
	for _, q := range r.Queues {
		for _, it := range q.Items {
			if it.ID == f.mailFree && (it.Claim == nil || it.Claim.Error == "") {
				t.Errorf("item %s: claim %+v, want held by a persistent claim", it.ID, it.Claim)
			}
		}
	}
	for _, set := range r.Roles {
		for _, ro := range set.Roles {
			if ro.Name == "ghost" && (ro.Posted || ro.Holder == nil || ro.Holder.Applicant != "nobody") {
				t.Errorf("ghost role %+v, want held, not posted", ro)
			}
		}
	}
	if len(r.Barriers) != 2 || r.Barriers[1].Ready == nil || r.Barriers[1].Ready.Error == "" || len(r.Barriers[1].Participants) != 0 {
		t.Errorf("barriers %+v, want phase-2 with an unreadable ready and no participant", r.Barriers)
	}
	if len(r.Locks) != 1 || len(r.Locks[0].Queue) != 2 {
		t.Errorf("locks %+v, want db's queue unchanged by the persistent and stray znodes", r.Locks)
	}
}

// TestDoctorConfirmsInconsistency: a claim read alone is reported only if
// its item is still missing on a second read; one whose item appeared since
// (a Put and a Take between the reads) is not.
func TestDoctorConfirmsInconsistency(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	claim, _ := proto.Marshal(&workqueuev1.Claim{Taker: "t/1", TakenAt: timestamppb.Now()})
	lonely := f.create(t, f.raw, "/queues/jobs/claims/late-0000000001", claim, zk.FlagEphemeral)
	cl, err := dial(ctx, f.servers, 10*time.Second, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	tree, err := cl.readTree(f.root, true)
	if err != nil {
		t.Fatal(err)
	}
	live, complete, consErr := liveSessions(f.servers, 5*time.Second)
	s := sessions{nodes: nodeSessions(tree), live: live, complete: complete, consErr: consErr, servers: joinServers(f.servers)}
	inconsistent := func() []Finding {
		var out []Finding
		for _, x := range diagnose(tree, s, cl) {
			if x.Kind == kindInconsistent {
				out = append(out, x)
			}
		}
		return out
	}
	if got := inconsistent(); len(got) != 1 || got[0].Path != lonely {
		t.Fatalf("findings %v, want the lonely claim", got)
	}
	// The item appears after the read: the claim is not alone any more.
	item, _ := proto.Marshal(&workqueuev1.Item{Key: "late", Attempts: 1})
	f.create(t, f.raw, "/queues/jobs/items/late-0000000001", item, 0)
	f.create(t, f.raw, "/queues/jobs/keys/late", nil, 0)
	if got := inconsistent(); len(got) != 0 {
		t.Errorf("findings %v after the item appeared, want none", got)
	}
}
