package rolematch_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// mkdirs creates the set's directories from a raw connection, so that a
// create of the recipe's is one request and garbage can be planted.
func mkdirs(t *testing.T, conn *zk.Conn, root, set string) {
	t.Helper()
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/roles", root + "/roles/" + set, root + "/roles/" + set + "/specs",
		root + "/roles/" + set + "/assignments", root + "/roles/" + set + "/applicants"} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
}

// sameSessionBack waits until m is connected again and checks that its
// session survived the fault: an expired session takes its ephemeral
// znodes along, and the test would prove nothing.
func sameSessionBack(t *testing.T, m *member, id int64) {
	t.Helper()
	zktest.Eventually(t, 20*time.Second, func() error {
		if !m.Session.Connected() {
			return errors.New("not connected yet")
		}
		return nil
	})
	if got := m.Session.ID(); got != id {
		t.Fatalf("the session changed (%#x → %#x): the fault must keep it", id, got)
	}
}

// An applicant stopped while the reply to its assignment's create is lost
// (the server made the znode): the assignment must not outlive the
// application, or the role stays taken by nobody for as long as the
// node's session lives. Before the fix the late reply (the closed
// connection's error) deleted nothing and the applicant forgot the create.
func TestAttackStopWhileCreateReplyLost(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 8*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	app := apply(t, a, "set", 1, &j)
	sid := a.Session.ID()
	dropped := make(chan struct{})
	rolematch.SetTestHookBeforeCreate(t, func(string) {
		select {
		case <-dropped:
		default:
			proxy.DropFromTarget()
			close(dropped)
		}
	})
	post(t, b, "set", "r")
	<-dropped
	p := root + "/roles/set/assignments/r"
	zktest.Eventually(t, 10*time.Second, func() error {
		if ok, _, err := raw.Exists(p); err != nil || !ok {
			return fmt.Errorf("no assignment yet: %v", err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Stop(ctx); err != nil { // the create is abandoned
		t.Fatal(err)
	}
	proxy.Restore()
	sameSessionBack(t, a, sid)
	apply(t, b, "set", 1, &j)
	zktest.Eventually(t, 15*time.Second, func() error {
		h, err := j.holder("r")
		if err != nil {
			_, stat, _ := raw.Get(p)
			return fmt.Errorf("%w (assignment %+v)", err, stat)
		}
		if h.member != "b" {
			return fmt.Errorf("held by %s", h.member)
		}
		return nil
	})
	j.noOverlap(t)
}

// Apply given up (ctx ended) while the reply to the applicant znode's
// create is lost: the znode must not stay behind as an application that
// no longer exists (Applicants lists it, the herd order ranks it).
func TestAttackApplyCancelledWhileCreateReplyLost(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 8*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	sid := a.Session.ID()
	proxy.DropFromTarget()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		_, err := a.roles.Apply(ctx, "set", 1, j.props("a"))
		applied <- err
	}()
	dir := root + "/roles/set/applicants"
	zktest.Eventually(t, 10*time.Second, func() error {
		if names, _, err := raw.Children(dir); err != nil || len(names) != 1 {
			return fmt.Errorf("applicants %v, %v", names, err)
		}
		return nil
	})
	cancel()
	if err := <-applied; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v, want context.Canceled", err)
	}
	proxy.Restore()
	sameSessionBack(t, a, sid)
	zktest.Eventually(t, 10*time.Second, func() error {
		if infos := mustApplicants(t, b, "set"); len(infos) != 0 {
			return fmt.Errorf("applicants %+v after Apply failed", infos)
		}
		return nil
	})
}

// A role whose spec was garbage is posted again with a good spec: it must
// be held. Re-posting sets the data, which changes no listing, and before
// the fix the applicant looked at the role again only when the specs or
// the assignments changed.
func TestAttackRepostedSpecIsHeld(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	if _, err := raw.Create(root+"/roles/set/specs/r", []byte{0xff, 0xff, 0xff}, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	skipped := make(chan struct{})
	rolematch.SetTestHookUnusableSpec(t, func(role string) {
		select {
		case <-skipped:
		default:
			close(skipped)
		}
	})
	apply(t, m, "set", 1, &j)
	<-skipped
	post(t, m, "set", "r")
	zktest.Eventually(t, 10*time.Second, func() error {
		_, err := j.holder("r")
		return err
	})
}

// The applicant znode deleted by someone else (an operator, a cleanup
// script): the application is still live and must show in Applicants
// again, as its holders do in Holders.
func TestAttackApplicantZnodeDeletedBySomeoneElse(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	post(t, m, "set", "r")
	app := apply(t, m, "set", 1, &j)
	j.allHeld(t, m, "set", []string{"r"}, 10*time.Second)
	raw := zkc.Connect(t)
	if err := raw.Delete(root+"/roles/set/applicants/"+app.ID(), -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		infos := mustApplicants(t, m, "set")
		if len(infos) != 1 || infos[0].ID != app.ID() || infos[0].Held != 1 {
			return fmt.Errorf("applicants %+v, want %s holding 1", infos, app.ID())
		}
		return nil
	})
	j.allHeld(t, m, "set", []string{"r"}, 5*time.Second)
}

// A role whose spec this session may not read (an ACL of someone else's)
// sorts first: the applicant must skip it and hold the other role, not
// retry the unreadable one forever (before the fix every try read it
// again, failed and backed off, and no other free role was ever tried).
func TestAttackUnreadableSpecDoesNotStarveOthers(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	locked := root + "/roles/set/specs/a-locked"
	if _, err := raw.Create(locked, nil, 0, zk.DigestACL(zk.PermAll, "someone", "else")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Delete(locked, -1) })
	post(t, m, "set", "b-good")
	apply(t, m, "set", 2, &j)
	j.allHeld(t, m, "set", []string{"b-good"}, 10*time.Second)
}

// The Elections close under an application that holds nothing (its role
// was removed): the application must end as the package doc says (no
// holder can start any more), not linger with its room in Applicants and
// the herd order until some role happens to be free.
func TestAttackElectionsClosedEndsAnIdleApplication(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	post(t, m, "set", "r")
	apply(t, m, "set", 1, &j)
	j.allHeld(t, m, "set", []string{"r"}, 10*time.Second)
	if err := m.roles.Remove(ctxT(t), "set", "r"); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if hs, err := m.roles.Holders(context.Background(), "set"); err != nil || len(hs) != 0 || len(j.running()) != 0 {
			return fmt.Errorf("holders %v, %v; %d running", hs, err, len(j.running()))
		}
		return nil
	})
	if err := m.Elections.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if infos := mustApplicants(t, m, "set"); len(infos) != 0 {
			return fmt.Errorf("applicants %+v after the elections closed", infos)
		}
		return nil
	})
}

