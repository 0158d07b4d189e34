package lock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/lock"
	"github.com/zkactor/zkactor/test/zktest"
)

// servers is the ZooKeeper ensemble, []string{"127.0.0.1:2181"} say; the
// examples run against the test process's own server.
func servers() []string { return zktest.SharedServers() }

// Two processes (here two sessions) contend for one lock: the second's
// TryLock fails while the first holds it, its Lock waits until the first
// unlocks, and the tokens grow from one tenure to the next.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ms []*lock.Mutex
	for range 2 {
		s, err := cluster.Dial(ctx, cluster.Config{Servers: servers()})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer s.Close()
		m, err := lock.New(s, "/examples/lock", "ledger", lock.Options{})
		if err != nil {
			fmt.Println(err)
			return
		}
		ms = append(ms, m)
	}
	first, second := ms[0], ms[1]

	held, err := first.Lock(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = second.TryLock(ctx)
	fmt.Println("TryLock while held:", errors.Is(err, lock.ErrLocked))

	next := make(chan *lock.Held)
	go func() {
		h, err := second.Lock(ctx) // waits for the first to unlock
		if err != nil {
			fmt.Println(err)
		}
		next <- h
	}()
	// Work under the lock, fenced with held.Token(), until done or lost.
	select {
	case <-held.Lost():
		fmt.Println("lost:", held.Err())
	default:
	}
	if err := held.Unlock(ctx); err != nil {
		fmt.Println(err)
	}
	h := <-next
	if h == nil {
		return
	}
	fmt.Println("second holds it, with a larger token:", h.Token() > held.Token())
	_ = h.Unlock(ctx)
	// Output:
	// TryLock while held: true
	// second holds it, with a larger token: true
}
