package global_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/global"
	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/test/zktest"
)

func idle() *actor.Props { return actor.PropsFromFunc(func(actor.Context) {}) }

// place waits until n's Place(name) is want.
func place(t *testing.T, n *node, name string, want int) {
	t.Helper()
	zktest.Eventually(t, 20*time.Second, func() error {
		got, err := n.Elections.Place(context.Background(), name)
		if err != nil || got != want {
			return fmt.Errorf("Place = %d, %v; want %d", got, err, want)
		}
		return nil
	})
}

// size waits until the stream says want.
func size(t *testing.T, sizes <-chan int, want int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	last := -1
	for {
		select {
		case got, ok := <-sizes:
			if !ok {
				t.Fatalf("queue size stream closed, want %d (last %d)", want, last)
			}
			if last = got; got == want {
				return
			}
		case <-deadline.C:
			t.Fatalf("queue size %d, want %d", last, want)
		}
	}
}

func TestQueuePlaceAndSize(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	nodes := []*node{
		newNode(t, zkc.Addrs(), root, 4*time.Second),
		newNode(t, zkc.Addrs(), root, 4*time.Second),
		newNode(t, zkc.Addrs(), root, 4*time.Second),
	}
	monitor := newNode(t, zkc.Addrs(), root, 4*time.Second)
	sizes := monitor.Elections.ObserveQueue(ctx, "boss")
	size(t, sizes, 0)
	for i, n := range nodes {
		if _, err := n.Elections.RegisterCandidate(ctx, "boss", idle()); err != nil {
			t.Fatal(err)
		}
		place(t, n, "boss", i)
	}
	size(t, sizes, 3)
	q, err := monitor.Elections.Queue(ctx, "boss")
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 3 {
		t.Fatalf("queue of %d, want 3", len(q))
	}
	for i, c := range q {
		if c.Position != i || c.NodeID != nodes[i].Registry.NodeID() || c.PID == nil || c.Session != nodes[i].Session.ID() {
			t.Errorf("queue[%d] = %+v, want position %d of node %s", i, c, i, nodes[i].Registry.NodeID())
		}
		if i > 0 && (c.Sequence <= q[i-1].Sequence || c.Epoch <= q[i-1].Epoch) {
			t.Errorf("queue[%d] sequence %d epoch %d after %d, %d", i, c.Sequence, c.Epoch, q[i-1].Sequence, q[i-1].Epoch)
		}
	}
	if l, err := monitor.Elections.Leader(ctx, "boss"); err != nil || l.Epoch != q[0].Epoch {
		t.Errorf("leader %+v, %v; want the head's epoch %d", l, err, q[0].Epoch)
	}

	// Another client's znodes: a persistent one of the candidate shape is
	// no candidate (takesPart); an ephemeral one with garbage data is.
	conn := zkc.Connect(t)
	dir := monitor.Registry.Layout().GlobalPath("boss")
	if _, err := zkutil.CreateWithParents(conn, root, dir+"/_c_0123456789abcdef0123456789abcdef-c-0000000999", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(dir+"/_c_fedcba9876543210fedcba9876543210-c-", []byte("garbage"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 4)
	if q, err = monitor.Elections.Queue(ctx, "boss"); err != nil || len(q) != 4 || q[3].PID != nil || q[3].Session != conn.SessionID() {
		t.Fatalf("queue %+v, %v: want the three candidates and the garbage one last, with no PID", q, err)
	}

	if err := nodes[1].Elections.Resign(ctx, "boss"); err != nil {
		t.Fatal(err)
	}
	size(t, sizes, 3)
	place(t, nodes[2], "boss", 1)
	if _, err := nodes[1].Elections.Place(ctx, "boss"); !errors.Is(err, global.ErrNotCandidate) {
		t.Errorf("Place after Resign: %v, want ErrNotCandidate", err)
	}
	if _, err := monitor.Elections.Place(ctx, "boss"); !errors.Is(err, global.ErrNotCandidate) {
		t.Errorf("Place of a node that does not stand: %v, want ErrNotCandidate", err)
	}
}

func TestQueueBadName(t *testing.T) {
	zkc := zktest.Shared(t)
	n := newNode(t, zkc.Addrs(), zktest.Root(t), 4*time.Second)
	if _, err := n.Elections.Queue(ctxT(t), "a/b"); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Queue: %v, want ErrBadName", err)
	}
	if _, err := n.Elections.Place(ctxT(t), ""); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Place: %v, want ErrBadName", err)
	}
	if _, ok := <-n.Elections.ObserveQueue(ctxT(t), "a/b"); ok {
		t.Error("ObserveQueue of a bad name sent a size")
	}
}

// A candidate whose session expires re-enters at the back: its place
// goes from first to last, and the others move up.
func TestPlaceAfterSessionExpiry(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	ctx := ctxT(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	a := newNode(t, []string{proxy.Addr()}, root, time.Second)
	b := newNode(t, zkc.Addrs(), root, 4*time.Second)
	c := newNode(t, zkc.Addrs(), root, 4*time.Second)
	for _, n := range []*node{a, b, c} {
		if _, err := n.Elections.RegisterCandidate(ctx, "boss", idle()); err != nil {
			t.Fatal(err)
		}
	}
	place(t, a, "boss", 0)
	place(t, c, "boss", 2)
	zkc.ExpireSession(t, proxy, a.Session.ID())
	place(t, b, "boss", 0)
	place(t, c, "boss", 1)
	place(t, a, "boss", 2)
}
