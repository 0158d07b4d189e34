package rolematch_test

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// A controller posts a role; an applicant holds it: its holder's first
// message is the role's Assigned, and anyone sees who holds what. The
// controller re-posts the role with a new spec: the running holder gets it
// as a SpecChanged.
func ExampleRoles_Apply() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	system := actor.NewActorSystem()
	defer system.Shutdown()
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: "/examples/rolematch"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close(ctx)
	elections := global.NewElections(system, reg, global.Options{})
	defer elections.Close(ctx)
	roles := rolematch.New(system, reg, elections, rolematch.Options{})
	defer roles.Close(ctx) // first: the holders stop, their assignments go

	if err := roles.Post(ctx, "shards", rolematch.Role{Name: "shard-0", Data: []byte("keys a-m")}); err != nil {
		fmt.Println(err)
		return
	}
	assigned := make(chan *rolematchv1.Assigned, 1)
	changed := make(chan *rolematchv1.SpecChanged, 1)
	holder := actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *rolematchv1.Assigned:
			assigned <- m // a real holder starts its work here
		case *rolematchv1.SpecChanged:
			changed <- m // and follows its spec here
		}
	})
	app, err := roles.Apply(ctx, "shards", 1, holder)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := <-assigned
	fmt.Println(m.Role, string(m.GetData()), "epoch > 0:", m.Epoch > 0)
	holders, err := roles.Holders(ctx, "shards")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(holders[0].Role, "held by our application:", holders[0].Applicant == app.ID(), "same epoch:", holders[0].Epoch == m.Epoch)

	if err := roles.Post(ctx, "shards", rolematch.Role{Name: "shard-0", Data: []byte("keys a-f")}); err != nil {
		fmt.Println(err)
		return
	}
	c := <-changed
	fmt.Println(c.Role, string(c.GetData()), "same epoch:", c.Epoch == m.Epoch, "newer spec:", c.Version > m.SpecVersion)
	// Output:
	// shard-0 keys a-m epoch > 0: true
	// shard-0 held by our application: true same epoch: true
	// shard-0 keys a-f same epoch: true newer spec: true
}
