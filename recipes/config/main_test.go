package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// node is one process using the recipe: an actor system, a session and a
// store on it.
type node struct {
	system  *actor.ActorSystem
	session *cluster.Session
	store   *config.Store
}

func newNode(t testing.TB, servers []string, root string, timeout time.Duration) *node {
	t.Helper()
	if timeout == 0 {
		timeout = 4 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	s, err := cluster.Dial(ctx, cluster.Config{Servers: servers, SessionTimeout: timeout, Logger: testnode.Logger()})
	if err != nil {
		system.Shutdown()
		t.Fatalf("dial %v: %v", servers, err)
	}
	st, err := config.NewStore(system, s, config.Options{Root: root, Logger: testnode.Logger()})
	if err != nil {
		s.Close()
		system.Shutdown()
		t.Fatal(err)
	}
	n := &node{system: system, session: s, store: st}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("close store: %v", err)
		}
		s.Close()
		system.Shutdown()
	})
	return n
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// values parses a JSON object, failing the test if it is not one.
func values(t testing.TB, doc string) *structpb.Struct {
	t.Helper()
	v, err := config.ParseJSON([]byte(doc))
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", doc, err)
	}
	return v
}

// jsonOf renders values as compact JSON with sorted keys.
func jsonOf(v *structpb.Struct) string {
	if v == nil {
		return "{}"
	}
	// protojson's output is not stable in whitespace; encoding/json sorts
	// keys and writes no spaces.
	b, err := json.Marshal(v.AsMap())
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// recorder is a subscriber actor that records every Config it receives.
type recorder struct {
	pid *actor.PID

	mu   sync.Mutex
	got  []*configv1.Config
	more chan struct{} // signalled on every message
}

func newRecorder(n *node) *recorder {
	r := &recorder{more: make(chan struct{}, 1)}
	r.pid = n.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*configv1.Config); ok {
			r.mu.Lock()
			r.got = append(r.got, m)
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
		}
	}))
	return r
}

func (r *recorder) all() []*configv1.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*configv1.Config(nil), r.got...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitN waits until the recorder holds n messages and returns the nth.
func (r *recorder) waitN(t testing.TB, n int) *configv1.Config {
	t.Helper()
	var got *configv1.Config
	zktest.Eventually(t, 10*time.Second, func() error {
		all := r.all()
		if len(all) < n {
			return fmt.Errorf("%d configs received, waiting for %d", len(all), n)
		}
		got = all[n-1]
		return nil
	})
	return got
}

// waitFor waits until the last message received satisfies ok.
func (r *recorder) waitFor(t testing.TB, what string, ok func(*configv1.Config) bool) *configv1.Config {
	t.Helper()
	var got *configv1.Config
	zktest.Eventually(t, 15*time.Second, func() error {
		all := r.all()
		if len(all) == 0 || !ok(all[len(all)-1]) {
			var last *configv1.Config
			if len(all) > 0 {
				last = all[len(all)-1]
			}
			return fmt.Errorf("waiting for %s; last config received: %v", what, last)
		}
		got = all[len(all)-1]
		return nil
	})
	return got
}

// monotonic checks that the configs a subscriber received never repeat a
// state and never go back.
func monotonic(t testing.TB, got []*configv1.Config) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if b.Revision <= a.Revision {
			t.Errorf("message %d has revision %d after %d: repeated or stale", i, b.Revision, a.Revision)
		}
		if b.ServiceRecord.Exists && a.ServiceRecord.Exists && b.ServiceRecord.Version < a.ServiceRecord.Version {
			t.Errorf("message %d: service version %d after %d", i, b.ServiceRecord.Version, a.ServiceRecord.Version)
		}
		if b.ServiceRecord.Revision < a.ServiceRecord.Revision || b.Override.Revision < a.Override.Revision {
			t.Errorf("message %d: a part's revision went back: %v after %v", i, b, a)
		}
	}
}
