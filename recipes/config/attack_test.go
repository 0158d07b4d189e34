package config_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/zktest"
)

// A subscriber that edits a Config it was sent (a read-modify-write
// without a clone, as one does with a message one owns) must not change
// what the subscription sends next: the part that did not change is not
// shared between the two messages, nor with the subscription's own state.
// Before the fix the next message carried the edit (and -race reported the
// subscription reading what the actor wrote).
func TestAttackReceiverOwnsItsConfig(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	w := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := w.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		got    []string // the values of each message as it arrived, before any edit
		edited = make(chan struct{})
	)
	pid := n.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		m, ok := c.Message().(*configv1.Config)
		if !ok {
			return
		}
		mu.Lock()
		got = append(got, jsonOf(m.ServiceRecord.Values)+" "+jsonOf(m.Values))
		first := len(got) == 1
		mu.Unlock()
		if first {
			// The receiver's own message: edit it in place.
			m.ServiceRecord.Values.Fields["local"] = structpb.NewStringValue("edit")
			m.Values.Fields["local"] = structpb.NewStringValue("edit")
			m.ServiceRecord.Version = 99
			close(edited)
		}
	}))
	if _, err := n.store.Subscribe(ctx, "svc", "p", pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-edited:
	case <-ctx.Done():
		t.Fatal("no first config")
	}
	// Only the override changes: the service's part is read no more.
	if _, err := w.store.SetOverride(ctx, "svc", "p", values(t, `{"b":2}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 2 {
			return fmt.Errorf("%d configs received, waiting for 2", len(got))
		}
		return nil
	})
	mu.Lock()
	second := got[1]
	mu.Unlock()
	if want := `{"a":1} {"a":1,"b":2}`; second != want {
		t.Errorf("second config (service part, merged) = %s; want %s: the receiver's edit of the first leaked into it", second, want)
	}
	// And Get, Set at the version the subscription saw, are unaffected.
	cfg, err := n.store.Get(ctx, "svc", "p")
	if err != nil || cfg.ServiceRecord.Version != 0 {
		t.Errorf("Get = %v, %v", cfg, err)
	}
}

// An override this client may not read (another client made it with an
// ACL without world read) while the subscriber's session was away: the new
// session's read is refused. ZooKeeper sends no watch event for a znode
// the client may not read, so the subscription must read it again to see
// a repair, but it must say so (one Warn, not a silent Debug per retry)
// and back off instead of reading ten times a second for as long as the
// refusal lasts. Once the ACL is repaired (no write: no event), the
// subscriber gets the override.
func TestAttackOverrideRefusedAfterExpiry(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, []string{proxy.Addr()}, root, time.Second)
	logs := &captureHandler{}
	st, err := config.NewStore(n.system, n.session, config.Options{Root: root, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	owner := zkc.Connect(t)
	ctx := ctxT(t)
	if err := owner.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(n)
	if _, err := st.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	if got := r.waitN(t, 1); jsonOf(got.Values) != `{"a":1}` {
		t.Fatalf("first = %v", got)
	}
	ovPath := st.OverridePath("svc", "p")
	if _, err := owner.Create(ovPath, mustRecord(t, `{"b":2}`), 0, zk.DigestACL(zk.PermAll, "owner", "secret")); err != nil {
		t.Fatal(err)
	}
	zkc.ExpireSession(t, proxy, n.session.ID())
	zktest.Eventually(t, 10*time.Second, func() error {
		if logs.count(slog.LevelWarn, ovPath) == 0 {
			return fmt.Errorf("no Warn naming %s; logged: %v", ovPath, logs.all())
		}
		return nil
	})
	if _, err := st.Get(ctx, "svc", "p"); !errors.Is(err, config.ErrNotAllowed) {
		t.Errorf("Get = %v, want ErrNotAllowed", err)
	}
	if _, err := owner.SetACL(ovPath, zk.WorldACL(zk.PermAll), -1); err != nil {
		t.Fatal(err)
	}
	got := r.waitFor(t, "the override, once readable", func(c *configv1.Config) bool { return c.Override.Exists })
	if jsonOf(got.Values) != `{"a":1,"b":2}` || got.Error != "" {
		t.Errorf("after the repair: %v", got)
	}
	if c := logs.count(slog.LevelWarn, ovPath); c != 1 {
		t.Errorf("%d Warns about the refusal; want one for the whole episode", c)
	}
	if c := r.count(); c != 2 {
		t.Errorf("%d configs; want the first and the repaired one", c)
	}
	monotonic(t, r.all())
}

// captureHandler records what a logger logs, for tests of what an
// operator is told.
type captureHandler struct {
	mu      sync.Mutex
	records []string // "LEVEL msg attr=value ..."
	levels  []slog.Level
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *captureHandler) WithGroup(string) slog.Handler            { return h }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, b.String())
	h.levels = append(h.levels, r.Level)
	return nil
}

// count is the number of records at level that contain text.
func (h *captureHandler) count(level slog.Level, text string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for i, r := range h.records {
		if h.levels[i] == level && strings.Contains(r, text) {
			n++
		}
	}
	return n
}

func (h *captureHandler) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.records...)
}

// Close while a Subscribe is still reading its first config (ZooKeeper
// does not answer): Subscribe fails with cluster.ErrClosed, as it does after
// Close, not with an error saying ZooKeeper is slow or unreachable; nothing
// is left running.
func TestAttackCloseDuringSubscribe(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, []string{proxy.Addr()}, root, 10*time.Second)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(n)
	proxy.Blackhole()
	defer proxy.Restore()
	errc := make(chan error, 1)
	go func() {
		_, err := n.store.Subscribe(ctx, "svc", "p", r.pid)
		errc <- err
	}()
	zktest.Eventually(t, 5*time.Second, func() error {
		if config.Subscriptions(n.store) != 1 {
			return errors.New("Subscribe has not started")
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.store.Close(short); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Subscribe interrupted by Close = %v, want ErrClosed", err)
	}
	if c := r.count(); c != 0 {
		t.Errorf("%d configs sent by a Subscribe that failed", c)
	}
}

// By design (documented on the package): ZooKeeper's versions start again
// at 0 when a znode is created again, so a DeleteOverride at version 0
// whose reply was lost, sent again after another client deleted nothing
// but created the override again in the window, deletes that new
// override and reports success. The test pins the documented behaviour.
func TestAttackLostDeleteReplyMeetsARecreatedOverride(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	raw := zkc.Connect(t)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"o":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	ovPath := n.store.OverridePath("svc", "p")
	session := n.session.ID()
	proxy.DropFromTarget()
	done := make(chan error, 1)
	go func() { done <- n.store.DeleteOverride(ctx, "svc", "p", 0) }()
	zktest.Eventually(t, 5*time.Second, func() error {
		if ok, _, err := raw.Exists(ovPath); err != nil || ok {
			return fmt.Errorf("override still there (%v)", err)
		}
		return nil
	})
	// Another client, seeing no override, creates one (version 0).
	if _, err := raw.Create(ovPath, mustRecord(t, `{"o":"other"}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("DeleteOverride returned before its reply could arrive: %v", err)
	default:
	}
	proxy.Restore()
	if err := <-done; err != nil {
		t.Errorf("DeleteOverride whose reply was lost = %v", err)
	}
	if n.session.ID() != session {
		t.Errorf("the session changed; this test is about a lost reply on a live session")
	}
	if ok, _, err := raw.Exists(ovPath); err != nil || ok {
		t.Errorf("the override created again in the window: exists %v (%v); the documented behaviour is that the retried delete removed it", ok, err)
	}
}

