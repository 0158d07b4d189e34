package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zkactor/zkactor/test/zktest"
)

// A session expiry just before a foreign delete: the re-created znode's
// check (its create's watchDir) is scheduled on the new session; the foreign delete that follows at once is repaired, round
// after round.
func TestAttackForeignDeleteRightAfterAnExpiryIsRepaired(t *testing.T) {
	zkc := zktest.Shared(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, nodeOpts{servers: []string{proxy.Addr()}, root: zktest.Root(t), timeout: time.Second})
	ctx := ctxT(t)
	if err := n.Registry.Register(ctx, "svc", n.Spawn(t), nil); err != nil {
		t.Fatal(err)
	}
	raw := zkc.Connect(t)
	dir := n.Registry.Layout().ServicePath("svc")
	ownedBy := func(session int64) (string, error) {
		p, err := onlyChild(raw, dir)
		if err != nil {
			return "", err
		}
		ok, stat, err := raw.Exists(p)
		if err != nil {
			return "", err
		}
		if !ok || stat.EphemeralOwner != session {
			return "", fmt.Errorf("%s not owned by session %#x", p, session)
		}
		return p, nil
	}
	for round := range 3 {
		old := n.Session.ID()
		zkc.ExpireSession(t, proxy, old)
		var p string
		id := newSession(t, n.Session, old)
		zktest.Eventually(t, 20*time.Second, func() error {
			var err error
			p, err = ownedBy(id)
			return err
		})
		if err := raw.Delete(p, -1); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		zktest.Eventually(t, 10*time.Second, func() error {
			_, err := ownedBy(n.Session.ID())
			return err
		})
	}
}
