package zkwatch

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper's wire format (jute): big-endian integers; a string or a
// buffer is its int32 length and its bytes (-1 for null); a bool is one
// byte; a vector is its int32 count and its items. Every packet is
// prefixed by its int32 length.

// Opcodes and special xids of the requests this client makes.
const (
	opGetData       int32 = 4
	opExists        int32 = 3
	opPing          int32 = 11
	opGetChildren2  int32 = 12
	opAuth          int32 = 100
	opAddWatch      int32 = 106
	opRemoveWatches int32 = 18
	opCloseSession  int32 = -11

	xidNotification int32 = -1
	xidPing         int32 = -2
	xidAuth         int32 = -4
)

// addWatchModePersistentRecursive is AddWatchMode.PERSISTENT_RECURSIVE.
const addWatchModePersistentRecursive int32 = 1

// watcherTypeAny is WatcherType.Any of removeWatches: every watch of this
// connection on the path, whatever its mode (the only type that removes
// a persistent watch before ZooKeeper 3.9, and still accepted after).
const watcherTypeAny int32 = 3

// maxPacket bounds a packet's length. The server's jute.maxbuffer is
// about 1 MiB; a longer length is a corrupt stream, not a reply.
const maxPacket = 4 << 20

// errMalformed is a packet that does not decode: the connection is
// dropped (a gap), never trusted further.
var errMalformed = errors.New("zkwatch: malformed packet")

// encoder appends jute values to a packet.
type encoder struct{ b []byte }

func (e *encoder) int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }
func (e *encoder) int64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) buffer(v []byte) {
	if v == nil {
		e.int32(-1)
		return
	}
	e.int32(int32(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) string(v string) {
	e.int32(int32(len(v)))
	e.b = append(e.b, v...)
}

// packet returns the bytes with their length prefix.
func (e *encoder) packet() []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(e.b)), uint32(len(e.b)))
	return append(out, e.b...)
}

// decoder reads jute values; the first failure sticks (err), and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errMalformed
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.take(4)
	if v == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(v))
}

func (d *decoder) int64() int64 {
	v := d.take(8)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (d *decoder) bool() bool {
	v := d.take(1)
	return v != nil && v[0] != 0
}

func (d *decoder) buffer() []byte {
	n := d.int32()
	if n == -1 || d.err != nil {
		return nil
	}
	v := d.take(int(n))
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

func (d *decoder) string() string { return string(d.buffer()) }

func (d *decoder) stat() *zk.Stat {
	st := &zk.Stat{
		Czxid: d.int64(), Mzxid: d.int64(), Ctime: d.int64(), Mtime: d.int64(),
		Version: d.int32(), Cversion: d.int32(), Aversion: d.int32(),
		EphemeralOwner: d.int64(), DataLength: d.int32(), NumChildren: d.int32(),
		Pzxid: d.int64(),
	}
	if d.err != nil {
		return nil
	}
	return st
}

func (d *decoder) strings() []string {
	n := d.int32()
	if d.err != nil || n == -1 {
		return nil
	}
	// Each string takes at least its 4-byte length: a count beyond that
	// is a corrupt packet, not a reason to allocate.
	if n < 0 || int(n) > len(d.b)/4 {
		d.err = errMalformed
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.string())
	}
	return out
}

// request encodes one request: the header {xid, opcode} and its body.
func request(xid, op int32, body func(*encoder)) []byte {
	e := &encoder{}
	e.int32(xid)
	e.int32(op)
	if body != nil {
		body(e)
	}
	return e.packet()
}

// connectRequest is the handshake: protocol version 0, the last zxid this
// client has seen (a server that is behind it refuses the session), the
// requested timeout, session id 0 and a zero password (a fresh session),
// and readOnly false.
func connectRequest(lastZxid int64, timeoutMs int32) []byte {
	e := &encoder{}
	e.int32(0)
	e.int64(lastZxid)
	e.int32(timeoutMs)
	e.int64(0)
	e.buffer(make([]byte, 16))
	e.bool(false)
	return e.packet()
}

// connectResponse is the server's answer to the handshake. A timeout of 0
// or less means the server refused the session.
type connectResponse struct {
	timeoutMs int32
	sessionID int64
}

func decodeConnectResponse(b []byte) (connectResponse, error) {
	d := &decoder{b: b}
	_ = d.int32() // protocol version
	r := connectResponse{timeoutMs: d.int32(), sessionID: d.int64()}
	_ = d.buffer() // password: a fresh session per connection never needs it
	// A readOnly flag may follow; nothing else may be short.
	if d.err != nil {
		return connectResponse{}, fmt.Errorf("connect response: %w", d.err)
	}
	return r, nil
}

// errorForCode maps a reply header's error code to go-zookeeper's errors,
// so that callers can use errors.Is(err, zk.ErrNoNode) and the like.
func errorForCode(code int32) error {
	switch code {
	case 0:
		return nil
	case -4:
		return zk.ErrConnectionClosed
	case -6:
		return ErrUnimplemented
	case -8:
		return zk.ErrBadArguments
	case -100:
		return zk.ErrAPIError
	case -101:
		return zk.ErrNoNode
	case -102:
		return zk.ErrNoAuth
	case -103:
		return zk.ErrBadVersion
	case -108:
		return zk.ErrNoChildrenForEphemerals
	case -110:
		return zk.ErrNodeExists
	case -111:
		return zk.ErrNotEmpty
	case -112:
		return zk.ErrSessionExpired
	case -114:
		return zk.ErrInvalidACL
	case -115:
		return zk.ErrAuthFailed
	case -116:
		return zk.ErrClosing
	case -117:
		return zk.ErrNothing
	case -118:
		return zk.ErrSessionMoved
	case -121:
		return ErrNoWatcher
	case -123:
		return zk.ErrReconfigDisabled
	}
	return fmt.Errorf("zk: error code %d", code)
}
