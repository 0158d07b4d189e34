package global_test

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// Observe follows who holds a global name: the current holder first, then
// every change.
func ExampleElections_Observe() {
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
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: "/examples/observe"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close(ctx)
	elections := global.NewElections(system, reg, global.Options{})
	defer elections.Close(ctx)

	leaders := elections.Observe(ctx, "boss")
	fmt.Println("held:", (<-leaders).PID != nil)
	pid, err := elections.RegisterCandidate(ctx, "boss", actor.PropsFromFunc(func(actor.Context) {}))
	if err != nil {
		fmt.Println(err)
		return
	}
	for l := range leaders {
		if l.PID != nil {
			fmt.Println("held by our candidate:", l.PID.Equal(pid), "with an epoch:", l.Epoch > 0)
			break
		}
	}
	// Output:
	// held: false
	// held by our candidate: true with an epoch: true
}
