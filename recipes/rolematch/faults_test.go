package rolematch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// A holder's session expires: another applicant holds the role within the
// session timeout plus a second of the fault, and the old holder stopped
// first.
func TestHolderSessionExpiresAnotherTakesOver(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	post(t, b, "set", "r")
	apply(t, a, "set", 1, &j)
	first := j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)["r"]
	apply(t, b, "set", 1, &j)
	timeout := a.Session.Timeout()
	cut := time.Now()
	zkc.ExpireSession(t, proxy, a.Session.ID())
	deadline := cut.Add(timeout + time.Second)
	var second holdRecord
	zktest.Eventually(t, time.Until(deadline), func() error {
		h, err := j.holder("r")
		if err != nil {
			return err
		}
		if h.member != "b" {
			return fmt.Errorf("held by %s", h.member)
		}
		second = h
		return nil
	})
	t.Logf("session timeout %v: b held the role %v after the fault began; a's holder stopped %v after it",
		timeout, second.start.Sub(cut).Round(time.Millisecond), j.all()[0].stop.Sub(cut).Round(time.Millisecond))
	if second.epoch <= first.epoch {
		t.Errorf("epoch %d → %d", first.epoch, second.epoch)
	}
	j.noOverlap(t)
	// a applies again on its new session, with room for the role if b goes.
	zktest.Eventually(t, 10*time.Second, func() error {
		if infos := mustApplicants(t, b, "set"); len(infos) != 2 {
			return fmt.Errorf("%d applicants, want 2", len(infos))
		}
		return nil
	})
}

// A holder cut off by a silent partition stops (its lease runs out) before
// another applicant's holder starts: never two.
func TestPartitionedHolderStopsBeforeAnotherStarts(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	post(t, b, "set", "r")
	apply(t, a, "set", 1, &j)
	j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)
	apply(t, b, "set", 1, &j)
	cut := time.Now()
	proxy.Blackhole()
	zktest.Eventually(t, 15*time.Second, func() error {
		h, err := j.holder("r")
		if err != nil {
			return err
		}
		if h.member != "b" {
			return fmt.Errorf("held by %s", h.member)
		}
		return nil
	})
	old, second := j.all()[0], j.all()[1]
	t.Logf("partitioned holder stopped %v after the cut; the next started %v after the cut",
		old.stop.Sub(cut).Round(time.Millisecond), second.start.Sub(cut).Round(time.Millisecond))
	if old.stop.IsZero() || !old.stop.Before(second.start) {
		t.Errorf("old holder stopped at %v, new started at %v", old.stop, second.start)
	}
	j.noOverlap(t)
	proxy.Restore()
	// a comes back on a new session and holds nothing (b has the role).
	zktest.Eventually(t, 10*time.Second, func() error {
		if infos := mustApplicants(t, b, "set"); len(infos) != 2 {
			return fmt.Errorf("%d applicants, want 2", len(infos))
		}
		return nil
	})
	if h, err := j.holder("r"); err != nil || h.member != "b" {
		t.Errorf("after the heal: %v, %v", h.member, err)
	}
}

// An assignment deleted by someone else: its holder stops at once, and the
// role is taken again with a new epoch.
func TestAssignmentDeletedBySomeoneElse(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	post(t, a, "set", "r")
	apply(t, a, "set", 1, &j)
	first := j.allHeld(t, a, "set", []string{"r"}, 10*time.Second)["r"]
	apply(t, b, "set", 1, &j)
	conn := zkc.Connect(t)
	if err := conn.Delete(root+"/roles/set/assignments/r", -1); err != nil {
		t.Fatal(err)
	}
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
	if old := j.all()[0]; old.stop.IsZero() {
		t.Error("the holder whose assignment was deleted still runs")
	}
	j.allHeld(t, a, "set", []string{"r"}, 10*time.Second)
}

// A member whose session is closed without any cleanup (its process
// "dies"): its assignments go at once, another applicant takes the role,
// and the dead member's holder stops (its lease is gone).
func TestMemberClosedWithoutCleanup(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	post(t, b, "set", "r0", "r1")
	apply(t, a, "set", 2, &j)
	j.allHeld(t, b, "set", []string{"r0", "r1"}, 10*time.Second)
	apply(t, b, "set", 2, &j)
	a.Session.Close()
	zktest.Eventually(t, 10*time.Second, func() error {
		for _, role := range []string{"r0", "r1"} {
			h, err := j.holder(role)
			if err != nil {
				return err
			}
			if h.member != "b" {
				return fmt.Errorf("%s held by %s", role, h.member)
			}
		}
		return nil
	})
	j.noOverlap(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.roles.Close(ctx); err != nil {
		t.Errorf("closing the dead member's roles: %v", err)
	}
}

// The reply to an assignment's create is lost (the server made it): once
// reconnected, the applicant reads the assignment, finds it is its own
// (its session's, naming its application), and holds the role; nobody
// else does, and nothing is left behind.
func TestCreateReplyLost(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	var j journal
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	app := apply(t, a, "set", 1, &j)
	raw := zkc.Connect(t)
	// The directory exists, so that the create is one request.
	if _, err := raw.Create(root+"/roles/set/assignments", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	dropped := make(chan struct{})
	rolematch.SetTestHookBeforeCreate(t, func(string) {
		select {
		case <-dropped:
		default:
			proxy.DropFromTarget() // the create reaches the server; its reply does not come back
			close(dropped)
		}
	})
	post(t, b, "set", "r")
	<-dropped
	zktest.Eventually(t, 10*time.Second, func() error {
		ok, _, err := raw.Exists(root + "/roles/set/assignments/r")
		if err != nil || !ok {
			return fmt.Errorf("no assignment yet: %v", err)
		}
		return nil
	})
	proxy.Restore() // the silenced connection closes; a reconnects to the same session
	h := j.allHeld(t, b, "set", []string{"r"}, 10*time.Second)["r"]
	if h.member != "a" {
		t.Fatalf("held by %s", h.member)
	}
	hs, err := b.roles.Holders(ctxT(t), "set")
	if err != nil || len(hs) != 1 || hs[0].Applicant != app.ID() || hs[0].Session != a.Session.ID() {
		t.Errorf("Holders = %+v, %v; want a's application on a's session", hs, err)
	}
	apply(t, b, "set", 1, &j) // room elsewhere changes nothing: the role is a's
	j.allHeld(t, b, "set", []string{"r"}, 5*time.Second)
	j.noOverlap(t)
}