// An assignment or application this session may not read (created by a
// client with an ACL of its own): Holders counts the role as held by
// nobody known and Applicants skips the application, as they do with
// garbage, instead of failing every call for the whole set.
func TestAttackUnreadableAssignmentAndApplicant(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	acl := zk.DigestACL(zk.PermAll, "someone", "else")
	paths := []string{root + "/roles/set/assignments/locked", root + "/roles/set/applicants/locked"}
	for _, p := range paths {
		if _, err := raw.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range paths {
			_ = raw.Delete(p, -1)
		}
	})
	post(t, m, "set", "r")
	app := apply(t, m, "set", 1, &j)
	zktest.Eventually(t, 10*time.Second, func() error {
		_, err := j.holder("r")
		return err
	})
	hs, err := m.roles.Holders(ctxT(t), "set")
	if err != nil || len(hs) != 2 || hs[0].Role != "locked" || hs[0].PID != nil || hs[1].Role != "r" || hs[1].PID == nil {
		t.Errorf("Holders = %+v, %v; want locked (by nobody known) and r", hs, err)
	}
	infos, err := m.roles.Applicants(ctxT(t), "set")
	if err != nil || len(infos) != 1 || infos[0].ID != app.ID() || infos[0].Held != 1 {
		t.Errorf("Applicants = %+v, %v; want ours only, holding 1", infos, err)
	}
}

