package zktest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

func TestExpireSession(t *testing.T) {
	server := zktest.Shared(t)
	p := zktest.NewProxy(t, server.Addrs()[0])
	var log sessionLog
	log.arm()
	victim := zktest.Dial(t, []string{p.Addr()}, time.Second, zk.WithEventCallback(log.callback))
	observer := server.Connect(t)
	root := createRoot(t, observer)
	ephemeral := root + "/e"
	if _, err := victim.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", ephemeral, err)
	}
	session := victim.SessionID()

	server.ExpireSession(t, p, session)
	// The server deleted the session's ephemerals before it closed the connection.
	if ok, _, err := observer.Exists(ephemeral); err != nil || ok {
		t.Fatalf("after ExpireSession: exists %s = %v, %v; want false", ephemeral, ok, err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		if victim.State() != zk.StateHasSession || victim.SessionID() == session {
			return fmt.Errorf("victim: state %v, session %x (expired: %x)", victim.State(), victim.SessionID(), session)
		}
		return nil
	})
	sawExpired := false
	for _, s := range log.seen() {
		sawExpired = sawExpired || s == zk.StateExpired
	}
	if !sawExpired {
		t.Fatalf("victim's states %v: want %v among them", log.seen(), zk.StateExpired)
	}
}

// A paused server answers nothing; resumed, it serves again, to the same session.
func TestPauseResume(t *testing.T) {
	c := zktest.Start(t)
	conn := zktest.Dial(t, c.Addrs(), 10*time.Second)
	session := conn.SessionID()

	c.Pause(0)
	if reply, err := c.Srvr(0); err == nil {
		t.Fatalf("a paused server answered srvr: %q", reply)
	}
	c.Resume(0)
	c.WaitServing(t, 0)
	if _, _, err := conn.Exists("/"); err != nil {
		t.Fatalf("exists / after Resume: %v", err)
	}
	if conn.SessionID() != session {
		t.Fatalf("session %x after a short pause, want the same %x", conn.SessionID(), session)
	}

	// A paused server can be killed (SIGKILL does not wait for SIGCONT).
	c.Pause(0)
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		c.Kill(0)
	}()
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatal("Kill of a paused server did not return within 10s")
	}
	if _, err := c.Srvr(0); err == nil {
		t.Fatal("a killed server answered srvr")
	}
}
