package rolematch_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// crash is a message that makes the panicky holder panic.
type crash struct{}

// A holder that panics is restarted by its supervisor (protoactor's
// default: restart), under the same PID, in the same holding: no second
// Assigned comes (the guard announces a term once), but the spec changes
// after the restart must still reach it. They were dropped for good: the
// receiver middleware took the restart's Started for a new actor that had
// not had its Assigned yet.
func TestAttackSpecChangeReachesARestartedHolder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	var (
		mu       sync.Mutex
		pid      *actor.PID
		starts   int
		assigned int
		specs    []string
	)
	props := actor.PropsFromProducer(func() actor.Actor {
		return actor.ReceiveFunc(func(c actor.Context) {
			mu.Lock()
			defer mu.Unlock()
			switch m := c.Message().(type) {
			case *actor.Started:
				starts++
			case *rolematchv1.Assigned:
				assigned++
				pid = c.Self()
				specs = append(specs, string(m.GetData()))
			case *rolematchv1.SpecChanged:
				specs = append(specs, string(m.GetData()))
			case crash:
				panic("the holder crashes (a test)")
			}
		})
	})
	repost(t, a, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, props); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if pid == nil {
			return fmt.Errorf("no Assigned yet")
		}
		return nil
	})
	mu.Lock()
	holder := pid
	mu.Unlock()
	a.System.Root.Send(holder, crash{})
	zktest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if starts < 2 {
			return fmt.Errorf("the holder has not restarted yet (%d starts)", starts)
		}
		return nil
	})
	repost(t, a, "set", "r", "v2")
	zktest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if specs[len(specs)-1] != "v2" {
			return fmt.Errorf("the restarted holder has the specs %q, want v2 last", specs)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if assigned != 1 {
		t.Fatalf("%d Assigned for one holding, want 1", assigned)
	}
}

// A held role that is removed fires the spec's data watch; the applicant
// must not leave a watch behind for a spec that may never come again
// (go-zookeeper keeps the channel of an exists watch on a missing znode
// until the znode is created, and the server keeps the watch for the
// session's life): roles that come and go under new names would grow both
// without bound. Here 5 roles are posted, held and removed in turn: no
// watch may be left on any of them.
func TestAttackRemovedRolesLeaveNoWatch(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	var s specs
	app, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		role := fmt.Sprint("r", i)
		repost(t, a, "set", role, "v")
		zktest.Eventually(t, 20*time.Second, func() error {
			if h := app.Holding(); len(h) != 1 || h[0] != role {
				return fmt.Errorf("holding %v, want [%s]", h, role)
			}
			return nil
		})
		if err := a.roles.Remove(ctxT(t), "set", role); err != nil {
			t.Fatal(err)
		}
		zktest.Eventually(t, 20*time.Second, func() error {
			if h := app.Holding(); len(h) != 0 {
				return fmt.Errorf("holding %v after the remove", h)
			}
			return nil
		})
	}
	for i := range 5 {
		p := root + "/roles/set/specs/" + fmt.Sprint("r", i)
		if n := rolematch.ClientWatches(a.Session.Conn(), p); n != 0 {
			t.Errorf("%d watches left on the removed role's spec %s", n, p)
		}
	}
}

// A held role removed and posted again at once (a controller replacing
// it): whether the applicant sees a change of the spec (the new znode's
// mzxid is newer) or a removal and a new role, the running holder ends
// with the new spec, and no holder is shown an older spec after a newer
// one. Repeated, so that both interleavings (the spec read while gone,
// then named again by the listing; or read again at once) occur.
func TestAttackRemovedAndPostedAgainWhileHeld(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, a, "set", "r", "v0")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	s.eventuallySpec(t, "v0")
	for i := 1; i <= 5; i++ {
		if err := a.roles.Remove(ctxT(t), "set", "r"); err != nil {
			t.Fatal(err)
		}
		repost(t, a, "set", "r", fmt.Sprint("v", i))
		s.eventuallySpec(t, fmt.Sprint("v", i))
	}
	s.check(t)
}

// quit is a message that makes a holder stop by itself.
type quit struct{}

// A holder that stops by itself frees its role, which its applicant takes
// again (it has room): each new holding read the spec with a new data
// watch while the last holding's was still set, the spec being unchanged.
// go-zookeeper keeps a channel for every watch until it fires, so a
// holder that keeps stopping grew the applicant's memory by one channel
// (and the server's watch table) per holding. The watch of a holding that
// ended unfired is reused by the next try, as a lost try's is.
func TestAttackSpecWatchOfAnEndedHoldingIsReused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	holders := make(chan *actor.PID, 16)
	props := actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *rolematchv1.Assigned:
			holders <- c.Self()
		case quit:
			c.Stop(c.Self())
		}
	})
	repost(t, a, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, props); err != nil {
		t.Fatal(err)
	}
	next := func() *actor.PID {
		select {
		case pid := <-holders:
			return pid
		case <-time.After(20 * time.Second):
			t.Fatal("the role was not taken again")
			return nil
		}
	}
	for range 6 {
		a.System.Root.Send(next(), quit{})
	}
	next()
	if n := rolematch.ClientWatches(a.Session.Conn(), root+"/roles/set/specs/r"); n != 1 {
		t.Fatalf("the applicant holds %d watches on the spec after 7 holdings of it, want 1", n)
	}
}
