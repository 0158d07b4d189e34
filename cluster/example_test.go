package cluster_test

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// A Registry without actor.Node: a session, an actor system, and the
// registry on both. Lookups after the first are served from memory.
func ExampleRegistry_GetCapable() {
	ctx := context.Background()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	system := actor.NewActorSystem()
	defer system.Shutdown()
	reg, err := cluster.NewRegistry(ctx, system, s, cluster.Options{Root: "/examples/registry"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close(ctx)

	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := reg.Register(ctx, "workers", pid, map[string]string{"zone": "a"}); err != nil {
		fmt.Println(err)
		return
	}
	regs, err := reg.Lookup(ctx, "workers")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(regs), regs[0].Metadata["zone"])
	// Output: 1 a
}
