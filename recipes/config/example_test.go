package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// show prints values as compact JSON.
func show(v *structpb.Struct) {
	b, _ := json.Marshal(v.AsMap())
	fmt.Println(string(b))
}

// A worker actor follows the merged config of its process: the service's
// record with its own override on top, at once and after every change.
func ExampleStore_Subscribe() {
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
	store, err := config.NewStore(system, s, config.Options{Root: "/examples/config"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close(ctx)

	// The service's record, written with compare-and-set at the version
	// Get read (config.Absent when there is none yet).
	cfg, err := store.Get(ctx, "billing", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	values, err := config.ParseJSON([]byte(`{"db": {"host": "db-1", "port": 5432}, "debug": false}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := store.Set(ctx, "billing", values, cfg.ServiceRecord.GetVersion()); err != nil {
		fmt.Println(err)
		return
	}

	configs := make(chan *configv1.Config, 8)
	worker := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*configv1.Config); ok {
			configs <- m
		}
	}))
	stop, err := store.Subscribe(ctx, "billing", "worker-1", worker)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	show((<-configs).Values)

	// worker-1 gets an override of its own.
	override, err := config.ParseJSON([]byte(`{"db": {"host": "db-2"}, "debug": true}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := store.SetOverride(ctx, "billing", "worker-1", override, config.Absent); err != nil {
		fmt.Println(err)
		return
	}
	got := <-configs
	show(got.Values)
	fmt.Println("override version:", got.Override.Version)
	if err := store.DeleteOverride(ctx, "billing", "worker-1", got.Override.Version); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"db":{"host":"db-1","port":5432},"debug":false}
	// {"db":{"host":"db-2","port":5432},"debug":true}
	// override version: 0
}

// The merge is a JSON merge patch: objects merge key by key, null deletes.
func ExampleMerge() {
	service, _ := config.ParseJSON([]byte(`{"db": {"host": "db-1", "port": 5432}, "zones": ["a", "b"], "trace": true}`))
	override, _ := config.ParseJSON([]byte(`{"db": {"host": "db-2"}, "zones": ["c"], "trace": null}`))
	show(config.Merge(service, override))
	// Output: {"db":{"host":"db-2","port":5432},"zones":["c"]}
}
