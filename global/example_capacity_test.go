package global_test

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
)

// The queue behind a global is its spare capacity (PettingZoo's leader
// queue): a candidate learns its place, and anyone can read the queue and
// follow its size.
func ExampleElections_Queue() {
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
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: "/examples/queue"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close(ctx)
	elections := global.NewElections(system, reg, global.Options{})
	defer elections.Close(ctx)

	sizes := elections.ObserveQueue(ctx, "boss")
	fmt.Println("queued:", <-sizes)
	if _, err := elections.RegisterCandidate(ctx, "boss", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("queued:", <-sizes)
	place, err := elections.Place(ctx, "boss")
	if err != nil {
		fmt.Println(err)
		return
	}
	q, err := elections.Queue(ctx, "boss")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("our place:", place, "head's node is ours:", q[0].NodeID == reg.NodeID())
	// Output:
	// queued: 0
	// queued: 1
	// our place: 0 head's node is ours: true
}
