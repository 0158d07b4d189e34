package rolematch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// specs records, for every holder actor started in the test, the specs it
// was shown: its Assigned's, then each SpecChanged's, in order.
type specs struct {
	mu    sync.Mutex
	lives []*specLife
}

// specLife is one holder actor's life.
type specLife struct {
	member  string
	epoch   int64
	stopped bool
	seen    []shownSpec
}

type shownSpec struct {
	changed bool // a SpecChanged; false: the Assigned
	data    string
	version int64
	epoch   int64
}

func (s *specs) props(member string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		life := &specLife{member: member}
		return actor.ReceiveFunc(func(c actor.Context) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch m := c.Message().(type) {
			case *rolematchv1.Assigned:
				life.epoch = m.Epoch
				life.seen = append(life.seen, shownSpec{data: string(m.GetData()), version: m.SpecVersion, epoch: m.Epoch})
				s.lives = append(s.lives, life)
			case *rolematchv1.SpecChanged:
				life.seen = append(life.seen, shownSpec{changed: true, data: string(m.GetData()), version: m.Version, epoch: m.Epoch})
			case *actor.Stopping:
				life.stopped = true
			}
		})
	})
}

// current returns the spec the one running holder has now.
func (s *specs) current() (string, *specLife, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var running []*specLife
	for _, l := range s.lives {
		if !l.stopped {
			running = append(running, l)
		}
	}
	if len(running) != 1 {
		return "", nil, fmt.Errorf("%d holders running, want 1", len(running))
	}
	l := running[0]
	return l.seen[len(l.seen)-1].data, l, nil
}

// check asserts what every holder saw: its Assigned first, then
// SpecChanged messages of its epoch, each with a newer version than the
// spec before it (never one as old or older).
func (s *specs) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lives {
		for i, seen := range l.seen {
			switch {
			case i == 0 && seen.changed:
				t.Errorf("%s's holder (epoch %d) saw a SpecChanged first: %+v", l.member, l.epoch, l.seen)
			case i > 0 && !seen.changed:
				t.Errorf("%s's holder (epoch %d) saw a second Assigned: %+v", l.member, l.epoch, l.seen)
			case seen.epoch != l.epoch:
				t.Errorf("%s's holder (epoch %d) saw a spec of epoch %d: %+v", l.member, l.epoch, seen.epoch, l.seen)
			case seen.version == 0:
				t.Errorf("%s's holder (epoch %d) saw a spec without a version: %+v", l.member, l.epoch, l.seen)
			case i > 0 && seen.version <= l.seen[i-1].version:
				t.Errorf("%s's holder (epoch %d) saw version %d after %d: %+v", l.member, l.epoch, seen.version, l.seen[i-1].version, l.seen)
			}
		}
	}
}

// eventuallySpec waits until the running holder has the spec want.
func (s *specs) eventuallySpec(t *testing.T, want string) *specLife {
	t.Helper()
	var life *specLife
	zktest.Eventually(t, 30*time.Second, func() error {
		got, l, err := s.current()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("the holder has spec %q, want %q", got, want)
		}
		life = l
		return nil
	})
	return life
}

func repost(t *testing.T, m *member, set, role, spec string) {
	t.Helper()
	if err := m.roles.Post(ctxT(t), set, rolematch.Role{Name: role, Data: []byte(spec)}); err != nil {
		t.Fatal(err)
	}
}

// A spec re-posted while its role is held reaches the running holder as a
// SpecChanged of the holding's epoch, with a newer version; a burst of
// re-posts ends with the holder on the last one, every version it was
// shown newer than the one before.
func TestSpecChangeReachesTheHolder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, a, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	first := s.eventuallySpec(t, "v1")
	repost(t, a, "set", "r", "v2")
	if l := s.eventuallySpec(t, "v2"); l != first {
		t.Fatalf("v2 reached another holder (%+v), not the running one", l)
	}
	for i := 3; i <= 12; i++ {
		repost(t, a, "set", "r", fmt.Sprint("v", i))
	}
	if l := s.eventuallySpec(t, "v12"); l != first {
		t.Fatalf("v12 reached another holder (%+v), not the running one", l)
	}
	s.check(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(first.seen); n < 3 || n > 12 {
		t.Errorf("the holder saw %d specs for 12 posts (the first, then each change its applicant read): %+v", n, first.seen)
	}
}

