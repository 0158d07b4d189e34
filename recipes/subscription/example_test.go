package subscription_test

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/zktest"
)

// An actor follows the members of a service: the snapshot first, then a
// message per join and per leave, numbered so that a gap would show.
func ExampleSubscriptions_Subscribe() {
	ctx := context.Background()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: zktest.SharedServers()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	system := actor.NewActorSystem()
	defer system.Shutdown()
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: "/examples/subscription"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close(ctx)
	subs := subscription.New(system, reg, subscription.Options{})
	defer subs.Close()

	seen := make(chan string, 10)
	watcher := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *subv1.Snapshot:
			seen <- fmt.Sprintf("%d snapshot: %d members", m.Seq, len(m.Members))
		case *subv1.Joined:
			seen <- fmt.Sprintf("%d joined: zone %s", m.Seq, m.Member.GetRegistration().GetMetadata()["zone"])
		case *subv1.Left:
			seen <- fmt.Sprintf("%d left: zone %s", m.Seq, m.Member.GetRegistration().GetMetadata()["zone"])
		}
	}))
	cancel, err := subs.Subscribe(ctx, "workers", watcher)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cancel()
	fmt.Println(<-seen)

	worker := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := reg.Register(ctx, "workers", worker, map[string]string{"zone": "a"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-seen)
	system.Root.Stop(worker) // the registry drops its registration
	fmt.Println(<-seen)
	// Output:
	// 1 snapshot: 0 members
	// 2 joined: zone a
	// 3 left: zone a
}
