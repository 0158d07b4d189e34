package workqueue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/recipes/workqueue"
	"github.com/zkactor/zkactor/test/zktest"
)

// Items are taken oldest first, held until acknowledged, and an Ack leaves
// nothing behind: item, claim and key are gone.
func TestPutTakeAckInOrder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	q := open(t, s, root, "jobs", "p1")
	var ids []string
	for _, p := range []string{"one", "two", "three"} {
		ids = append(ids, put(t, q, "", p))
	}
	c := zkc.Connect(t)
	for i, want := range []string{"one", "two", "three"} {
		it := take(t, q)
		if string(it.Payload) != want || it.ID != ids[i] || it.Attempts != 1 || it.Producer != "p1" {
			t.Fatalf("take %d: %s %q attempts %d producer %q, want %s %q 1 p1", i, it.ID, it.Payload, it.Attempts, it.Producer, ids[i], want)
		}
		if got := children(t, c, root+"/queues/jobs/claims"); len(got) != 1 || got[0] != it.ID {
			t.Fatalf("claims while %s is held: %v", it.ID, got)
		}
		if err := q.Ack(ctxT(t), it); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if err := q.Ack(ctxT(t), it); err != nil {
			t.Errorf("a second Ack of a gone item: %v, want nil", err)
		}
	}
	empty(t, q)
	for _, dir := range []string{"items", "claims", "keys"} {
		if got := children(t, c, root+"/queues/jobs/"+dir); len(got) != 0 {
			t.Errorf("%s after every Ack: %v", dir, got)
		}
	}
}

// A Put with a key already queued returns that item and queues nothing; the
// same key with another payload is refused; after the Ack the key is free.
func TestPutIsIdempotent(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "p")
	a := put(t, q, "job-1", "feed the cat")
	if b := put(t, q, "job-1", "feed the cat"); b != a {
		t.Fatalf("Put of a queued key: %q, want %q", b, a)
	}
	if _, err := q.Put(ctxT(t), "job-1", []byte("something else")); !errors.Is(err, workqueue.ErrKeyUsed) {
		t.Fatalf("Put of a queued key with another payload: %v, want ErrKeyUsed", err)
	}
	if !strings.HasPrefix(a, "job-1-") {
		t.Errorf("item id %q does not start with its key", a)
	}
	c := zkc.Connect(t)
	if got := children(t, c, root+"/queues/jobs/items"); len(got) != 1 {
		t.Fatalf("items: %v, want one", got)
	}
	it := take(t, q)
	if it.Key != "job-1" {
		t.Fatalf("took key %q", it.Key)
	}
	// Held, the key still dedups.
	if b := put(t, q, "job-1", "feed the cat"); b != a {
		t.Fatalf("Put of a held key: %q, want %q", b, a)
	}
	if err := q.Ack(ctxT(t), it); err != nil {
		t.Fatal(err)
	}
	if b := put(t, q, "job-1", "feed the cat"); b == a || b == "" {
		t.Fatalf("Put after the Ack: %q, want a new item", b)
	}
}

// Bad names and keys wrap cluster.ErrBadName, oversize payloads
// cluster.ErrTooLarge; neither costs the session its connection.
func TestBadInput(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	s := dial(t, zkc.Addrs(), 4*time.Second)
	drops := 0
	stop := s.Notify(func(ev cluster.Event) {
		if ev.Kind != cluster.Connected {
			drops++
		}
	})
	defer stop()
	for _, name := range []string{"", "a/b", "..", "zoo\x00", strings.Repeat("x", 300)} {
		if _, err := workqueue.Open(ctxT(t), s, name, workqueue.Options{Root: root}); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("Open(%q): %v, want ErrBadName", name, err)
		}
	}
	if _, err := workqueue.Open(ctxT(t), s, "q", workqueue.Options{Root: "relative"}); !errors.Is(err, cluster.ErrBadName) {
		t.Errorf("Open with root \"relative\": %v, want ErrBadName", err)
	}
	q := open(t, s, root, "q", "p")
	for _, key := range []string{"a/b", ".", "\xff", strings.Repeat("k", workqueue.MaxKeyLength+1)} {
		if _, err := q.Put(ctxT(t), key, []byte("x")); !errors.Is(err, cluster.ErrBadName) {
			t.Errorf("Put with key %q: %v, want ErrBadName", key, err)
		}
	}
	big := make([]byte, 1200<<10) // between jute.maxbuffer (1 MiB) and 1.5 MiB
	if _, err := q.Put(ctxT(t), "big", big); !errors.Is(err, cluster.ErrTooLarge) {
		t.Errorf("Put of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	if _, err := q.Put(ctxT(t), "limit", make([]byte, workqueue.MaxPayloadSize)); err != nil {
		t.Errorf("Put of MaxPayloadSize bytes: %v", err)
	}
	if it := take(t, q); it.Key != "limit" || len(it.Payload) != workqueue.MaxPayloadSize {
		t.Errorf("took %s of %d bytes", it.ID, len(it.Payload))
	}
	if drops != 0 {
		t.Errorf("the session had %d events other than connected", drops)
	}
}

