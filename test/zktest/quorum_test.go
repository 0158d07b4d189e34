package zktest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// sessionLog records the session states a client passes through, from the moment it is armed.
type sessionLog struct {
	mu     sync.Mutex
	armed  bool
	states []zk.State
}

func (l *sessionLog) callback(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.armed {
		l.states = append(l.states, ev.State)
	}
}

func (l *sessionLog) arm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = true
}

func (l *sessionLog) seen() []zk.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]zk.State(nil), l.states...)
}

// A follower cut off from its quorum goes on answering its client, pings and reads included,
// while the rest of the ensemble expires that client's session.
func TestIsolateQuorumFollowerKeepsServing(t *testing.T) {
	const sessionTimeout = 2 * time.Second
	c := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies())
	leader := c.Leader(t)
	f := c.Follower(t)
	if conf, err := c.FourLetterWord(f, "conf"); err != nil || !strings.Contains(conf, "tickTime=200") || !strings.Contains(conf, "syncLimit=25") {
		t.Fatalf("conf of server %d = %q, %v; want the defaults tickTime=200, syncLimit=25", f, conf, err)
	}
	var majority []string
	for i, addr := range c.Addrs() {
		if i != f {
			majority = append(majority, addr)
		}
	}
	t.Logf("leader %d, isolated follower %d", leader, f)

	var log sessionLog
	victim := zktest.Dial(t, []string{c.Addrs()[f]}, sessionTimeout, zk.WithEventCallback(log.callback))
	observer := zktest.Dial(t, majority, zktest.DefaultSessionTimeout)
	root := createRoot(t, observer)
	ephemeral := root + "/e"
	if _, err := victim.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", ephemeral, err)
	}
	session := victim.SessionID()
	var watch <-chan zk.Event
	zktest.Eventually(t, 10*time.Second, func() error {
		ok, _, w, err := observer.ExistsW(ephemeral)
		if err != nil || !ok {
			return fmt.Errorf("observer: exists %s = %v, %v", ephemeral, ok, err)
		}
		watch = w
		return nil
	})

	log.arm()
	cut := time.Now()
	c.IsolateQuorum(f)
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("observer's watch: %+v, want the ephemeral deleted", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the majority still has the isolated client's ephemeral 15s after the cut")
	}
	elapsed := time.Since(cut)
	t.Logf("the majority expired the session %v after the cut", elapsed)
	if elapsed < sessionTimeout*3/4 {
		t.Fatalf("ephemeral gone %v after the cut, well before the %v session timeout: not an expiry", elapsed, sessionTimeout)
	}

	// go-zookeeper gives up on a server that sends nothing for 2/3 of the session timeout, so a
	// client still connected now has had ping replies from the isolated follower all along.
	if states := log.seen(); len(states) > 0 {
		t.Fatalf("the isolated follower's client went through %v before the majority expired its session", states)
	}
	if got := victim.State(); got != zk.StateHasSession || victim.SessionID() != session {
		t.Fatalf("victim: state %v session %x, want still %v with session %x", got, victim.SessionID(), zk.StateHasSession, session)
	}
	// Its reads are served, stale: the follower never heard of the expiry.
	if ok, _, err := victim.Exists(ephemeral); err != nil || !ok {
		t.Fatalf("victim: exists %s = %v, %v; want the isolated follower's stale true", ephemeral, ok, err)
	}
	if reply, err := c.Srvr(f); err != nil || !strings.Contains(reply, "Mode: follower") {
		t.Fatalf("isolated follower: Srvr = %q, %v; want Mode: follower", reply, err)
	}

	c.HealQuorum(f)
	c.WaitServing(t, f)
	zktest.Eventually(t, 30*time.Second, func() error {
		if victim.State() != zk.StateHasSession || victim.SessionID() == session {
			return fmt.Errorf("victim: state %v, session %x (old %x)", victim.State(), victim.SessionID(), session)
		}
		return nil
	})
	if ok, _, err := victim.Exists(ephemeral); err != nil || ok {
		t.Fatalf("victim after the heal: exists %s = %v, %v; want false", ephemeral, ok, err)
	}
	sawExpired := false
	for _, s := range log.seen() {
		sawExpired = sawExpired || s == zk.StateExpired
	}
	if !sawExpired {
		t.Fatalf("victim's states after the heal %v: want %v among them", log.seen(), zk.StateExpired)
	}
}

// The options reach the servers' configuration.
func TestEnsembleOptions(t *testing.T) {
	c := zktest.StartEnsemble(t, 3, zktest.WithTickTime(300*time.Millisecond), zktest.WithSyncLimit(7))
	for i := range c.Len() {
		conf, err := c.FourLetterWord(i, "conf")
		if err != nil {
			t.Fatalf("conf of server %d: %v", i, err)
		}
		for _, want := range []string{"tickTime=300", "syncLimit=7", "minSessionTimeout=600"} {
			if !strings.Contains(conf, want) {
				t.Fatalf("conf of server %d has no %q:\n%s", i, want, conf)
			}
		}
	}
}

// An isolated leader loses its quorum: the others elect a leader among themselves and go on
// writing, and the old leader rejoins as a follower once healed.
func TestIsolateQuorumLeader(t *testing.T) {
	c := zktest.StartEnsemble(t, 3, zktest.WithQuorumProxies(), zktest.WithSyncLimit(10))
	old := c.Leader(t)
	var majority []string
	var others []int
	for i, addr := range c.Addrs() {
		if i != old {
			majority = append(majority, addr)
			others = append(others, i)
		}
	}
	conn := zktest.Dial(t, majority, zktest.DefaultSessionTimeout)
	root := createRoot(t, conn)

	cut := time.Now()
	c.IsolateQuorum(old)
	zktest.Eventually(t, 30*time.Second, func() error {
		for _, i := range others {
			if reply, err := c.Srvr(i); err == nil && strings.Contains(reply, "Mode: leader") {
				return nil
			}
		}
		return fmt.Errorf("neither server %v leads", others)
	})
	t.Logf("a new leader %v after isolating leader %d", time.Since(cut), old)
	zktest.Eventually(t, 30*time.Second, func() error {
		_, err := conn.Create(root+"/written", nil, 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
	// It stops serving once it has missed its followers for syncLimit ticks.
	zktest.Eventually(t, 10*time.Second, func() error {
		if reply, err := c.Srvr(old); err == nil && strings.Contains(reply, "Mode:") {
			return fmt.Errorf("the isolated old leader serves: %q", reply)
		}
		return nil
	})

	c.HealQuorum(old)
	c.WaitServing(t, old)
	if reply, err := c.Srvr(old); err != nil || !strings.Contains(reply, "Mode: follower") {
		t.Fatalf("the old leader after the heal: Srvr = %q, %v; want Mode: follower", reply, err)
	}
}
