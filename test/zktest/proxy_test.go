package zktest_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

func TestProxyCutAndRestoreKeepSession(t *testing.T) {
	server := zktest.Shared(t)
	proxies, addrs := zktest.Proxies(t, server)
	p := proxies[0]
	conn := zktest.Dial(t, addrs, 5*time.Second)
	root := createRoot(t, conn)
	ephemeral := root + "/e"
	if _, err := conn.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", ephemeral, err)
	}
	session := conn.SessionID()
	if p.Conns() != 1 {
		t.Fatalf("Conns = %d, want 1", p.Conns())
	}

	p.Cut()
	if p.Conns() != 0 {
		t.Fatalf("after Cut: Conns = %d, want 0", p.Conns())
	}
	waitFor(t, 5*time.Second, "client notices the cut", func() bool { return conn.State() != zk.StateHasSession })
	if _, _, err := conn.Get(ephemeral); err == nil {
		t.Fatal("get through a cut proxy succeeded")
	}

	p.Restore()
	waitFor(t, 5*time.Second, "client reconnects", func() bool { return conn.State() == zk.StateHasSession })
	if got := conn.SessionID(); got != session {
		t.Fatalf("session %x after Restore, want the same %x", got, session)
	}
	if ok, _, err := conn.Exists(ephemeral); err != nil || !ok {
		t.Fatalf("ephemeral after reconnect: exists = %v, %v", ok, err)
	}
}

func TestProxyBlackholeExpiresSession(t *testing.T) {
	server := zktest.Shared(t)
	p := zktest.NewProxy(t, server.Addrs()[0])
	victim := zktest.Dial(t, []string{p.Addr()}, time.Second)
	observer := server.Connect(t)
	root := createRoot(t, observer)
	ephemeral := root + "/e"
	if _, err := victim.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", ephemeral, err)
	}
	session := victim.SessionID()
	ok, _, watch, err := observer.ExistsW(ephemeral)
	if err != nil || !ok {
		t.Fatalf("exists %s = %v, %v", ephemeral, ok, err)
	}

	cut := time.Now()
	p.Blackhole()
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("watch: %+v, want the ephemeral deleted", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ephemeral still there 10s into a partition longer than the 1s session timeout")
	}
	elapsed := time.Since(cut)
	t.Logf("ephemeral gone %v after the partition began", elapsed)
	if elapsed < 900*time.Millisecond {
		t.Fatalf("ephemeral gone after %v, before the 1s session timeout: the proxy did not just go silent", elapsed)
	}
	if p.Conns() == 0 {
		t.Fatal("Blackhole dropped the connection instead of silencing it")
	}

	p.Restore()
	waitFor(t, 10*time.Second, "a new session after the expiry", func() bool {
		return victim.State() == zk.StateHasSession && victim.SessionID() != session
	})
}

func TestProxyRetarget(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	p := zktest.NewProxy(t, dead)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read through a proxy to a dead target: %v, want EOF", err)
	}

	p.Retarget(zktest.Shared(t).Addrs()[0])
	conn := zktest.Dial(t, []string{p.Addr()}, 5*time.Second)
	if _, _, err := conn.Exists("/"); err != nil {
		t.Fatalf("exists / through the retargeted proxy: %v", err)
	}
}
