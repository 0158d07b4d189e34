package rolematch_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/zkactor/zkactor/cluster"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// Every role is held by exactly one actor, whose first message is its
// Assigned (role, spec, epoch), and Holders shows the same from another
// node.
func TestEveryRoleHeldOnceWithAssignedFirst(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	observer := newMember(t, "observer", zkc.Addrs(), root, 4*time.Second)
	roles := roleNames("shard-", 4)
	post(t, observer, "shards", roles...)
	apply(t, a, "shards", 2, &j)
	apply(t, b, "shards", 2, &j)
	held := j.allHeld(t, observer, "shards", roles, 10*time.Second)
	for role, h := range held {
		first, ok := h.first.(*rolematchv1.Assigned)
		if !ok {
			t.Fatalf("%s: first message %T, want *Assigned", role, h.first)
		}
		if first.Set != "shards" || first.Role != role || string(first.GetData()) != "spec of "+role || first.Epoch == 0 ||
			first.Assignment != root+"/roles/shards/assignments/"+role {
			t.Errorf("%s: first message %v", role, first)
		}
	}
	infos, err := observer.roles.Applicants(ctxT(t), "shards")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Limit != 2 || infos[0].Held != 2 || infos[1].Held != 2 {
		t.Errorf("Applicants = %+v, want two with limit 2 holding 2 each", infos)
	}
	j.noOverlap(t)
}

