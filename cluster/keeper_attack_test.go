package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// ourOnly returns the single child of dir, failing if there is not exactly one.
func onlyChild(raw *zk.Conn, dir string) (string, error) {
	names, _, err := raw.Children(dir)
	if err != nil {
		return "", err
	}
	if len(names) != 1 {
		return "", fmt.Errorf("%s has %d children, want 1", dir, len(names))
	}
	return dir + "/" + names[0], nil
}

// A registration and its container directory deleted together (an
// operator's `deleteall`, or the container reaper winning the race with
// the keeper's 50 ms verify) are re-created, but the keeper's verify met
// ErrNoNode (ChildrenW sets no watch then) and left watched[dir] = false,
// so the re-create's watchDir thinks the directory is watched. The next
// foreign delete of the registration is never noticed.
func TestAttackKeeperLosesDirWatchAfterContainerGone(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	pid := a.Spawn(t)
	register(t, a, "svc", pid)
	dir := root + "/services/svc"
	p, err := onlyChild(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Registration and directory go in one transaction.
	if _, err := raw.Multi(&zk.DeleteRequest{Path: p, Version: -1}, &zk.DeleteRequest{Path: dir, Version: -1}); err != nil {
		t.Fatalf("multi delete: %v", err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		ok, st, err := raw.Exists(p)
		if err != nil || !ok || st.EphemeralOwner != a.Session.ID() {
			return fmt.Errorf("not re-created after the first delete: %v %v", ok, err)
		}
		return nil
	})
	// Again, the registration alone.
	if err := raw.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		ok, _, err := raw.Exists(p)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the second foreign delete of the registration was never noticed: the keeper's directory watch is gone")
		}
		return nil
	})
}

// Control: two plain foreign deletes in a row (the directory stays) are
// both noticed.
func TestAttackKeeperTwoForeignDeletes(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	a := newNode(t, nodeOpts{servers: zkc.Addrs(), root: root})
	pid, other := a.Spawn(t), a.Spawn(t)
	register(t, a, "svc", pid)
	dir := root + "/services/svc"
	p, err := onlyChild(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	register(t, a, "svc", other) // keeps the directory non-empty
	for round := range 3 {
		if err := raw.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
		zktest.Eventually(t, 10*time.Second, func() error {
			ok, _, err := raw.Exists(p)
			if err != nil || !ok {
				return fmt.Errorf("round %d: not re-created", round)
			}
			return nil
		})
	}
}
