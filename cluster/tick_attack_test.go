package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/test/zktest"
)

// The keeper's checks are put on ticks of the wall clock (OnTick), but
// their timers run on the monotonic clock: a wall clock step (NTP, an
// operator) between scheduling and firing changes nothing, and at
// scheduling only the phase is read. Whatever the wall clock reads (the
// zero time, before 1970, far ahead, stepped back or forward by any
// amount, with or without a monotonic reading, in any location), a check
// waits more than its delay (never fires in a tight loop) and at most one
// VerifyDelay longer (a foreign delete is still seen within 2*VerifyDelay
// of its event).
func TestAttackTickBoundsUnderAnyWallClock(t *testing.T) {
	now := time.Now() // has a monotonic reading
	tokyo := time.FixedZone("UTC+9", 9*3600)
	clocks := []time.Time{
		{}, // the zero time
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 987654321, time.UTC),
		time.Unix(0, 0),
		time.Unix(-1, 7),
		time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, tokyo),
		now,
		now.Round(0), // the wall clock only
		now.In(tokyo),
	}
	for _, step := range []time.Duration{-time.Hour, -time.Second, -3 * time.Millisecond, 17 * time.Millisecond, 24 * time.Hour} {
		clocks = append(clocks, now.Add(step), now.Round(0).Add(step))
	}
	for _, at := range clocks {
		for off := time.Duration(0); off < cluster.VerifyDelay; off += 7*time.Millisecond + 13 {
			c := at.Add(off)
			for _, d := range []time.Duration{0, time.Nanosecond, cluster.VerifyDelay, cluster.VerifyDelay - 1, 130 * time.Millisecond, time.Hour} {
				got := cluster.OnTick(c, d)
				if got <= d || got > d+cluster.VerifyDelay {
					t.Errorf("OnTick(%v, %v) = %v, want in (%v, %v]", c, d, got, d, d+cluster.VerifyDelay)
				}
			}
		}
	}
}

// A session expiry just before a foreign delete: the re-created znode's
// check (its create's watchDir, waiting for its tick) is scheduled on the
// new session; the foreign delete that follows at once is repaired, round
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
		zktest.Eventually(t, 20*time.Second, func() error {
			id := n.Session.ID()
			if id == old || id == 0 || !n.Session.Connected() {
				return errors.New("no new session yet")
			}
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
