package zkwatch

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// Attack review of the client: tests that failed on the weakness they
// name (or, where noted, prove that a suspected one is not there).

// fakeServer accepts connections, answers each handshake with a session
// of timeoutMs, then runs after(conn) and closes the connection. It
// records when it accepted each connection.
type fakeServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	accepted []time.Time
}

func startFakeServer(t *testing.T, timeoutMs int32, after func(net.Conn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln}
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, time.Now())
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				if _, err := readPacket(nc); err != nil { // the connect request
					return
				}
				e := &encoder{}
				e.int32(0)
				e.int32(timeoutMs)
				e.int64(int64(i + 1))
				e.buffer(make([]byte, 16))
				if _, err := nc.Write(e.packet()); err != nil {
					return
				}
				after(nc)
			}()
		}
	}()
	return s
}

func (s *fakeServer) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.accepted...)
}

// takeKind waits for the next item of kind k, skipping others.
func takeKind(t *testing.T, c *Conn, pending *[]Item, k Kind) Item {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		for len(*pending) > 0 {
			it := (*pending)[0]
			*pending = (*pending)[1:]
			if it.Kind == k {
				return it
			}
		}
		select {
		case <-c.Wake():
			*pending = c.Take()
		case <-deadline.C:
			t.Fatalf("no item of kind %d within 20s", k)
		}
	}
}