// A spec given as a protobuf message reaches the holder as an Any.
func TestSpecAsMessage(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	if err := m.roles.Post(ctxT(t), "jobs", rolematch.Role{Name: "indexer", Message: wrapperspb.String("index /var/data")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *rolematchv1.Assigned, 1)
	props := actor.PropsFromFunc(func(c actor.Context) {
		if a, ok := c.Message().(*rolematchv1.Assigned); ok {
			got <- a
		}
	})
	if _, err := m.roles.Apply(ctxT(t), "jobs", 1, props); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		var s wrapperspb.StringValue
		if err := a.GetMessage().UnmarshalTo(&s); err != nil || s.Value != "index /var/data" {
			t.Fatalf("spec = %v, %v", s.Value, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Assigned within 10 s")
	}
}

// Roles added at runtime are filled; roles removed are released: the
// holder stops and the assignment is deleted.
func TestRolesAddedAndRemovedAtRuntime(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	apply(t, a, "set", 3, &j)
	apply(t, b, "set", 3, &j)
	post(t, a, "set", "r0", "r1")
	j.allHeld(t, a, "set", []string{"r0", "r1"}, 10*time.Second)
	post(t, b, "set", "r2", "r3", "r4")
	held := j.allHeld(t, a, "set", []string{"r0", "r1", "r2", "r3", "r4"}, 10*time.Second)
	for _, role := range []string{"r1", "r3"} {
		if err := b.roles.Remove(ctxT(t), "set", role); err != nil {
			t.Fatal(err)
		}
	}
	j.allHeld(t, a, "set", []string{"r0", "r2", "r4"}, 10*time.Second)
	for _, r := range j.all() {
		if (r.role == "r1" || r.role == "r3") && r.stop.IsZero() {
			t.Errorf("the holder of removed role %s still runs", r.role)
		}
	}
	if posted, err := a.roles.Posted(ctxT(t), "set"); err != nil || fmt.Sprint(posted) != "[r0 r2 r4]" {
		t.Errorf("Posted = %v, %v", posted, err)
	}
	// Re-posting a removed role fills it again, with a higher epoch.
	post(t, a, "set", "r1")
	again := j.allHeld(t, a, "set", []string{"r0", "r1", "r2", "r4"}, 10*time.Second)
	if again["r1"].epoch <= held["r1"].epoch {
		t.Errorf("epoch of r1: %d then %d", held["r1"].epoch, again["r1"].epoch)
	}
	j.noOverlap(t)
}

// An applicant never holds more than its limit; a newcomer with room takes
// what is left; when an applicant stops, its roles go to those with room.
func TestLimitsRespected(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	c := newMember(t, "c", zkc.Addrs(), root, 4*time.Second)
	roles := roleNames("r", 6)
	post(t, a, "set", roles...)
	aa := apply(t, a, "set", 2, &j)
	ab := apply(t, b, "set", 1, &j)
	// Three held, three waiting: no more, whatever the timing.
	zktest.Eventually(t, 10*time.Second, func() error {
		if n := len(j.running()); n != 3 {
			return fmt.Errorf("%d held, want 3", n)
		}
		return nil
	})
	if len(aa.Holding()) != 2 || len(ab.Holding()) != 1 {
		t.Errorf("a holds %v, b holds %v; limits 2 and 1", aa.Holding(), ab.Holding())
	}
	ac := apply(t, c, "set", 3, &j)
	j.allHeld(t, a, "set", roles, 10*time.Second)
	if err := aa.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// a's two roles have nowhere to go: b and c are full.
	zktest.Eventually(t, 10*time.Second, func() error {
		if n := len(j.running()); n != 4 {
			return fmt.Errorf("%d held, want 4", n)
		}
		return nil
	})
	if len(ab.Holding()) != 1 || len(ac.Holding()) != 3 {
		t.Errorf("b holds %v, c holds %v; limits 1 and 3", ab.Holding(), ac.Holding())
	}
	ad := apply(t, a, "set", 5, &j)
	j.allHeld(t, a, "set", roles, 10*time.Second)
	if len(ad.Holding()) != 2 {
		t.Errorf("the new applicant holds %v, want the two free roles", ad.Holding())
	}
	for _, info := range mustApplicants(t, a, "set") {
		if info.Held > info.Limit {
			t.Errorf("applicant %s holds %d, limit %d", info.ID, info.Held, info.Limit)
		}
	}
	j.noOverlap(t)
}

func mustApplicants(t *testing.T, m *member, set string) []rolematch.ApplicantInfo {
	t.Helper()
	infos, err := m.roles.Applicants(ctxT(t), set)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

// A holder that stops by itself frees its role, and an applicant takes it
// again with a new epoch.
func TestHolderStopsByItself(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	post(t, a, "set", "r")
	apply(t, a, "set", 1, &j)
	first := j.allHeld(t, a, "set", []string{"r"}, 10*time.Second)["r"]
	a.System.Root.Stop(first.pid)
	zktest.Eventually(t, 10*time.Second, func() error {
		h, err := j.holder("r")
		if err != nil {
			return err
		}
		if h.epoch <= first.epoch {
			return fmt.Errorf("still epoch %d", h.epoch)
		}
		return nil
	})
	j.noOverlap(t)
}

// Bad input is an error, never a panic or a stray znode; garbage written
// by others into the set is skipped.
func TestBadInputAndGarbage(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	ctx := ctxT(t)
	props := j.props("m")
	if err := m.roles.Post(ctx, "a/b", rolematch.Role{Name: "x"}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Post with set a/b: %v", err)
	}
	if err := m.roles.Post(ctx, "s", rolematch.Role{Name: ".."}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Post of role ..: %v", err)
	}
	if err := m.roles.Post(ctx, "s", rolematch.Role{Name: "x", Data: make([]byte, rolematch.MaxSpecSize+1)}); !errors.Is(err, cluster.ErrTooLarge) {
		t.Errorf("Post of a huge spec: %v", err)
	}
	if _, err := m.roles.Apply(ctx, "s", 0, props); !errors.Is(err, rolematch.ErrBadLimit) {
		t.Errorf("Apply with limit 0: %v", err)
	}
	if _, err := m.roles.Apply(ctx, "", 1, props); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Apply to set \"\": %v", err)
	}
	if _, err := m.roles.Holders(ctx, "a/b"); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Holders of a/b: %v", err)
	}
	// Garbage from another client: a spec that is not a Role, an
	// assignment that is not an Assignment (the role counts as held), an
	// applicant that is not an Applicant.
	conn := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/roles", root + "/roles/s", root + "/roles/s/specs", root + "/roles/s/assignments", root + "/roles/s/applicants"} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	garbage := []byte{0xff, 0xff, 0xff}
	for _, p := range []string{"/specs/junk", "/specs/taken", "/assignments/taken", "/applicants/junk"} {
		if _, err := conn.Create(root+"/roles/s"+p, garbage, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	post(t, m, "s", "good")
	apply(t, m, "s", 5, &j)
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, err := j.holder("good"); err != nil {
			return err
		}
		return nil
	})
	hs, err := m.roles.Holders(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Role != "good" || hs[0].PID == nil || hs[1].Role != "taken" || hs[1].PID != nil {
		t.Errorf("Holders = %+v, want good (held) and taken (by nobody known)", hs)
	}
	if _, err := mustGet(t, conn, root+"/roles/s/assignments/junk"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("the junk role (its spec is garbage) was taken: %v", err)
	}
	if infos := mustApplicants(t, m, "s"); len(infos) != 1 {
		t.Errorf("Applicants = %+v, want only ours", infos)
	}
	if n := len(j.running()); n != 1 {
		t.Errorf("%d holders run, want 1", n)
	}
}

func mustGet(t *testing.T, conn *zk.Conn, p string) ([]byte, error) {
	t.Helper()
	data, _, err := conn.Get(p)
	return data, err
}

// The holder's PID is known before it runs, and messages sent to it as
// soon as Holders names it are delivered after its Assigned.
func TestMessagesToHolderAfterAssigned(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	got := make(chan proto.Message, 16)
	props := actor.PropsFromFunc(func(c actor.Context) {
		if msg, ok := c.Message().(proto.Message); ok {
			got <- msg
		}
	})
	post(t, m, "set", "r")
	if _, err := m.roles.Apply(ctxT(t), "set", 1, props); err != nil {
		t.Fatal(err)
	}
	var pid *actor.PID
	zktest.Eventually(t, 10*time.Second, func() error {
		hs, err := m.roles.Holders(context.Background(), "set")
		if err != nil || len(hs) != 1 {
			return fmt.Errorf("holders %v, %v", hs, err)
		}
		pid = hs[0].PID
		return nil
	})
	m.System.Root.Send(pid, wrapperspb.String("hello"))
	first, second := <-got, <-got
	if _, ok := first.(*rolematchv1.Assigned); !ok {
		t.Errorf("first message %T, want *Assigned", first)
	}
	if s, ok := second.(*wrapperspb.StringValue); !ok || s.Value != "hello" {
		t.Errorf("second message %v", second)
	}
}

// Elections closed under a running application: its holders stop and
// their assignments go with the tenures, and the application ends (no
// holder can start any more) instead of retrying.
func TestElectionsClosedEndsApplications(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	post(t, a, "set", "r0", "r1")
	app := apply(t, a, "set", 2, &j)
	j.allHeld(t, a, "set", []string{"r0", "r1"}, 10*time.Second)
	if err := a.Elections.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(j.running()); n != 0 {
		t.Errorf("%d holders run after the elections closed", n)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if hs, err := a.roles.Holders(context.Background(), "set"); err != nil || len(hs) != 0 {
			return fmt.Errorf("holders %v, %v", hs, err)
		}
		if infos := mustApplicants(t, a, "set"); len(infos) != 0 {
			return fmt.Errorf("applicants %+v", infos)
		}
		return nil
	})
	if err := app.Stop(ctxT(t)); err != nil { // already over: returns at once
		t.Error(err)
	}
}
