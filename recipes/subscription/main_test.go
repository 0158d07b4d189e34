package subscription_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/records"
	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
	"github.com/zkactor/zkactor/recipes/subscription"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

type node = testnode.Node

func newNode(t testing.TB, servers []string, root string, timeout time.Duration) *node {
	t.Helper()
	return testnode.New(t, testnode.Options{Servers: servers, Root: root, SessionTimeout: timeout})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// subscriptions starts the subscriptions of n, closed when the test ends
// (before n stops).
func subscriptions(t testing.TB, n *node, opts subscription.Options) *subscription.Subscriptions {
	if opts.Logger == nil {
		opts.Logger = testnode.Logger()
	}
	subs := subscription.New(n.System, n.Registry, opts)
	t.Cleanup(subs.Close)
	return subs
}

// recorder is a subscriber actor: it keeps every message, rebuilds the
// members from them, and notes every breach of the contract (a sequence
// number out of step, a join of a member held, a leave of one not held).
type recorder struct {
	mu       sync.Mutex
	msgs     []any
	at       []time.Time // when each message arrived
	members  map[string]*subv1.Member
	seq      uint64
	sub      uint64
	breaches []string
	signal   chan struct{} // a message arrived

	// The last message's zxid: messages never go back in ZooKeeper's
	// history.
	lastZxid int64
}

// ordered notes a breach of the order: a message whose zxid is below the
// last one's, or a join whose member was created after its message's
// zxid.
func (r *recorder) ordered(zxid int64, join bool, czxid int64) {
	if zxid < r.lastZxid {
		r.breach("a message of zxid %d after one of %d", zxid, r.lastZxid)
	}
	if join && czxid > zxid {
		r.breach("a join of czxid %d in a message of zxid %d", czxid, zxid)
	}
	r.lastZxid = max(r.lastZxid, zxid)
}

func newRecorder(n *node) (*recorder, *actor.PID) {
	r := &recorder{members: map[string]*subv1.Member{}, signal: make(chan struct{}, 1)}
	pid := n.System.Root.Spawn(actor.PropsFromFunc(r.receive))
	return r, pid
}

func (r *recorder) receive(c actor.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sub, seq uint64
	switch m := c.Message().(type) {
	case *subv1.Snapshot:
		sub, seq = m.Subscription, m.Seq
		if r.seq != 0 {
			r.breach("snapshot after %d messages", r.seq)
		}
		r.sub = m.Subscription
		r.lastZxid = m.Zxid
		for i, mem := range m.Members {
			if i > 0 && mem.Czxid < m.Members[i-1].Czxid {
				r.breach("snapshot not in creation order")
			}
			r.members[mem.Id] = mem
		}
	case *subv1.Joined:
		sub, seq = m.Subscription, m.Seq
		if old, ok := r.members[m.Member.Id]; ok {
			r.breach("join of %s (czxid %d) while it is held (czxid %d)", m.Member.Id, m.Member.Czxid, old.Czxid)
		}
		r.members[m.Member.Id] = m.Member
		r.ordered(m.Zxid, true, m.Member.Czxid)
	case *subv1.Left:
		sub, seq = m.Subscription, m.Seq
		if old, ok := r.members[m.Member.Id]; !ok || old.Czxid != m.Member.Czxid {
			r.breach("leave of %s (czxid %d), not held", m.Member.Id, m.Member.Czxid)
		}
		delete(r.members, m.Member.Id)
		r.ordered(m.Zxid, false, m.Member.Czxid)
	default:
		return
	}
	if sub != r.sub {
		r.breach("message of subscription %d, want %d", sub, r.sub)
	}
	if seq != r.seq+1 {
		r.breach("seq %d after %d", seq, r.seq)
	}
	r.seq = seq
	r.msgs = append(r.msgs, c.Message())
	r.at = append(r.at, time.Now())
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// await waits until n messages have arrived and returns when the last did.
func (r *recorder) await(t testing.TB, n int) time.Time {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if len(r.msgs) >= n {
			at := r.at[n-1]
			r.mu.Unlock()
			return at
		}
		r.mu.Unlock()
		select {
		case <-r.signal:
		case <-deadline.C:
			t.Fatalf("%d messages after 20s, want %d", r.count(), n)
		}
	}
}

func (r *recorder) breach(format string, args ...any) {
	r.breaches = append(r.breaches, fmt.Sprintf(format, args...))
}

func (r *recorder) messages() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// held returns the members the receiver holds, id → czxid.
func (r *recorder) held() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for id, m := range r.members {
		out[id] = m.Czxid
	}
	return out
}

// check fails the test if the subscription broke its contract.
func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.breaches {
		t.Error(b)
	}
}

// truth reads the usable registrations under dir with a plain client:
// id → czxid.
func truth(t testing.TB, c *zk.Conn, dir string, decode func([]byte) error) map[string]int64 {
	t.Helper()
	names, _, err := c.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return map[string]int64{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, n := range names {
		data, st, err := c.Get(dir + "/" + n)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if decode(data) == nil {
			out[n] = st.Czxid
		}
	}
	return out
}

func isRegistration(data []byte) error { _, err := records.Registration(data); return err }
func isNode(data []byte) error         { _, err := records.Node(data); return err }

// converges waits until the receiver holds exactly what ZooKeeper has.
func converges(t testing.TB, r *recorder, c *zk.Conn, dir string, decode func([]byte) error) {
	t.Helper()
	zktest.Eventually(t, 20*time.Second, func() error {
		want := truth(t, c, dir, decode)
		got := r.held()
		if !maps.Equal(got, want) {
			return fmt.Errorf("receiver holds %s, ZooKeeper has %s", show(got), show(want))
		}
		return nil
	})
	r.check(t)
}

func show(m map[string]int64) string {
	var parts []string
	for id, cz := range m {
		parts = append(parts, fmt.Sprintf("%s@%d", id, cz))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// kinds summarises messages as "S3 J J L" (snapshot with 3 members, ...).
func kinds(msgs []any) string {
	var parts []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *subv1.Snapshot:
			parts = append(parts, fmt.Sprintf("S%d", len(m.Members)))
		case *subv1.Joined:
			parts = append(parts, "J")
		case *subv1.Left:
			parts = append(parts, "L")
		}
	}
	return strings.Join(parts, " ")
}
