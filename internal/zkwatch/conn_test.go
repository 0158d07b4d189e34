package zkwatch_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkutil"
	"github.com/zkactor/zkactor/internal/zkwatch"
	"github.com/zkactor/zkactor/test/testnode"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

func dial(t *testing.T, servers []string, digest string) *zkwatch.Conn {
	t.Helper()
	c, err := zkwatch.Dial(zkwatch.Config{Servers: servers, SessionTimeout: 2 * time.Second, Digest: digest, Logger: testnode.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// stream reads a Conn's items in order.
type stream struct {
	t     *testing.T
	c     *zkwatch.Conn
	items []zkwatch.Item
}

// next returns the next item, waiting up to 20s for it.
func (s *stream) next() zkwatch.Item {
	s.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for len(s.items) == 0 {
		select {
		case <-s.c.Wake():
			s.items = s.c.Take()
		case <-deadline.C:
			s.t.Fatal("no item within 20s")
		}
	}
	it := s.items[0]
	s.items = s.items[1:]
	return it
}

// connected waits for the next Connected item and returns its generation.
func (s *stream) connected() uint64 {
	s.t.Helper()
	for {
		if it := s.next(); it.Kind == zkwatch.Connected {
			return it.Gen
		}
	}
}

func (s *stream) reply(xid int32) zkwatch.Item {
	s.t.Helper()
	it := s.next()
	if it.Kind != zkwatch.Reply || it.Xid != xid {
		s.t.Fatalf("got %s, want the reply to xid %d", show(it), xid)
	}
	return it
}

func show(it zkwatch.Item) string {
	switch it.Kind {
	case zkwatch.Connected:
		return fmt.Sprintf("connected(%d)", it.Gen)
	case zkwatch.Gap:
		return fmt.Sprintf("gap(%d)", it.Gen)
	case zkwatch.Reply:
		return fmt.Sprintf("reply(xid %d, err %v)", it.Xid, it.Err)
	}
	return fmt.Sprintf("event(%s %s)", it.Type, it.Path)
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// The handshake, each request, and the events of a persistent recursive
// watch, all in the order ZooKeeper sent them: a multi's creates and
// deletes come as one event each, in the multi's order, and an event that
// came before a reply is reflected in it.
func TestRequestsAndEventsInWireOrder(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/dir"
	if _, err := zkutil.CreateWithParents(raw, "/", dir+"/a", []byte("A"), 0, acl); err != nil {
		t.Fatal(err)
	}
	c := dial(t, zkc.Addrs(), "")
	s := &stream{t: t, c: c}
	gen := s.connected()

	watch := must(c.AddWatch(gen, dir))(t)
	list := must(c.GetChildren(gen, dir))(t)
	get := must(c.GetData(gen, dir+"/a"))(t)
	missing := must(c.Exists(gen, dir+"/nothing"))(t)
	if it := s.reply(watch); it.Err != nil {
		t.Fatalf("addWatch: %v", it.Err)
	}
	if it := s.reply(list); it.Err != nil || strings.Join(it.Children, ",") != "a" || it.Stat == nil || it.Stat.NumChildren != 1 {
		t.Fatalf("children: %v %v %+v", it.Err, it.Children, it.Stat)
	}
	if it := s.reply(get); it.Err != nil || string(it.Data) != "A" || it.Stat == nil || it.Stat.DataLength != 1 {
		t.Fatalf("get: %v %q %+v", it.Err, it.Data, it.Stat)
	}
	if it := s.reply(missing); !errors.Is(it.Err, zk.ErrNoNode) {
		t.Fatalf("exists of a missing node: %v, want zk.ErrNoNode", it.Err)
	}

	if _, err := raw.Multi(
		&zk.CreateRequest{Path: dir + "/b", Acl: acl},
		&zk.DeleteRequest{Path: dir + "/a", Version: -1},
		&zk.CreateRequest{Path: dir + "/c", Acl: acl},
		&zk.CreateRequest{Path: dir + "/c/deeper", Acl: acl},
		&zk.SetDataRequest{Path: dir + "/b", Data: []byte("B"), Version: -1},
	); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		it := s.next()
		if it.Kind != zkwatch.Event {
			t.Fatalf("got %s, want an event", show(it))
		}
		got = append(got, fmt.Sprintf("%s %s", it.Type, strings.TrimPrefix(it.Path, dir)))
	}
	want := "EventNodeCreated /b,EventNodeDeleted /a,EventNodeCreated /c,EventNodeCreated /c/deeper,EventNodeDataChanged /b"
	if strings.Join(got, ",") != want {
		t.Errorf("events %v, want %s", got, want)
	}
	list = must(c.GetChildren(gen, dir))(t)
	if it := s.reply(list); strings.Join(it.Children, ",") != "b,c" && strings.Join(it.Children, ",") != "c,b" {
		t.Errorf("children after the events: %v, want b and c", it.Children)
	}
	if c.Requests() != 5 || c.Events() != 5 {
		t.Errorf("%d requests and %d events counted, want 5 and 5", c.Requests(), c.Events())
	}
}

// Config.Events keeps only the events it names: the others are counted
// but never queued, and the order of what is kept stays the wire's.
func TestEventsFilter(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	dir := root + "/dir"
	if _, err := zkutil.CreateWithParents(raw, "/", dir+"/a", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	c, err := zkwatch.Dial(zkwatch.Config{Servers: zkc.Addrs(), SessionTimeout: 2 * time.Second, Logger: testnode.Logger(),
		Events: func(typ zk.EventType) bool { return typ == zk.EventNodeDeleted }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &stream{t: t, c: c}
	gen := s.connected()
	if it := s.reply(must(c.AddWatch(gen, dir))(t)); it.Err != nil {
		t.Fatalf("addWatch: %v", it.Err)
	}
	if _, err := raw.Multi(
		&zk.CreateRequest{Path: dir + "/b", Acl: acl},
		&zk.DeleteRequest{Path: dir + "/a", Version: -1},
		&zk.SetDataRequest{Path: dir + "/b", Data: []byte("B"), Version: -1},
		&zk.DeleteRequest{Path: dir + "/b", Version: -1},
	); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		it := s.next()
		got = append(got, fmt.Sprintf("%s %s", it.Type, strings.TrimPrefix(it.Path, dir)))
	}
	if want := "EventNodeDeleted /a,EventNodeDeleted /b"; strings.Join(got, ",") != want {
		t.Errorf("events %v, want %s", got, want)
	}
	// A reply after the events comes next: nothing else was queued.
	list := must(c.GetChildren(gen, dir))(t)
	if it := s.reply(list); it.Err != nil || len(it.Children) != 0 {
		t.Errorf("children: %v %v, want none", it.Err, it.Children)
	}
	if c.Events() != 4 {
		t.Errorf("%d events counted, want 4 (kept or not)", c.Events())
	}
}

// A znode under a digest ACL: refused (zk.ErrNoAuth) without the
// credentials, readable with them.
func TestDigestAuth(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	raw := zkc.Connect(t)
	if err := raw.AddAuth("digest", []byte("owner:secret")); err != nil {
		t.Fatal(err)
	}
	p := root + "/locked"
	if _, err := zkutil.CreateWithParents(raw, "/", p, []byte("x"), 0, zk.DigestACL(zk.PermAll, "owner", "secret")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		digest string
		want   error
	}{{"", zk.ErrNoAuth}, {"someone:else", zk.ErrNoAuth}, {"owner:secret", nil}} {
		c := dial(t, zkc.Addrs(), tc.digest)
		s := &stream{t: t, c: c}
		gen := s.connected()
		it := s.reply(must(c.GetData(gen, p))(t))
		if !errors.Is(it.Err, tc.want) {
			t.Errorf("get as %q: %v, want %v", tc.digest, it.Err, tc.want)
		}
		c.Close()
	}
}

// A restarted server: the connection reports a gap, its requests fail
// as stale, and it connects again with a new generation on which
// requests and the watch (set again) work.
func TestServerRestartIsAGapThenAConnection(t *testing.T) {
	zkc := zktest.Start(t)
	raw := zkc.Connect(t)
	c := dial(t, zkc.Addrs(), "")
	s := &stream{t: t, c: c}
	gen := s.connected()
	s.reply(must(c.AddWatch(gen, "/w"))(t))

	zkc.Kill(0)
	if it := s.next(); it.Kind != zkwatch.Gap || it.Gen != gen {
		t.Fatalf("got %s after the kill, want gap(%d)", show(it), gen)
	}
	if _, err := c.Exists(gen, "/"); !errors.Is(err, zkwatch.ErrStale) {
		t.Errorf("a request on the lost connection: %v, want ErrStale", err)
	}
	zkc.Restart(0)
	again := s.connected()
	if again != gen+1 {
		t.Errorf("generation %d after the restart, want %d", again, gen+1)
	}
	s.reply(must(c.AddWatch(again, "/w"))(t))
	zktest.Eventually(t, 20*time.Second, func() error {
		_, err := raw.Create("/w", nil, 0, zk.WorldACL(zk.PermAll))
		return err
	})
	if it := s.next(); it.Kind != zkwatch.Event || it.Type != zk.EventNodeCreated || it.Path != "/w" {
		t.Errorf("got %s, want the creation of /w", show(it))
	}
}

// Close ends the Conn whatever it is doing: connected, or stuck in a
// handshake with a server that went silent. (TestMain's leak check proves
// that its goroutines ended.)
func TestCloseEndsIt(t *testing.T) {
	zkc := zktest.Shared(t)
	c := dial(t, zkc.Addrs(), "")
	s := &stream{t: t, c: c}
	gen := s.connected()
	c.Close()
	if _, err := c.Exists(gen, "/"); !errors.Is(err, zkwatch.ErrClosed) {
		t.Errorf("a request after Close: %v, want ErrClosed", err)
	}
	c.Close() // idempotent

	proxy := zktest.NewProxy(t, zkc.Addrs()[0])
	proxy.Blackhole()
	silent := dial(t, []string{proxy.Addr()}, "")
	zktest.Eventually(t, 10*time.Second, func() error {
		if proxy.Conns() == 0 {
			return errors.New("no handshake under way")
		}
		return nil
	})
	silent.Close()
}

func TestChrootRefused(t *testing.T) {
	if _, err := zkwatch.Dial(zkwatch.Config{Servers: []string{"127.0.0.1:2181/app"}, SessionTimeout: time.Second}); err == nil || !strings.Contains(err.Error(), "chroot") {
		t.Errorf("Dial with a chroot: %v, want an error that names it", err)
	}
}

// A server that answers the handshake and then sends what is not a
// reply: the Conn drops the connection (a gap) and does not panic.
func TestMalformedReplyIsAGap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	// Each connection gets the next bad packet, after the reply to the
	// client's first request (or at once when nothing is asked).
	bad := [][]byte{
		{0x7f, 0xff, 0xff, 0xff}, // a length beyond any packet
		{0, 0, 0, 3, 1, 2, 3},    // a header cut short
		packet(1, func(b []byte) []byte { // a reply to a request never made
			return binary.BigEndian.AppendUint32(append(b, make([]byte, 12)...), 0)
		}),
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				buf := make([]byte, 4096)
				if _, err := nc.Read(buf); err != nil { // the connect request
					return
				}
				resp := binary.BigEndian.AppendUint32(nil, 0)         // protocol version
				resp = binary.BigEndian.AppendUint32(resp, 2000)      // timeout
				resp = binary.BigEndian.AppendUint64(resp, uint64(i)) // session id
				resp = binary.BigEndian.AppendUint32(resp, 16)
				resp = append(resp, make([]byte, 16)...)
				out := binary.BigEndian.AppendUint32(nil, uint32(len(resp)))
				_, _ = nc.Write(append(out, resp...))
				_, _ = nc.Write(bad[i%len(bad)])
				_, _ = nc.Read(buf) // until the client drops it
			}()
		}
	}()
	c := dial(t, []string{ln.Addr().String()}, "")
	s := &stream{t: t, c: c}
	for range 2 * len(bad) {
		gen := s.connected()
		if it := s.next(); it.Kind != zkwatch.Gap || it.Gen != gen {
			t.Fatalf("got %s, want gap(%d)", show(it), gen)
		}
	}
}

// packet frames a body that starts with xid.
func packet(xid int32, rest func([]byte) []byte) []byte {
	body := rest(binary.BigEndian.AppendUint32(nil, uint32(xid)))
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}