// A holder stops by itself and its assignment cannot be deleted (here an
// ACL on the directory refuses deletes; as well ZooKeeper out of reach:
// the delete is handed to the session's reaper): the role still counts
// against the limit until the assignment is gone. Before the fix the
// application took another role at once, holding two assignments with a
// limit of one.
func TestAttackLimitCountsAnUndeletedAssignment(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	raw := zkc.Connect(t)
	mkdirs(t, raw, root, "set")
	post(t, m, "set", "r0", "r1")
	app := apply(t, m, "set", 1, &j)
	var first holdRecord
	zktest.Eventually(t, 10*time.Second, func() error {
		r := j.running()
		if len(r) != 1 {
			return fmt.Errorf("%d running", len(r))
		}
		first = r[0]
		return nil
	})
	dir := root + "/roles/set/assignments"
	if _, err := raw.SetACL(dir, zk.WorldACL(zk.PermAll&^zk.PermDelete), -1); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if _, err := raw.SetACL(dir, zk.WorldACL(zk.PermAll), -1); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(restore)
	created := make(chan string, 4)
	rolematch.SetTestHookBeforeCreate(t, func(p string) {
		select {
		case created <- p:
		default:
		}
	})
	kept := make(chan struct{}, 1)
	rolematch.SetTestHookStrayKept(t, func(string) {
		select {
		case kept <- struct{}{}:
		default:
		}
	})
	m.System.Root.Stop(first.pid) // stops by itself, as far as its tenure can tell
	select {
	case p := <-created:
		hs, _ := m.roles.Holders(ctxT(t), "set")
		t.Fatalf("a create of %s was sent while the stopped holder's assignment was still there: %+v", p, hs)
	case <-kept:
	case <-time.After(15 * time.Second):
		t.Fatal("neither a create nor the assignment kept counted")
	}
	if infos := mustApplicants(t, m, "set"); len(infos) != 1 || infos[0].Held != 1 {
		t.Errorf("applicants %+v, want ours holding 1 (the undeleted assignment)", infos)
	}
	restore()
	zktest.Eventually(t, 15*time.Second, func() error {
		if r := j.running(); len(r) != 1 {
			return fmt.Errorf("%d running", len(r))
		}
		infos := mustApplicants(t, m, "set")
		if len(infos) != 1 || infos[0].ID != app.ID() || infos[0].Held != 1 {
			return fmt.Errorf("applicants %+v, want ours holding 1", infos)
		}
		return nil
	})
}

// By design (package doc): a foreign delete of the assignment of a holder
// cut off from ZooKeeper. Another applicant takes the role at once; the
// cut-off holder cannot hear of the delete and runs on until its lease
// runs out (an overlap longer than one notification, which only fencing
// with the epoch covers), then stops, and does not come back when the
// partition heals: its tenure sees the znode gone.
func TestAttackForeignDeleteWhileHolderCutOff(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	post(t, b, "set", "r")
	apply(t, a, "set", 1, &j)
	first := j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)["r"]
	apply(t, b, "set", 1, &j)
	proxy.Blackhole()
	raw := zkc.Connect(t)
	if err := raw.Delete(root+"/roles/set/assignments/r", -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 15*time.Second, func() error {
		h, err := j.holder("r")
		if err != nil {
			return err
		}
		if h.member != "b" || h.epoch <= first.epoch {
			return fmt.Errorf("held by %s epoch %d", h.member, h.epoch)
		}
		return nil
	})
	proxy.Restore()
	j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)
	for _, r := range j.all() {
		if r.member == "a" && r.epoch == first.epoch && r.start.After(first.start) {
			t.Errorf("a's holding resumed after the heal: %+v", r)
		}
	}
}

// The Elections close while an applicant is about to create an
// assignment (its tenure prepared, not started): Close does not wait for
// the create, the tenure ends unstarted, and the assignment the create
// makes anyway is deleted as the application ends, not left behind.
func TestAttackElectionsClosedDuringACreate(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	m := newMember(t, "m", zkc.Addrs(), root, 4*time.Second)
	apply(t, m, "set", 1, &j)
	closed := make(chan error, 1)
	rolematch.SetTestHookBeforeCreate(t, func(string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		select {
		case closed <- m.Elections.Close(ctx):
		default:
		}
	})
	post(t, m, "set", "r")
	if err := <-closed; err != nil {
		t.Fatalf("Elections.Close during a create: %v", err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		hs, err := m.roles.Holders(context.Background(), "set")
		if err != nil || len(hs) != 0 {
			return fmt.Errorf("holders %+v, %v", hs, err)
		}
		if infos := mustApplicants(t, m, "set"); len(infos) != 0 {
			return fmt.Errorf("applicants %+v", infos)
		}
		return nil
	})
	if n := len(j.running()); n != 0 {
		t.Errorf("%d holders run", n)
	}
}
