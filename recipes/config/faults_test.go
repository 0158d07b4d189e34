package config_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

// Two writers on two sessions at one version: one wins, the other gets
// ErrConflict with the winner's version; with read-modify-write loops on
// conflict, no update is lost and none is applied twice.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	a := newNode(t, zkc.Addrs(), root, 0)
	b := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := a.store.Set(ctx, "svc", values(t, `{"n":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}

	// 1. One race, both at version 0.
	start := make(chan struct{})
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = n.store.Set(ctx, "svc", values(t, fmt.Sprintf(`{"n":0,"by":"%c"}`, 'a'+i)), 0)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var ce *config.ConflictError
		switch {
		case err == nil && winner < 0:
			winner = i
		case errors.As(err, &ce) && ce.Current == 1 && ce.Expected == 0:
		default:
			t.Fatalf("writer %d: %v (errors: %v); want one success and one conflict at version 1", i, err, errs)
		}
	}
	if winner < 0 {
		t.Fatalf("both writers failed: %v", errs)
	}
	cfg, err := a.store.Get(ctx, "svc", "")
	if err != nil || cfg.ServiceRecord.Version != 1 || cfg.Values.Fields["by"].GetStringValue() != string(rune('a'+winner)) {
		t.Fatalf("after the race: %v, %v; want the winner's record at version 1", cfg, err)
	}

	// 2. Read-modify-write increments from four writers on two sessions.
	const writers, increments = 4, 10
	var conflicts sync.Map
	errc := make(chan error, writers)
	for i := range writers {
		n := []*node{a, b}[i%2]
		go func() {
			for range increments {
				for {
					cfg, err := n.store.Get(ctx, "svc", "")
					if err != nil {
						errc <- err
						return
					}
					next := proto.Clone(cfg.ServiceRecord.Values).(*structpb.Struct)
					next.Fields["n"] = structpb.NewNumberValue(next.Fields["n"].GetNumberValue() + 1)
					_, err = n.store.Set(ctx, "svc", next, cfg.ServiceRecord.Version)
					if errors.Is(err, config.ErrConflict) {
						conflicts.Store(i, true)
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					break
				}
			}
			errc <- nil
		}()
	}
	for range writers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	cfg, err = a.store.Get(ctx, "svc", "")
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.Values.Fields["n"].GetNumberValue(); n != writers*increments || cfg.ServiceRecord.Version != 1+writers*increments {
		t.Errorf("counter = %v at version %d; want %d at version %d (an update lost or doubled)", n, cfg.ServiceRecord.Version, writers*increments, 1+writers*increments)
	}
	seen := 0
	conflicts.Range(func(any, any) bool { seen++; return true })
	t.Logf("%d of %d writers met a conflict and retried", seen, writers)
}

// The subscriber's session expires while the config changes (the
// override is deleted, the record written over and over): after the new
// session it is sent the latest config, and its configs never go back.
func TestSubscriberSessionExpiry(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sub := newNode(t, []string{proxy.Addr()}, root, time.Second)
	w := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := w.store.Set(ctx, "svc", values(t, `{"n":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.SetOverride(ctx, "svc", "p", values(t, `{"o":true}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(sub)
	if _, err := sub.store.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	r.waitN(t, 1)
	oldSession := sub.session.ID()

	// Away: the override goes, the record changes.
	proxy.Blackhole()
	if err := w.store.DeleteOverride(ctx, "svc", "p", 0); err != nil {
		t.Fatal(err)
	}
	version, err := w.store.Set(ctx, "svc", values(t, `{"n":1}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	// And it goes on changing while the session expires and the
	// subscriber comes back on a new one.
	stop := make(chan struct{})
	written := make(chan int32, 1)
	go func() {
		v := version
		tick := time.NewTicker(20 * time.Millisecond) // pacing, not synchronisation
		defer tick.Stop()
		for {
			select {
			case <-stop:
				written <- v
				return
			case <-tick.C:
			}
			next, err := w.store.Set(ctx, "svc", values(t, fmt.Sprintf(`{"n":%d}`, v+1)), v)
			if err != nil {
				t.Errorf("writer: %v", err)
				written <- v
				return
			}
			v = next
		}
	}()
	zkc.ExpireSession(t, proxy, oldSession)
	zktest.Eventually(t, 10*time.Second, func() error {
		if id := sub.session.ID(); id == oldSession || id == 0 || !sub.session.Connected() {
			return fmt.Errorf("subscriber on session %#x (old %#x)", id, oldSession)
		}
		return nil
	})
	// Some writes land on the new session too.
	sent := r.count()
	zktest.Eventually(t, 10*time.Second, func() error {
		if r.count() < sent+2 {
			return errors.New("waiting for changes after the new session")
		}
		return nil
	})
	close(stop)
	final := <-written

	got := r.waitFor(t, fmt.Sprintf("the latest record (version %d)", final), func(c *configv1.Config) bool {
		return c.ServiceRecord.Version == final
	})
	if got.Override.Exists || jsonOf(got.Values) != fmt.Sprintf(`{"n":%d}`, final) {
		t.Errorf("latest config = %v; want n=%d and no override", got, final)
	}
	all := r.all()
	monotonic(t, all)
	if all[1].Override.Exists {
		t.Errorf("the first config after the partition still has the deleted override: %v", all[1])
	}
	t.Logf("%d configs received for %d writes", len(all), final+2)
}

// A short cut of the subscriber's connection (its session survives): the
// latest config arrives after it, once, and nothing repeats.
func TestSubscriberConnectionCut(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	sub := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	w := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := w.store.Set(ctx, "svc", values(t, `{"n":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(sub)
	if _, err := sub.store.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	r.waitN(t, 1)
	session := sub.session.ID()

	proxy.Cut()
	zktest.Eventually(t, 5*time.Second, func() error {
		if sub.session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	var v int32
	for i := 1; i <= 3; i++ {
		var err error
		if v, err = w.store.Set(ctx, "svc", values(t, fmt.Sprintf(`{"n":%d}`, i)), v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.store.SetOverride(ctx, "svc", "p", values(t, `{"o":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	proxy.Restore()
	got := r.waitFor(t, "the latest config", func(c *configv1.Config) bool {
		return c.ServiceRecord.Version == 3 && c.Override.Exists
	})
	if jsonOf(got.Values) != `{"n":3,"o":1}` {
		t.Errorf("latest = %s", jsonOf(got.Values))
	}
	if sub.session.ID() != session {
		t.Errorf("the session changed across a short cut")
	}
	monotonic(t, r.all())
}

// Replies lost with the connection: a write that was applied is sent again
// after the reconnect and meets itself. It must report success, not a
// conflict with its own write. A real conflict in that window stays one.
func TestLostReplyIsNotAConflict(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"n":0}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	svcPath, ovPath := n.store.ServicePath("svc"), n.store.OverridePath("svc", "p")
	// lose runs write with the replies lost until the server has applied
	// it (applied reports that, from a second client), then heals.
	lose := func(what string, applied func() error, write func() error) error {
		t.Helper()
		session := n.session.ID()
		proxy.DropFromTarget()
		done := make(chan error, 1)
		go func() { done <- write() }()
		zktest.Eventually(t, 5*time.Second, applied)
		select {
		case err := <-done:
			t.Fatalf("%s returned before its reply could arrive: %v", what, err)
		default:
		}
		proxy.Restore()
		err := <-done
		if n.session.ID() != session {
			t.Errorf("%s: the session changed; this test is about a lost reply on a live session", what)
		}
		return err
	}
	version := func(p string, want int32) func() error {
		return func() error {
			ok, stat, err := raw.Exists(p)
			if err != nil || !ok || stat.Version != want {
				return fmt.Errorf("%s: exists %v, %v, %v; want version %d", p, ok, stat, err, want)
			}
			return nil
		}
	}

	// A set at version 0.
	var got int32
	err := lose("Set", version(svcPath, 1), func() (err error) {
		got, err = n.store.Set(ctx, "svc", values(t, `{"n":1}`), 0)
		return err
	})
	if err != nil || got != 1 {
		t.Errorf("Set whose reply was lost = %d, %v; want version 1", got, err)
	}
	// A create.
	err = lose("SetOverride(Absent)", version(ovPath, 0), func() (err error) {
		got, err = n.store.SetOverride(ctx, "svc", "p", values(t, `{"o":1}`), config.Absent)
		return err
	})
	if err != nil || got != 0 {
		t.Errorf("create whose reply was lost = %d, %v; want version 0", got, err)
	}
	// A delete.
	err = lose("DeleteOverride", func() error {
		if ok, _, err := raw.Exists(ovPath); err != nil || ok {
			return fmt.Errorf("override still there (%v)", err)
		}
		return nil
	}, func() error { return n.store.DeleteOverride(ctx, "svc", "p", 0) })
	if err != nil {
		t.Errorf("delete whose reply was lost = %v", err)
	}
	if cfg, err := n.store.Get(ctx, "svc", "p"); err != nil || jsonOf(cfg.Values) != `{"n":1}` || cfg.Override.Exists {
		t.Errorf("after the lost replies: %v, %v", cfg, err)
	}

	// Another writer changes the record after the lost write and before
	// the read back: the call reports the conflict it cannot tell from a
	// lost write of its own (documented on Set).
	err = lose("Set overwritten", func() error {
		if err := version(svcPath, 2)(); err != nil {
			return err
		}
		_, err := raw.Set(svcPath, mustRecord(t, `{"n":"other"}`), 2)
		return err
	}, func() (err error) {
		_, err = n.store.Set(ctx, "svc", values(t, `{"n":2}`), 1)
		return err
	})
	var ce *config.ConflictError
	if !errors.As(err, &ce) || ce.Current != 3 {
		t.Errorf("Set overwritten after its lost reply = %v; want a conflict at version 3", err)
	}
}

func mustRecord(t testing.TB, doc string) []byte {
	t.Helper()
	b, err := proto.Marshal(&configv1.Record{Values: values(t, doc), WriteId: "other"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Another client writes garbage into the config znodes: Get reports it,
// the subscriber is told (Error) and keeps the last good values, nothing
// panics, and a repair is delivered.
func TestGarbageData(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"b":2}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(n)
	if _, err := n.store.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	good := `{"a":1,"b":2}`
	if got := r.waitN(t, 1); jsonOf(got.Values) != good {
		t.Fatalf("first = %v", got)
	}
	svcPath, ovPath := n.store.ServicePath("svc"), n.store.OverridePath("svc", "p")

	// JSON written by hand where a Record belongs.
	if _, err := raw.Set(svcPath, []byte(`{"a": 2}`), -1); err != nil {
		t.Fatal(err)
	}
	got := r.waitN(t, 2)
	if !strings.Contains(got.Error, svcPath) || !strings.Contains(got.Error, "looks like JSON") || jsonOf(got.Values) != good ||
		got.ServiceRecord.Version != 1 || got.ServiceRecord.Error == "" || got.Override.Error != "" {
		t.Errorf("after garbage in the record: %v; want an error naming %s and the last good values", got, svcPath)
	}
	if _, err := n.store.Get(ctx, "svc", "p"); !errors.Is(err, config.ErrBadRecord) || !strings.Contains(err.Error(), svcPath) {
		t.Errorf("Get of garbage = %v, want ErrBadRecord naming %s", err, svcPath)
	}
	// Bytes that are not protobuf, and a Record whose values JSON cannot
	// hold, in the override.
	nan, err := proto.Marshal(&configv1.Record{Values: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.NaN())}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, data := range [][]byte{{0xff, 0xff, 0xff}, nan} {
		if _, err := raw.Set(ovPath, data, -1); err != nil {
			t.Fatal(err)
		}
		got = r.waitN(t, 3+i)
		if !strings.Contains(got.Error, ovPath) || !strings.Contains(got.Error, svcPath) || jsonOf(got.Values) != good {
			t.Errorf("after garbage %x in the override too: %v", data, got)
		}
	}

	// Repaired with compare-and-set at the versions the subscriber was sent.
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":3}`), got.ServiceRecord.Version); err != nil {
		t.Fatal(err)
	}
	got = r.waitN(t, 5)
	if got.ServiceRecord.Error != "" || got.Override.Error == "" || jsonOf(got.Values) != good {
		t.Errorf("after repairing the record only: %v", got)
	}
	if _, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"b":4}`), got.Override.Version); err != nil {
		t.Fatal(err)
	}
	if got = r.waitN(t, 6); got.Error != "" || jsonOf(got.Values) != `{"a":3,"b":4}` {
		t.Errorf("after repairing both: %v", got)
	}
	// A znode without data is an empty record, not garbage.
	if _, err := raw.Set(ovPath, nil, -1); err != nil {
		t.Fatal(err)
	}
	if got = r.waitN(t, 7); got.Error != "" || jsonOf(got.Values) != `{"a":3}` {
		t.Errorf("after emptying the override: %v", got)
	}
	monotonic(t, r.all())
}
