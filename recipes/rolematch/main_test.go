package rolematch_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	"github.com/zkactor/zkactor/recipes/rolematch"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// member is one in-process node with role matching: its own actor system,
// session, registry and elections (test/testnode).
type member struct {
	*testnode.Node
	name  string
	roles *rolematch.Roles
}

func newMember(t testing.TB, name string, servers []string, root string, timeout time.Duration) *member {
	t.Helper()
	n := testnode.New(t, testnode.Options{Servers: servers, Root: root, SessionTimeout: timeout})
	m := &member{Node: n, name: name, roles: rolematch.New(n.System, n.Registry, n.Elections, rolematch.Options{Logger: testnode.Logger()})}
	t.Cleanup(func() { // before the node stops (cleanups run last first)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.roles.Close(ctx)
	})
	return m
}

// journal records every holding in the test process: which member's
// holder ran which role with which epoch, from when to when (monotonic
// times), and what it received first.
type journal struct {
	mu    sync.Mutex
	holds []*holdRecord
}

type holdRecord struct {
	member string
	pid    *actor.PID
	role   string
	epoch  int64
	spec   string
	start  time.Time // the Assigned message
	stop   time.Time // Stopping
	first  any       // the first message after Started
}

func (j *journal) props(member string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		rec := &holdRecord{member: member}
		return actor.ReceiveFunc(func(c actor.Context) {
			j.mu.Lock()
			defer j.mu.Unlock()
			switch m := c.Message().(type) {
			case *actor.Started:
				rec.pid = c.Self()
			case *actor.Stopping:
				if !rec.start.IsZero() {
					rec.stop = time.Now()
				}
			case *actor.Stopped, *actor.Restarting:
			case *rolematchv1.Assigned:
				if rec.first == nil {
					rec.first = m
					rec.role, rec.epoch, rec.spec = m.Role, m.Epoch, string(m.GetData())
					rec.start = time.Now()
					j.holds = append(j.holds, rec)
				}
			default:
				if rec.first == nil {
					rec.first = m
				}
			}
		})
	})
}

// running returns copies of the holdings that have started and not stopped.
func (j *journal) running() []holdRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []holdRecord
	for _, r := range j.holds {
		if r.stop.IsZero() {
			out = append(out, *r)
		}
	}
	return out
}

func (j *journal) all() []holdRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]holdRecord, len(j.holds))
	for i, r := range j.holds {
		out[i] = *r
	}
	return out
}

// holder returns the one running holding of role, if exactly one runs.
func (j *journal) holder(role string) (holdRecord, error) {
	var got []holdRecord
	for _, r := range j.running() {
		if r.role == role {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		return holdRecord{}, fmt.Errorf("%d holders of %s running, want 1", len(got), role)
	}
	return got[0], nil
}

// noOverlap checks the first invariant: no two holdings of one role ran
// at the same time.
func (j *journal) noOverlap(t testing.TB) {
	t.Helper()
	hs := j.all()
	for i := range hs {
		for k := i + 1; k < len(hs); k++ {
			a, b := hs[i], hs[k]
			if a.role != b.role {
				continue
			}
			aEnd, bEnd := a.stop, b.stop
			if aEnd.IsZero() {
				aEnd = time.Now()
			}
			if bEnd.IsZero() {
				bEnd = time.Now()
			}
			if a.start.Before(bEnd) && b.start.Before(aEnd) {
				t.Errorf("two holders of %s: %s (epoch %d) %v–%v and %s (epoch %d) %v–%v", a.role,
					a.member, a.epoch, a.start.Format("15:04:05.000"), a.stop.Format("15:04:05.000"),
					b.member, b.epoch, b.start.Format("15:04:05.000"), b.stop.Format("15:04:05.000"))
			}
		}
	}
}

// allHeld waits until every role in roles has exactly one running holder,
// and Holders (read from ZooKeeper by m) agrees with the journal: same
// PID and epoch per role, nothing else assigned.
func (j *journal) allHeld(t testing.TB, m *member, set string, roles []string, within time.Duration) map[string]holdRecord {
	t.Helper()
	var got map[string]holdRecord
	zktest.Eventually(t, within, func() error {
		got = map[string]holdRecord{}
		for _, role := range roles {
			h, err := j.holder(role)
			if err != nil {
				return err
			}
			got[role] = h
		}
		if n := len(j.running()); n != len(roles) {
			return fmt.Errorf("%d holders running, want %d", n, len(roles))
		}
		hs, err := m.roles.Holders(context.Background(), set)
		if err != nil {
			return err
		}
		if len(hs) != len(roles) {
			return fmt.Errorf("Holders has %d assignments, want %d", len(hs), len(roles))
		}
		for _, h := range hs {
			r, ok := got[h.Role]
			if !ok || h.PID == nil || !h.PID.Equal(r.pid) || h.Epoch != r.epoch {
				return fmt.Errorf("Holders says %s is held by %v epoch %d; the journal: %v epoch %d", h.Role, h.PID, h.Epoch, r.pid, r.epoch)
			}
		}
		return nil
	})
	return got
}

func roleNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func post(t testing.TB, m *member, set string, names ...string) {
	t.Helper()
	roles := make([]rolematch.Role, len(names))
	for i, n := range names {
		roles[i] = rolematch.Role{Name: n, Data: []byte("spec of " + n)}
	}
	if err := m.roles.Post(ctxT(t), set, roles...); err != nil {
		t.Fatal(err)
	}
}

func apply(t testing.TB, m *member, set string, limit int, j *journal) *rolematch.Applicant {
	t.Helper()
	a, err := m.roles.Apply(ctxT(t), set, limit, j.props(m.name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