// A server that grants a session and drops the connection at once (or
// sends what does not decode, or a reply too long for maxPacket, as a
// listing of a huge directory would): each such connection used to count
// as "served", which reset the backoff and dialed again at once, so the
// Conn looped as fast as the server answered, creating and closing a
// session (a write on the ensemble) each time. A connection that lasted
// less than maxBackoff now counts as a failed attempt. (This asserts a
// lower bound that the Conn's own timers enforce, not a speed: a slow
// machine only makes the gaps longer.)
func TestAttackConnectionDroppedAtOnceBacksOff(t *testing.T) {
	srv := startFakeServer(t, 2000, func(nc net.Conn) {})
	c, err := Dial(Config{Servers: []string{srv.ln.Addr().String()}, SessionTimeout: 2 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pending []Item
	const conns = 5
	for range conns {
		takeKind(t, c, &pending, Connected)
		takeKind(t, c, &pending, Gap)
	}
	at := srv.times()
	// Backoffs of minBackoff, 2×, 4×, … between the connections.
	want := time.Duration(0)
	for i := range conns - 1 {
		want += min(minBackoff<<i, maxBackoff)
	}
	if got := at[conns-1].Sub(at[0]); got < want {
		t.Errorf("%d connections that each ended at once, in %v: no backoff between them (want at least %v)", conns, got, want)
	}
}

// A server that stalls (SIGSTOP, a long GC) while the Conn is connected:
// the read timeout ends the connection (a gap, not a hang), and once the
// server runs again the Conn connects again and serves requests.
func TestAttackStalledServerIsAGap(t *testing.T) {
	zkc := zktest.Start(t)
	c, err := Dial(Config{Servers: zkc.Addrs(), SessionTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pending []Item
	gen := takeKind(t, c, &pending, Connected).Gen
	zkc.Pause(0)
	if it := takeKind(t, c, &pending, Gap); it.Gen != gen {
		t.Fatalf("gap of gen %d, want %d", it.Gen, gen)
	}
	zkc.Resume(0)
	again := takeKind(t, c, &pending, Connected).Gen
	xid, err := c.Exists(again, "/")
	if err != nil {
		t.Fatal(err)
	}
	if it := takeKind(t, c, &pending, Reply); it.Xid != xid || it.Err != nil || it.Stat == nil {
		t.Fatalf("exists / after the stall: %+v", it)
	}
}

// Close at every stage of a connection (dialing, in the handshake, just
// connected, with requests on the wire): it returns, ends the goroutines
// (TestMain's leak check) and races nothing (-race).
func TestAttackCloseRacingTheConnection(t *testing.T) {
	zkc := zktest.Shared(t)
	for i := range 30 {
		c, err := Dial(Config{Servers: zkc.Addrs(), SessionTimeout: 2 * time.Second, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 {
			var pending []Item
			gen := takeKind(t, c, &pending, Connected).Gen
			if i%3 == 2 {
				for range 10 {
					if _, err := c.GetChildren(gen, "/"); err != nil && !errors.Is(err, ErrStale) {
						t.Fatal(err)
					}
				}
			}
		}
		c.Close()
		if _, err := c.Exists(1, "/"); !errors.Is(err, ErrClosed) {
			t.Fatalf("a request after Close: %v, want ErrClosed", err)
		}
	}
}

// A watch removed with RemoveWatch sends no more events: the creation of
// a node under it is not reported, while one under a watch that stays
// is (after it, in wire order, so its arrival proves the first never
// will).
func TestAttackRemoveWatch(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{"/t", root, root + "/gone", root + "/kept"} {
		if _, err := raw.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	c, err := Dial(Config{Servers: zkc.Addrs(), SessionTimeout: 2 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pending []Item
	gen := takeKind(t, c, &pending, Connected).Gen
	for _, p := range []string{root + "/gone", root + "/kept"} {
		xid, err := c.AddWatch(gen, p)
		if err != nil {
			t.Fatal(err)
		}
		if it := takeKind(t, c, &pending, Reply); it.Xid != xid || it.Err != nil {
			t.Fatalf("addWatch %s: %+v", p, it)
		}
	}
	xid, err := c.RemoveWatch(gen, root+"/gone")
	if err != nil {
		t.Fatal(err)
	}
	if it := takeKind(t, c, &pending, Reply); it.Xid != xid || it.Err != nil {
		t.Fatalf("removeWatch: %+v", it)
	}
	for _, p := range []string{root + "/gone/a", root + "/kept/a"} {
		if _, err := raw.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	if it := takeKind(t, c, &pending, Event); it.Path != root+"/kept/a" {
		t.Errorf("event %s %s, want only the creation of %s/kept/a", it.Type, it.Path, root)
	}
}

// A server given without a port is dialed at ZooKeeper's default one, as
// go-zookeeper does with the same list (the registry's session, which a
// subscription dials again): before, "zk1" worked for the registry and
// failed here on every attempt ("missing port in address"), so every
// Subscribe timed out.
func TestAttackServerWithoutPortIsAtTheDefaultPort(t *testing.T) {
	c, err := Dial(Config{Servers: []string{"127.0.0.1", "127.0.0.1:2182"}, SessionTimeout: time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := append([]string(nil), c.servers...)
	slices.Sort(got)
	if want := []string{"127.0.0.1:2181", "127.0.0.1:2182"}; !slices.Equal(got, want) {
		t.Errorf("servers %v, want %v", got, want)
	}
}

// A packet that does not decode drops the connection, and leaves nothing
// behind: before, its zxid was taken as seen before the packet was
// checked, and the next handshake sent it, so a broken server's
// garbage (a zxid far ahead) made every real server refuse the client
// for good.
func TestAttackMalformedPacketLeavesNoZxid(t *testing.T) {
	c := newTestConn()
	c.pending[1] = opGetData
	c.lastZxid = 7
	for _, buf := range [][]byte{
		header(9, 1<<62, 0).b,                                   // a reply to no request
		append(header(1, 1<<62, 0).b, 1, 2),                     // a reply cut short
		append(header(xidNotification, 1<<62, 0).b, 0, 0, 0, 1), // an event cut short
	} {
		if err := c.handle(buf, 1); err == nil {
			t.Fatalf("handle accepted %x", buf)
		}
	}
	if c.lastZxid != 7 {
		t.Errorf("last zxid %#x after packets that did not decode, want 7", c.lastZxid)
	}
}

// gate forwards connections to a target once opened, and before that
// closes them at once; it counts the connections it forwarded.
type gate struct {
	ln        net.Listener
	wg        sync.WaitGroup
	open      atomic.Bool
	forwarded atomic.Int64
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		g.wg.Wait()
	})
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				_ = nc.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = nc.Close()
				continue
			}
			g.forwarded.Add(1)
			mu.Lock()
			conns = append(conns, nc, up)
			mu.Unlock()
			g.wg.Add(2)
			go func() { defer g.wg.Done(); _, _ = io.Copy(up, nc); _ = up.Close() }()
			go func() { defer g.wg.Done(); _, _ = io.Copy(nc, up); _ = nc.Close() }()
		}
	}()
	return g
}

// A reconnect that lands on a server behind what the Conn has seen (here
// another standalone server, whose history is shorter; in an ensemble a
// lagging server) is refused by that server, since the handshake carries
// the last zxid seen, and the Conn moves on: it is next connected to a
// server that is not behind, never to the one that is. (Within one
// ensemble a fresh session is a barrier too: a server answers the
// handshake only once it has applied the session's creation, which comes
// after everything the client saw.)
func TestAttackServerBehindRefusesAndTheConnMovesOn(t *testing.T) {
	ahead, behind := zktest.Start(t), zktest.Start(t)
	raw := ahead.Connect(t)
	for i := range 20 {
		if _, err := raw.Create(fmt.Sprintf("/n%d", i), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	pa := zktest.NewProxy(t, ahead.Addrs()[0])
	gb := startGate(t, behind.Addrs()[0])
	c, err := Dial(Config{Servers: []string{pa.Addr(), gb.ln.Addr().String()}, SessionTimeout: 2 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pending []Item
	gen := takeKind(t, c, &pending, Connected).Gen
	if got := c.Server(); got != pa.Addr() {
		t.Fatalf("connected to %s, want %s (the other is closed)", got, pa.Addr())
	}
	xid, err := c.Exists(gen, "/n19")
	if err != nil {
		t.Fatal(err)
	}
	if it := takeKind(t, c, &pending, Reply); it.Xid != xid || it.Err != nil || it.Zxid < it.Stat.Czxid {
		t.Fatalf("exists: %+v", it)
	}

	gb.open.Store(true)
	pa.Cut()
	takeKind(t, c, &pending, Gap)
	zktest.Eventually(t, 20*time.Second, func() error {
		if n := gb.forwarded.Load(); n < 2 {
			return fmt.Errorf("%d handshakes with the server behind, want 2", n)
		}
		return nil
	})
	pa.Restore()
	takeKind(t, c, &pending, Connected)
	if got := c.Server(); got != pa.Addr() {
		t.Errorf("connected to %s after the cut, want %s: the server behind accepted the client", got, pa.Addr())
	}
}

// Close while the writer is blocked in a write to a server that reads
// nothing (stalled, its buffers full): it returned only when the write
// deadline, two thirds of the session timeout (40 s here), ran out, so
// a node's shutdown hung that long. Close now cuts the write short.
func TestAttackCloseCutsABlockedWriteShort(t *testing.T) {
	stalled := make(chan struct{})
	srv := startFakeServer(t, 60000, func(nc net.Conn) { <-stalled })
	t.Cleanup(func() { close(stalled) }) // before the server's own cleanup
	c, err := Dial(Config{Servers: []string{srv.ln.Addr().String()}, SessionTimeout: time.Minute, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var pending []Item
	gen := takeKind(t, c, &pending, Connected).Gen
	// More bytes than the loopback buffers hold: the writer takes the
	// request and blocks writing it.
	if _, err := c.GetData(gen, "/"+strings.Repeat("x", 32<<20)); err != nil {
		t.Fatal(err)
	}
	zktest.Eventually(t, 10*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.out) > 0 {
			return errors.New("the writer has not taken the requests")
		}
		return nil
	})
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close blocked behind a write to a stalled server for 20s")
		<-closed
	}
}

// testLogger is testnode.Logger, which this package's internal tests
// cannot import (testnode imports cluster, which imports this package).
func testLogger() *slog.Logger {
	if os.Getenv("ZKACTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