// Children of items/ that are not items, or whose data is not an Item, are
// skipped: the items next to them are taken, and nothing panics.
func TestGarbageAmongItemsIsSkipped(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "p")
	c := zkc.Connect(t)
	dir := root + "/queues/jobs/items"
	open := zk.WorldACL(zk.PermAll)
	for name, data := range map[string]string{
		"junk":             "junk",
		"k-0000000000":     "\xff\xff\xff\xff", // an item's name, garbage data
		"k-00000000x1":     "",
		"k-0000000003":     "",          // an empty record: no key
		"j-0000000004":     "\x22\x01k", // a record of key "k" under "j"
		"-0000000001":      "",
		"a/b":              "",
		"k-00000000000001": "",
	} {
		if name == "a/b" {
			continue
		}
		if _, err := c.Create(dir+"/"+name, []byte(data), 0, open); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	if _, err := c.Create(dir+"/private-0000000002", nil, 0, zk.DigestACL(zk.PermAll, "someone", "secret")); err != nil {
		t.Fatal(err)
	}
	put(t, q, "real", "real work")
	it := take(t, q)
	if it.Key != "real" || string(it.Payload) != "real work" {
		t.Fatalf("took %s %q, want the real item", it.ID, it.Payload)
	}
	if err := q.Ack(ctxT(t), it); err != nil {
		t.Fatal(err)
	}
	empty(t, q)
	if got := children(t, c, dir); len(got) != 8 {
		t.Errorf("garbage touched: %v", got)
	}
}

// A Take on an empty queue waits for a Put (on a watch), from another
// session; a Released item is taken again, with one more attempt.
func TestTakeWaitsAndReleaseGivesBack(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	taker := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "taker")
	producer := open(t, dial(t, zkc.Addrs(), 4*time.Second), root, "jobs", "producer")
	got := make(chan *workqueue.Item, 1)
	errs := make(chan error, 1)
	go func() {
		it, err := taker.Take(ctxT(t))
		if err != nil {
			errs <- err
			return
		}
		got <- it
	}()
	put(t, producer, "late", "late work")
	var it *workqueue.Item
	select {
	case it = <-got:
	case err := <-errs:
		t.Fatalf("Take: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting Take did not get the item")
	}
	if it.Key != "late" || it.Producer != "producer" || it.Attempts != 1 {
		t.Fatalf("took %+v", it)
	}
	if err := taker.Release(ctxT(t), it); err != nil {
		t.Fatal(err)
	}
	again := take(t, producer) // any handle may take it
	if again.ID != it.ID || again.Attempts != 2 {
		t.Fatalf("after Release took %s attempts %d, want %s attempts 2", again.ID, again.Attempts, it.ID)
	}
	// The first take is over: its Release and Ack do nothing to the second's.
	if err := taker.Release(ctxT(t), it); err != nil {
		t.Fatal(err)
	}
	if err := taker.Ack(ctxT(t), it); !errors.Is(err, workqueue.ErrNotHeld) {
		t.Fatalf("Ack of an item taken again since: %v, want ErrNotHeld", err)
	}
	if err := producer.Ack(ctxT(t), again); err != nil {
		t.Fatal(err)
	}
}

// A Take whose ctx ends returns; so does one on a closed handle.
func TestTakeEnds(t *testing.T) {
	zkc := zktest.Shared(t)
	q := open(t, dial(t, zkc.Addrs(), 4*time.Second), zktest.Root(t), "jobs", "p")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := q.Take(ctx); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Take after cancel: %v", err)
	}
	go func() { _, err := q.Take(context.Background()); done <- err }()
	q.Close()
	if err := <-done; !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Take after Close: %v", err)
	}
}
