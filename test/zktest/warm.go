package zktest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/go-zookeeper/zk"
)

// WarmUp runs a few thousand requests against the cluster's servers, once
// per cluster, so that a benchmark's first figure is not a cold JVM's: a
// fresh server is two to four times slower until its JIT has compiled the
// request path, which made whichever of two benchmarks ran first (the raw
// floor, usually) look slower than the other.
func (c *Cluster) WarmUp(t testing.TB) {
	t.Helper()
	c.warm.Do(func() {
		conn := c.Connect(t)
		root := fmt.Sprintf("/zktest-warm-%08x", rand.Uint32())
		acl := zk.WorldACL(zk.PermAll)
		if _, err := conn.Create(root, nil, 0, acl); err != nil {
			t.Fatalf("zktest: warm up: %v", err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 250 {
					p := fmt.Sprintf("%s/w%d-%d", root, g, i)
					if _, err := conn.Create(p, []byte("warm"), zk.FlagEphemeral, acl); err != nil {
						errs <- err
						return
					}
					if _, _, err := conn.Children(root); err != nil {
						errs <- err
						return
					}
					if err := conn.Delete(p, -1); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("zktest: warm up: %v", err)
		}
	})
}
