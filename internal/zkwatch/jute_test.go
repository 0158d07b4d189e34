package zkwatch

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"math/rand"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Unit tests of the decoding (no ZooKeeper needed): whatever a server
// sends, handle returns an error or an item, and never panics.

func newTestConn() *Conn {
	return &Conn{log: slog.Default(), wake: make(chan struct{}, 1), pending: map[int32]int32{}}
}

func header(xid int32, zxid int64, code int32) *encoder {
	e := &encoder{}
	e.int32(xid)
	e.int64(zxid)
	e.int32(code)
	return e
}

func TestHandleRefusesWhatDoesNotDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   int32 // the pending request of xid 1
		buf  []byte
	}{
		{"short header", opGetData, []byte{0, 0, 0}},
		{"reply to no request", opGetData, header(9, 1, 0).b},
		{"truncated event", opGetData, append(header(xidNotification, -1, 0).b, 0, 0, 0, 1)},
		{"event path longer than the packet", opGetData, func() []byte {
			e := header(xidNotification, -1, 0)
			e.int32(1)
			e.int32(3)
			e.int32(1000)
			return e.b
		}()},
		{"children count beyond the packet", opGetChildren2, func() []byte {
			e := header(1, 1, 0)
			e.int32(1 << 30)
			return e.b
		}()},
		{"negative string length", opGetChildren2, func() []byte {
			e := header(1, 1, 0)
			e.int32(1)
			e.int32(-7)
			return e.b
		}()},
		{"stat cut short", opExists, append(header(1, 1, 0).b, 1, 2, 3)},
		{"data without its stat", opGetData, func() []byte {
			e := header(1, 1, 0)
			e.buffer([]byte("abc"))
			return e.b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestConn()
			c.pending[1] = tc.op
			if err := c.handle(tc.buf, 1); err == nil {
				t.Errorf("handle accepted it: items %+v", c.items)
			}
		})
	}
}

func TestHandleDecodesRepliesAndEvents(t *testing.T) {
	c := newTestConn()
	c.pending[1], c.pending[2] = opGetChildren2, opGetData
	e := header(1, 40, 0)
	e.int32(2)
	e.string("a")
	e.string("b")
	stat := make([]byte, 68)
	binary.BigEndian.PutUint64(stat, 33) // czxid
	e.b = append(e.b, stat...)
	if err := c.handle(e.b, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.handle(header(2, 41, -101).b, 1); err != nil { // no body with an error
		t.Fatal(err)
	}
	ev := header(xidNotification, -1, 0)
	ev.int32(2)
	ev.int32(3)
	ev.string("/x")
	if err := c.handle(ev.b, 1); err != nil {
		t.Fatal(err)
	}
	if len(c.items) != 3 {
		t.Fatalf("%d items, want 3", len(c.items))
	}
	if it := c.items[0]; it.Xid != 1 || len(it.Children) != 2 || it.Stat.Czxid != 33 || it.Zxid != 40 {
		t.Errorf("children reply %+v", it)
	}
	if it := c.items[1]; !errors.Is(it.Err, zk.ErrNoNode) {
		t.Errorf("error reply %+v, want zk.ErrNoNode", it)
	}
	if it := c.items[2]; it.Kind != Event || it.Type != zk.EventNodeDeleted || it.Path != "/x" {
		t.Errorf("event %+v", it)
	}
	if c.lastZxid != 41 {
		t.Errorf("last zxid %d, want 41", c.lastZxid)
	}
}

// Random packets: handle never panics.
func TestHandleRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 20000 {
		c := newTestConn()
		for xid, op := range []int32{opGetChildren2, opGetData, opExists, opAddWatch} {
			c.pending[int32(xid+1)] = op
		}
		buf := make([]byte, rng.Intn(64))
		rng.Read(buf)
		if len(buf) >= 4 && rng.Intn(2) == 0 {
			binary.BigEndian.PutUint32(buf, uint32(rng.Intn(6)-1)) // a known xid or -1
		}
		_ = c.handle(buf, 1)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(header(1, 1, 0).b)
	f.Add(header(xidNotification, -1, 0).b)
	f.Fuzz(func(t *testing.T, buf []byte) {
		c := newTestConn()
		c.pending[1] = opGetChildren2
		c.pending[2] = opGetData
		c.pending[3] = opExists
		_ = c.handle(buf, 1)
	})
}
