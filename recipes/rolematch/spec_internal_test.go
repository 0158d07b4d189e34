package rolematch

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// The holder's side of spec changes, without ZooKeeper: the orders in
// which the applicant's update, its SpecChanged and the actor's start can
// meet. Each version reaches an actor once, after its Assigned, and never
// after a newer one.
func TestFollowSpecShowsEachVersionOnce(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	const path = "/zkactor/roles/set/assignments/r"
	st := &specState{set: "set", role: "r", path: path, latest: &rolematchv1.Role{Spec: &rolematchv1.Role_Data{Data: []byte("v1")}}, version: 10}
	seen := make(chan any, 16)
	holder := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *rolematchv1.Assigned, *rolematchv1.SpecChanged:
			seen <- m
		}
	}, actor.WithReceiverMiddleware(followSpec(st)), actor.WithContextDecorator(announce(st)))
	pid := system.Root.Spawn(holder)
	defer system.Root.Stop(pid)
	next := func() any {
		t.Helper()
		select {
		case m := <-seen:
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("the holder got nothing")
			return nil
		}
	}
	spec := func(data string) *rolematchv1.Role {
		return &rolematchv1.Role{Spec: &rolematchv1.Role_Data{Data: []byte(data)}}
	}

	// The spec changes before the actor's Assigned: the Assigned carries
	// it, and the SpecChanged sent for it (as old) is dropped.
	early := st.update(spec("v2"), 20)
	system.Root.Send(pid, early)
	system.Root.Send(pid, &pb.Elected{Name: "role set/r", Epoch: 7, Candidate: path})
	if a, ok := next().(*rolematchv1.Assigned); !ok || string(a.GetData()) != "v2" || a.SpecVersion != 20 || a.Epoch != 7 {
		t.Fatalf("first message %v, want Assigned with v2 (version 20), epoch 7", a)
	}
	// A stale one, and one sent twice, are dropped; newer ones pass, in
	// order, with the epoch.
	if st.update(spec("v1-again"), 15) != nil {
		t.Fatal("an older version was taken as an update")
	}
	system.Root.Send(pid, early)
	v3 := st.update(spec("v3"), 30)
	system.Root.Send(pid, v3)
	system.Root.Send(pid, v3)
	v4 := st.update(spec("v4"), 40)
	system.Root.Send(pid, v4)
	for _, want := range []struct {
		data    string
		version int64
	}{{"v3", 30}, {"v4", 40}} {
		if c, ok := next().(*rolematchv1.SpecChanged); !ok || string(c.GetData()) != want.data || c.Version != want.version || c.Epoch != 7 {
			t.Fatalf("got %v, want SpecChanged %s (version %d), epoch 7", c, want.data, want.version)
		}
	}
	// Another role's SpecChanged is not ours to judge: it passes as it is.
	other := &rolematchv1.SpecChanged{Set: "set", Role: "other", Version: 1}
	system.Root.Send(pid, other)
	if m := next(); m != other {
		t.Fatalf("got %v, want the other role's SpecChanged untouched", m)
	}
}