// A spec that cannot be decoded: the holder keeps the spec it has (a
// warning is logged); the next good spec reaches it.
func TestSpecChangeGarbageKeepsTheOldSpec(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, a, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	holder := s.eventuallySpec(t, "v1")
	unusable := make(chan string, 10)
	rolematch.SetTestHookUnusableSpec(t, func(role string) { unusable <- role })
	c := zkc.Connect(t)
	if _, err := c.Set(root+"/roles/set/specs/r", []byte{0xff, 0x00, 'j', 'u', 'n', 'k'}, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case role := <-unusable:
		if role != "r" {
			t.Fatalf("unusable spec of %q, want r", role)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the garbage spec was not noticed")
	}
	if got, l, err := s.current(); err != nil || got != "v1" || l != holder {
		t.Fatalf("after a garbage spec the holder has %q (%v), want v1 on the same holder", got, err)
	}
	repost(t, a, "set", "r", "v2")
	if l := s.eventuallySpec(t, "v2"); l != holder {
		t.Fatal("v2 reached another holder")
	}
	s.check(t)
}

// A spec re-posted while the holder's session expires: the holder or its
// successor (another applicant, or the same one on its new session) ends
// with the latest spec.
func TestSpecChangeDuringSessionExpiry(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, b, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	s.eventuallySpec(t, "v1")
	if _, err := b.roles.Apply(ctxT(t), "set", 1, s.props("b")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 2; i <= 6; i++ {
			if err := b.roles.Post(context.Background(), "set", rolematch.Role{Name: "r", Data: []byte(fmt.Sprint("v", i))}); err != nil {
				t.Errorf("post v%d: %v", i, err)
			}
		}
	}()
	zkc.ExpireSession(t, proxy, a.Session.ID())
	<-done
	s.eventuallySpec(t, "v6")
	s.check(t)
}

// A spec re-posted while the holder is cut off from ZooKeeper, its session
// surviving: once it is back, the holder (or, if its lease ran out, the
// actor that resumes the holding under the same PID) has the latest spec.
func TestSpecChangeDuringACut(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 8*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, b, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	s.eventuallySpec(t, "v1")
	session := a.Session.ID()
	proxy.Cut()
	repost(t, b, "set", "r", "v2")
	repost(t, b, "set", "r", "v3")
	proxy.Restore()
	l := s.eventuallySpec(t, "v3")
	if a.Session.ID() != session {
		t.Fatalf("A's session changed (%#x, was %#x): the test needs it to survive the cut", a.Session.ID(), session)
	}
	if l.member != "a" {
		t.Fatalf("the holder is %s's, want a's (its session survived)", l.member)
	}
	s.check(t)
}

// Re-posts racing a handover (the holding applicant stops, another takes
// the role over): the new holder ends with the latest spec, and no holder
// ever saw an older spec after a newer one.
func TestSpecChangeRacingAHandover(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, b, "set", "r", "v1")
	aa, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a"))
	if err != nil {
		t.Fatal(err)
	}
	s.eventuallySpec(t, "v1")
	if _, err := b.roles.Apply(ctxT(t), "set", 1, s.props("b")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var errs []error
		for i := 2; i <= 20; i++ {
			errs = append(errs, b.roles.Post(context.Background(), "set", rolematch.Role{Name: "r", Data: []byte(fmt.Sprint("v", i))}))
		}
		done <- errors.Join(errs...)
	}()
	if err := aa.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l := s.eventuallySpec(t, "v20"); l.member != "b" {
		t.Fatalf("the holder is %s's, want b's", l.member)
	}
	s.check(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	var lives []string
	for _, l := range s.lives {
		var seen []string
		for _, x := range l.seen {
			seen = append(seen, x.data)
		}
		lives = append(lives, l.member+": "+strings.Join(seen, ","))
	}
	t.Logf("holders: %s", strings.Join(lives, "; "))
}

// A spec re-posted while the holder is cut off long enough for its lease
// to run out (the guard stops the actor): once back, the holding resumes
// under the same PID with an actor that ends with the latest spec, shown
// once: in its Assigned if its applicant read the spec before the actor
// started (the SpecChanged it sent is then as old, and dropped), else in a
// SpecChanged after an Assigned with the spec the applicant had. If the
// session did not survive the cut, a successor holds the role with the
// latest spec.
func TestSpecChangeWhileTheLeaseIsOut(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newMember(t, "a", []string{proxy.Addr()}, root, 8*time.Second)
	b := newMember(t, "b", zkc.Addrs(), root, 4*time.Second)
	var s specs
	repost(t, b, "set", "r", "v1")
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	first := s.eventuallySpec(t, "v1")
	session := a.Session.ID()
	proxy.Cut()
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, _, err := s.current(); err == nil {
			return errors.New("the holder still runs")
		}
		return nil
	})
	repost(t, b, "set", "r", "v2")
	repost(t, b, "set", "r", "v3")
	proxy.Restore()
	l := s.eventuallySpec(t, "v3")
	s.check(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Session.ID() != session {
		t.Logf("A's session did not survive the cut: %s's holder took over with v3", l.member)
		return
	}
	if l == first || l.member != "a" || l.epoch != first.epoch {
		t.Fatalf("the holding did not resume on a with epoch %d: %+v", first.epoch, l)
	}
	t.Logf("the resumed holder saw %+v", l.seen) // v3 in its Assigned, or v1 then v3: check saw it once
}

