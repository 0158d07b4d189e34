package zktest_test

import (
	"bytes"
	"errors"
	"fmt"
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

// DropToTarget: the server hears nothing from the client, so it expires the session, while
// what the server sends (here a watch event) still reaches the client.
func TestProxyDropToTarget(t *testing.T) {
	server := zktest.Shared(t)
	p := zktest.NewProxy(t, server.Addrs()[0])
	victim := zktest.Dial(t, []string{p.Addr()}, 2*time.Second)
	observer := server.Connect(t)
	root := createRoot(t, observer)
	ephemeral, watched := root+"/e", root+"/w"
	if _, err := victim.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", ephemeral, err)
	}
	ok, _, victimWatch, err := victim.ExistsW(watched)
	if err != nil || ok {
		t.Fatalf("victim: exists %s = %v, %v", watched, ok, err)
	}
	_, _, ephemeralWatch, err := observer.ExistsW(ephemeral)
	if err != nil {
		t.Fatal(err)
	}
	session := victim.SessionID()

	cut := time.Now()
	p.DropToTarget()
	if _, err := observer.Create(watched, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", watched, err)
	}
	select {
	case ev := <-victimWatch:
		if ev.Type != zk.EventNodeCreated {
			t.Fatalf("victim's watch: %+v, want %s created", ev, watched)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's watch event did not reach the client through DropToTarget")
	}
	select {
	case ev := <-ephemeralWatch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("observer's watch: %+v, want the ephemeral deleted", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server still has the ephemeral 10s into a one-way partition longer than the 2s session")
	}
	if elapsed := time.Since(cut); elapsed < 1500*time.Millisecond {
		t.Fatalf("ephemeral gone %v after the cut, before the 2s session timeout", elapsed)
	}
	if p.Conns() == 0 {
		t.Fatal("DropToTarget closed the connection")
	}

	p.Restore()
	zktest.Eventually(t, 10*time.Second, func() error {
		if victim.State() != zk.StateHasSession || victim.SessionID() == session {
			return fmt.Errorf("victim: state %v, session %x (expired: %x)", victim.State(), victim.SessionID(), session)
		}
		return nil
	})
}

// DropFromTarget: the client's request reaches the server and is executed, but its reply is
// lost; the client gives up on the connection.
func TestProxyDropFromTarget(t *testing.T) {
	server := zktest.Shared(t)
	p := zktest.NewProxy(t, server.Addrs()[0])
	victim := zktest.Dial(t, []string{p.Addr()}, 2*time.Second)
	observer := server.Connect(t)
	root := createRoot(t, observer)
	ephemeral := root + "/e"
	_, _, created, err := observer.ExistsW(ephemeral)
	if err != nil {
		t.Fatal(err)
	}
	session := victim.SessionID()

	p.DropFromTarget()
	result := make(chan error, 1)
	go func() {
		_, err := victim.Create(ephemeral, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		result <- err
	}()
	select {
	case ev := <-created:
		if ev.Type != zk.EventNodeCreated {
			t.Fatalf("observer's watch: %+v, want %s created", ev, ephemeral)
		}
	case err := <-result:
		t.Fatalf("victim's create returned %v before the server had executed it", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the client's create did not reach the server through DropFromTarget")
	}
	_, stat, err := observer.Get(ephemeral)
	if err != nil || stat.EphemeralOwner != session {
		t.Fatalf("get %s = %+v, %v; want an ephemeral of session %x", ephemeral, stat, err, session)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("victim's create succeeded, but its reply should have been dropped")
		}
		t.Logf("victim's create: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("victim's create still waiting 10s after its reply was dropped")
	}
	if p.Conns() == 0 {
		t.Fatal("DropFromTarget closed the connection")
	}
	p.Restore()
	zktest.Eventually(t, 10*time.Second, func() error {
		if _, _, err := victim.Get(ephemeral); err != nil {
			return err
		}
		return nil
	})
}

// Delay holds every reply back, in order: large replies that span many chunks arrive whole,
// each no sooner than the delay; Delay(0) ends it.
func TestProxyDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	server := zktest.Shared(t)
	p := zktest.NewProxy(t, server.Addrs()[0])
	conn := zktest.Dial(t, []string{p.Addr()}, 5*time.Second)
	root := createRoot(t, conn)
	payloads := make([][]byte, 8)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte('a' + i)}, 200<<10) // several 32 KiB chunks each
		if _, err := conn.Create(fmt.Sprintf("%s/%d", root, i), payloads[i], 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}

	p.Delay(delay)
	start := time.Now()
	errs := make(chan error, len(payloads))
	for i := range payloads {
		go func() {
			data, _, err := conn.Get(fmt.Sprintf("%s/%d", root, i))
			switch {
			case err != nil:
				errs <- err
			case !bytes.Equal(data, payloads[i]):
				errs <- fmt.Errorf("get %d: %d bytes, not the %d written", i, len(data), len(payloads[i]))
			case time.Since(start) < delay:
				errs <- fmt.Errorf("get %d answered after %v, within the %v delay", i, time.Since(start), delay)
			default:
				errs <- nil
			}
		}()
	}
	for range payloads {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("gets through the delaying proxy not answered within 20s")
		}
	}
	t.Logf("%d gets of 200 KiB with a %v delay: %v", len(payloads), delay, time.Since(start))

	p.Delay(0)
	// Replies held back before Delay(0) keep their delay; the ones after it do not.
	zktest.Eventually(t, 5*time.Second, func() error {
		begin := time.Now()
		if _, _, err := conn.Exists(root); err != nil {
			return err
		}
		if took := time.Since(begin); took >= delay {
			return fmt.Errorf("exists took %v after Delay(0)", took)
		}
		return nil
	})
}
