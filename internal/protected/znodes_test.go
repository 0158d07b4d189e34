package protected_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

// TestFindAndDeleteOwn: a create that succeeded is found by its GUID on the
// session that owns it, not on another; Delete removes the owner's strays
// and keeps the one named, and leaves other GUIDs' znodes alone.
func TestFindAndDeleteOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers := zktest.Shared(t).Addrs()
	dial := func() *cluster.Session {
		s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: 4 * time.Second, Logger: testnode.Logger()})
		if err != nil {
			t.Fatalf("dial %v: %v", servers, err)
		}
		t.Cleanup(s.Close)
		return s
	}
	s, other := dial(), dial()
	root := zktest.Root(t)
	dir := root + "/q"
	mine, theirs := protected.NewGUID(), protected.NewGUID()
	noLate := func(string, int64, error) { t.Error("late called though the caller waited") }

	if names, err := protected.Children(ctx, s, dir); err != nil || len(names) != 0 {
		t.Fatalf("Children of a missing dir = %v, %v; want none, nil", names, err)
	}
	if p, _, err := waiters.Find(ctx, s, dir, mine); err != nil || p != "" {
		t.Fatalf("Find in a missing dir = %q, %v; want none", p, err)
	}
	var made []string
	for range 3 {
		p, session, err := protected.Create(ctx, s, root, dir+"/"+waiters.Name(mine), nil, noLate)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if session != s.ID() {
			t.Fatalf("Create reported session %x, want %x", session, s.ID())
		}
		made = append(made, p)
	}
	foreign, _, err := protected.Create(ctx, other, root, dir+"/"+waiters.Name(theirs), nil, noLate)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if owner, err := protected.Owner(ctx, s, foreign); err != nil || owner != other.ID() {
		t.Fatalf("Owner(%s) = %x, %v; want %x", foreign, owner, err, other.ID())
	}

	p, owner, err := waiters.Find(ctx, s, dir, mine)
	if err != nil || p != made[0] || owner != s.ID() {
		t.Fatalf("Find = %q, %x, %v; want %q, %x", p, owner, err, made[0], s.ID())
	}
	if p, _, err := waiters.Find(ctx, other, dir, mine); err != nil || p != "" {
		t.Fatalf("Find on another session = %q, %v; want none: the znodes are not its", p, err)
	}

	names, err := protected.Children(ctx, s, dir)
	if err != nil {
		t.Fatal(err)
	}
	keep := made[1][len(dir)+1:]
	if err := waiters.Delete(ctx, s, dir, mine, names, keep); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Deleting again what is gone already counts as done.
	if err := waiters.Delete(ctx, s, dir, mine, names, keep); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	left, err := protected.Children(ctx, s, dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	want := []string{keep, foreign[len(dir)+1:]}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("after Delete: %v, want %v", left, want)
	}
	if owner, err := protected.Owner(ctx, s, made[0]); err != nil || owner != 0 {
		t.Errorf("Owner of a deleted znode = %x, %v; want 0, nil", owner, err)
	}

	// Abandon deletes the one kept; Sweep deletes every znode of a GUID.
	if err := protected.Abandon(ctx, s, made[1]); err != nil {
		t.Fatalf("Abandon: %v", err)
	}
	if err := waiters.Sweep(ctx, other, dir, theirs); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if left, err := protected.Children(ctx, s, dir); err != nil || len(left) != 0 {
		t.Errorf("after Abandon and Sweep: %v, %v; want none", left, err)
	}

	// Enqueue: a create that succeeds leaves no strays and names its owner.
	guid := protected.NewGUID()
	p, session, strays, err := waiters.Enqueue(ctx, s, root, dir, guid, []byte("data"), 100*time.Millisecond)
	if err != nil || strays || session != s.ID() {
		t.Fatalf("Enqueue = %q, %x, %v, %v; want a znode of %x, no strays", p, session, strays, err, s.ID())
	}
	if g, _, ok := waiters.Parse(p[len(dir)+1:]); !ok || g != guid {
		t.Errorf("Enqueue made %q, not a waiter of %s", p, guid)
	}
}
