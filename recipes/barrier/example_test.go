package barrier_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/barrier"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// Three workers (here three sessions) start a phase together and finish it
// together: nobody computes before all three have entered, and nobody goes
// on before all three have left.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		computed int
	)
	for range 3 {
		s, err := cluster.Dial(ctx, cluster.Config{Servers: servers()})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer s.Close()
		b, err := barrier.New(s, "/examples/barrier", "phase-1", 3, barrier.Options{})
		if err != nil {
			fmt.Println(err)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Enter(ctx); err != nil {
				fmt.Println(err)
				return
			}
			mu.Lock()
			computed++ // the phase's work
			mu.Unlock()
			if err := b.Leave(ctx); err != nil {
				fmt.Println(err)
			}
		}()
	}
	wg.Wait()
	fmt.Println("workers that computed:", computed)
	// Output: workers that computed: 3
}