// ZooKeeper unreachable: Subscribe fails within its ctx with
// cluster.ErrNotConnected and leaves no subscription behind; once
// ZooKeeper is back, a Subscribe works.
func TestAttackSubscribeWhileUnreachable(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	n := newNode(t, []string{proxy.Addr()}, root, 4*time.Second)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	zktest.Eventually(t, 5*time.Second, func() error {
		if n.session.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	r := newRecorder(n)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := n.store.Subscribe(short, "svc", "p", r.pid); !errors.Is(err, cluster.ErrNotConnected) {
		t.Errorf("Subscribe while unreachable = %v, want ErrNotConnected", err)
	}
	if c := config.Subscriptions(n.store); c != 0 {
		t.Errorf("%d subscriptions left by a failed Subscribe", c)
	}
	proxy.Restore()
	if _, err := n.store.Subscribe(ctx, "svc", "p", r.pid); err != nil {
		t.Fatal(err)
	}
	if got := r.waitN(t, 1); jsonOf(got.Values) != `{"a":1}` || r.count() != 1 {
		t.Errorf("after the outage: %v (%d configs)", got, r.count())
	}
}

// Subscribe and cancel, again and again, on a config that does not change
// (an actor per request that follows the config while it lives): every
// subscription left its two watches in go-zookeeper's client, which cannot
// remove one, so the client's memory grew with every Subscribe until the
// znodes next changed. A subscription now takes over the unfired watches
// an ended one left on its znodes: the client holds no more watches than
// subscriptions ever lived at once.
func TestAttackSubscribeCancelLeavesNoWatches(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 0)
	ctx := ctxT(t)
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":1}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	svcPath, ovPath := n.store.ServicePath("svc"), n.store.OverridePath("svc", "p")
	r := newRecorder(n)
	const rounds = 20
	for i := range rounds {
		cancel, err := n.store.Subscribe(ctx, "svc", "p", r.pid)
		if err != nil {
			t.Fatal(err)
		}
		r.waitN(t, i+1)
		cancel()
	}
	conn := n.session.Conn()
	if s, o := config.ClientWatches(conn, svcPath), config.ClientWatches(conn, ovPath); s > 1 || o > 1 {
		t.Errorf("after %d subscriptions, one at a time: go-zookeeper holds %d watches on the record and %d on the override; want at most 1 each", rounds, s, o)
	}
	// The watches taken over still work: a change reaches a subscriber.
	last, err := n.store.Subscribe(ctx, "svc", "p", r.pid)
	if err != nil {
		t.Fatal(err)
	}
	defer last()
	r.waitN(t, rounds+1)
	if _, err := n.store.SetOverride(ctx, "svc", "p", values(t, `{"b":2}`), config.Absent); err != nil {
		t.Fatal(err)
	}
	if got := r.waitN(t, rounds+2); jsonOf(got.Values) != `{"a":1,"b":2}` {
		t.Errorf("after the override was created: %v", got)
	}
	if _, err := n.store.Set(ctx, "svc", values(t, `{"a":3}`), 0); err != nil {
		t.Fatal(err)
	}
	if got := r.waitN(t, rounds+3); jsonOf(got.Values) != `{"a":3,"b":2}` {
		t.Errorf("after the record changed: %v", got)
	}
}
