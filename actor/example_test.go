package actor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// Actors on any node register under a shared name, and any node finds
// them all.
func ExampleNode_Register() {
	ctx := context.Background()
	node, err := zka.Bootstrap(ctx, zka.Config{Servers: servers(), Root: "/examples/register"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Stop(ctx)

	worker := node.System().Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := node.Register(ctx, "workers", worker, zka.WithMetadata(map[string]string{"zone": "a"})); err != nil {
		fmt.Println(err)
		return
	}
	pids, err := node.GetCapable(ctx, "workers")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(pids), pids[0].Equal(worker))
	// Output: 1 true
}

// A node stands for a global name; the actor starts only on the node that
// is elected, and learns its term's epoch first.
func ExampleNode_RegisterCandidate() {
	ctx := context.Background()
	node, err := zka.Bootstrap(ctx, zka.Config{Servers: servers(), Root: "/examples/candidate"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Stop(ctx)

	elected := make(chan int64, 1)
	boss := actor.PropsFromFunc(func(c actor.Context) {
		if e, ok := c.Message().(*zkactorv1.Elected); ok {
			elected <- e.Epoch // fence writes with it
		}
	})
	pid, err := node.RegisterCandidate(ctx, "boss", boss)
	if err != nil {
		fmt.Println(err)
		return
	}
	select {
	case epoch := <-elected:
		fmt.Println("elected, epoch > 0:", epoch > 0)
	case <-time.After(10 * time.Second):
		fmt.Println("not elected")
		return
	}
	where, err := node.WhereisGlobal(ctx, "boss") // from any node
	fmt.Println("whereis:", where.Equal(pid), err)
	// Output:
	// elected, epoch > 0: true
	// whereis: true <nil>
}
