package workqueue_test

import (
	"context"
	"fmt"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// A producer puts two items; a taker takes them in order and acknowledges
// each once done. The key makes a retried Put harmless.
func ExampleQueue_Take() {
	ctx := context.Background()
	s, err := cluster.Dial(ctx, cluster.Config{Servers: zktest.SharedServers()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	q, err := workqueue.Open(ctx, s, "example", workqueue.Options{Root: "/examples/workqueue"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	for _, job := range []string{"wash the dishes", "feed the cat"} {
		if _, err := q.Put(ctx, "", []byte(job)); err != nil {
			fmt.Println(err)
			return
		}
	}
	if _, err := q.Put(ctx, "report", []byte("write the report")); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := q.Put(ctx, "report", []byte("write the report")); err != nil { // a retry: queued once
		fmt.Println(err)
		return
	}
	for range 3 {
		it, err := q.Take(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (attempt %d)\n", it.Payload, it.Attempts)
		if err := q.Ack(ctx, it); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// wash the dishes (attempt 1)
	// feed the cat (attempt 1)
	// write the report (attempt 1)
}