// An applicant that reads a role's spec and loses the race for it, again
// and again while the spec does not change, keeps one data watch on the
// spec, not one per try: go-zookeeper holds a channel for every watch set
// until it fires.
func TestSpecWatchOfALostRoleIsReused(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newMember(t, "a", zkc.Addrs(), root, 4*time.Second)
	other := zkc.Connect(t)
	repost(t, a, "set", "r", "v1")
	assignment := root + "/roles/set/assignments/r"
	if _, err := other.Create(root+"/roles/set/assignments", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{}, 16)
	// Before each of a's creates, another client takes the role: a loses.
	rolematch.SetTestHookBeforeCreate(t, func(p string) {
		if p == assignment {
			if _, err := other.Create(p, []byte("not a's"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
				t.Errorf("taking the role first: %v", err)
			}
		}
	})
	// Only once a's create has lost is the role freed again: a delete sent
	// before a's create reached the server would let a win.
	rolematch.SetTestHookAfterCreate(t, func(p string, won bool, err error) {
		switch {
		case p != assignment || err != nil: // unknown outcome: a tries again
		case won:
			t.Errorf("a won the role: the other client should hold it")
		default:
			lost <- struct{}{}
		}
	})
	var s specs
	if _, err := a.roles.Apply(ctxT(t), "set", 1, s.props("a")); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		select {
		case <-lost:
		case <-time.After(20 * time.Second):
			t.Fatalf("a did not try the role a %d. time", i+1)
		}
		// The role is free again: a sees it go, and tries again.
		if err := other.Delete(assignment, -1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("a did not try the role a 6. time")
	}
	if n := rolematch.ClientWatches(a.Session.Conn(), root+"/roles/set/specs/r"); n != 1 {
		t.Fatalf("a holds %d watches on the spec after 6 lost tries, want 1", n)
	}
	if got, _, err := s.current(); err == nil {
		t.Fatalf("a holds the role (spec %q): the hook should have taken it first every time", got)
	}
}
