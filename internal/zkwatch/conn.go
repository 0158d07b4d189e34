package zkwatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Errors of the request methods (GetChildren, GetData, Exists, AddWatch).
var (
	// ErrStale: the request was for a connection that is gone (or not up
	// yet); a Gap or a Connected item is on its way.
	ErrStale = errors.New("zkwatch: not the live connection")
	// ErrClosed: the Conn is closed.
	ErrClosed = errors.New("zkwatch: closed")
	// ErrUnimplemented: the server does not know the request (addWatch
	// needs ZooKeeper 3.6 or later).
	ErrUnimplemented = errors.New("zk: server does not implement this request (addWatch needs ZooKeeper 3.6+)")
	// ErrNoWatcher: RemoveWatch found no watch of this connection on the
	// path.
	ErrNoWatcher = errors.New("zk: no watcher on the path")
)

// readBuffer is the size of the reader's buffer.
const readBuffer = 64 << 10

// closeGrace is how long Close lets the writer send the closeSession.
const closeGrace = 100 * time.Millisecond

// Reconnect backoff: after every server of the list has been tried without
// success, wait this long (doubling up to maxBackoff) before the next round.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// Config configures a Conn.
type Config struct {
	// Servers is the ensemble, "host:port" each (no chroot); a server
	// without a port is at 2181, as for go-zookeeper.
	Servers []string
	// SessionTimeout is the requested session timeout; the read timeout is
	// two thirds of the negotiated one, and pings go every third.
	SessionTimeout time.Duration
	// Digest, "user:password", is sent as digest auth on every connection
	// when not empty.
	Digest string
	// Logger receives Debug chatter; nil means slog.Default().
	Logger *slog.Logger
	// Events, when not nil, keeps only the watch events it reports true
	// for: the others are dropped as they are read, without waking the
	// owner (a keeper of its own znodes cares for deletes, not for the
	// creates a recursive watch also reports).
	Events func(zk.EventType) bool
}

// Kind says what an Item is.
type Kind int

const (
	// Connected: a connection with a new session is up; requests may be
	// sent with its Gen.
	Connected Kind = iota
	// Gap: the connection Gen is lost. Its requests get no reply and its
	// watches are gone.
	Gap
	// Reply: the answer to the request Xid.
	Reply
	// Event: a watch event (Type, Path).
	Event
)

// Item is one thing that came back, in wire order.
type Item struct {
	Kind Kind
	Gen  uint64
	// Zxid is the reply header's: for a reply, the last transaction the
	// server had applied when it answered. (Events carry none before
	// ZooKeeper 3.9.)
	Zxid int64

	// Reply.
	Xid      int32
	Err      error    // the server's error code as go-zookeeper's error
	Children []string // getChildren2
	Stat     *zk.Stat // getChildren2, getData, exists (nil when none)
	Data     []byte   // getData

	// Event.
	Type zk.EventType
	Path string
}

// Conn is a watcher's connection to a ZooKeeper ensemble. Its goroutines
// (one reading, one writing) end with Close.
type Conn struct {
	cfg     Config
	log     *slog.Logger
	servers []string

	requests atomic.Int64 // requests sent, pings excluded
	events   atomic.Int64 // watch events received

	mu       sync.Mutex
	closed   bool
	gen      uint64 // the live connection's generation; 0 before the first
	live     bool   // gen is connected
	nextXid  int32
	pending  map[int32]int32 // xid → opcode, of the live connection
	out      [][]byte        // packets waiting for the writer
	outKick  chan struct{}   // the writer's signal
	netConn  net.Conn
	server   string // of the live connection
	items    []Item
	wake     chan struct{}
	lastZxid int64

	life    context.Context // ends with Close
	endLife context.CancelFunc
	wg      sync.WaitGroup
}

// Dial starts a Conn: it connects in the background, and reports each
// connection as a Connected item. It fails only on a bad configuration.
func Dial(cfg Config) (*Conn, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("zkwatch: no servers")
	}
	for _, s := range cfg.Servers {
		// go-zookeeper (and so cluster.Config) has no chroot; a server
		// "host:port/path" would otherwise be dialed as an address.
		if strings.Contains(s, "/") {
			return nil, fmt.Errorf("zkwatch: server %q: a chroot is not supported", s)
		}
	}
	if cfg.SessionTimeout <= 0 {
		return nil, errors.New("zkwatch: no session timeout")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Conn{
		cfg: cfg,
		log: cfg.Logger,
		// A server without a port is at ZooKeeper's default one, as
		// go-zookeeper (and so the registry's session, whose servers a
		// subscription dials again) takes it: "zk1" must reach the same
		// server on both connections, not fail here on every attempt.
		servers: zk.FormatServers(cfg.Servers),
		wake:    make(chan struct{}, 1),
		outKick: make(chan struct{}, 1),
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	rand.Shuffle(len(c.servers), func(i, j int) { c.servers[i], c.servers[j] = c.servers[j], c.servers[i] })
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// Close closes the session (best effort) and the connection, and returns
// once the Conn's goroutines have ended. It is idempotent.
func (c *Conn) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.closed = true
	nc := c.netConn
	if c.live {
		// The writer sends it, ends the connection, and so the reader:
		// the server then drops the session (and its watches) at once
		// instead of after a session timeout. A write under way to a
		// server that reads nothing gets closeGrace, not the rest of a
		// read timeout: the writer sets its deadlines under mu, so it
		// either set its last one before this or sees closed.
		c.out = append(c.out, request(0, opCloseSession, nil))
		_ = nc.SetWriteDeadline(time.Now().Add(closeGrace))
		nc = nil
	}
	c.mu.Unlock()
	c.endLife()
	if nc != nil {
		_ = nc.Close() // a handshake under way
	}
	c.wg.Wait()
}

// Wake is signalled when items are waiting for Take.
func (c *Conn) Wake() <-chan struct{} { return c.wake }

// Take returns the items that came back since the last call, in order.
func (c *Conn) Take() []Item {
	c.mu.Lock()
	defer c.mu.Unlock()
	items := c.items
	c.items = nil
	return items
}

// Server is the address of the server the live connection is to, "" when
// there is none.
func (c *Conn) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return ""
	}
	return c.server
}

// Requests is the number of requests sent so far (pings excluded).
func (c *Conn) Requests() int64 { return c.requests.Load() }

// Events is the number of watch events received so far.
func (c *Conn) Events() int64 { return c.events.Load() }

// GetChildren asks for the children of path and its stat (getChildren2,
// no watch). It returns the request's xid.
func (c *Conn) GetChildren(gen uint64, path string) (int32, error) {
	return c.send(gen, opGetChildren2, func(e *encoder) { e.string(path); e.bool(false) })
}

// GetData asks for the data and stat of path (no watch).
func (c *Conn) GetData(gen uint64, path string) (int32, error) {
	return c.send(gen, opGetData, func(e *encoder) { e.string(path); e.bool(false) })
}

// Exists asks for the stat of path (no watch); a missing node is a reply
// with Err zk.ErrNoNode.
func (c *Conn) Exists(gen uint64, path string) (int32, error) {
	return c.send(gen, opExists, func(e *encoder) { e.string(path); e.bool(false) })
}

// AddWatch sets a persistent recursive watch on path (which need not
// exist): until the connection ends, every creation, deletion and data
// change of path and of the nodes below it comes as an Event.
func (c *Conn) AddWatch(gen uint64, path string) (int32, error) {
	return c.send(gen, opAddWatch, func(e *encoder) { e.string(path); e.int32(addWatchModePersistentRecursive) })
}

// RemoveWatch removes the watch AddWatch set on path (removeWatches,
// every watch of the connection on path): no event of it comes after the
// reply. A path without a watch is a reply with Err ErrNoWatcher.
func (c *Conn) RemoveWatch(gen uint64, path string) (int32, error) {
	return c.send(gen, opRemoveWatches, func(e *encoder) { e.string(path); e.int32(watcherTypeAny) })
}

func (c *Conn) send(gen uint64, op int32, body func(*encoder)) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return 0, ErrClosed
	case !c.live || gen != c.gen:
		return 0, ErrStale
	}
	// Positive xids, in the order written: replies come in that order.
	c.nextXid++
	if c.nextXid <= 0 {
		c.nextXid = 1
	}
	xid := c.nextXid
	c.pending[xid] = op
	c.out = append(c.out, request(xid, op, body))
	c.requests.Add(1)
	kick(c.outKick)
	return xid, nil
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues an item for Take; called with mu held.
func (c *Conn) push(it Item) {
	c.items = append(c.items, it)
	kick(c.wake)
}

// run connects, serves the connection until it fails, reports the gap,
// and connects again (the next server), until Close.
func (c *Conn) run() {
	defer c.wg.Done()
	backoff := minBackoff
	next := 0
	failedRound := 0
	for {
		server := c.servers[next%len(c.servers)]
		next++
		served, err := c.serve(server)
		if c.isClosed() {
			return
		}
		c.log.Debug("zkwatch: connection ended", "server", server, "served", served, "err", err)
		// A connection that worked for a while: try the next server at
		// once. One that ended soon after its handshake (a server that
		// drops it, sends what does not decode, or a reply beyond
		// maxPacket, as a listing of a huge directory would) counts as a
		// failed attempt: otherwise the Conn would loop as fast as the
		// server answers, opening and closing a session (a write on the
		// ensemble) each time.
		if served >= maxBackoff {
			failedRound, backoff = 0, minBackoff
			continue
		}
		failedRound++
		if failedRound < len(c.servers) {
			continue
		}
		failedRound = 0
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.life.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Conn) isClosed() bool { return c.life.Err() != nil }

// serve runs one connection: handshake, auth, then reads until it fails.
// It returns how long the connection was live (0 if it never was).
func (c *Conn) serve(server string) (time.Duration, error) {
	timeout := c.cfg.SessionTimeout
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(c.life, "tcp", server)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = nc.Close()
		return 0, ErrClosed
	}
	c.netConn = nc
	lastZxid := c.lastZxid
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.netConn = nil
		c.mu.Unlock()
		_ = nc.Close()
	}()

	// Handshake, within the requested timeout.
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write(connectRequest(lastZxid, int32(timeout.Milliseconds()))); err != nil {
		return 0, fmt.Errorf("connect to %s: %w", server, err)
	}
	buf, err := readPacket(nc)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", server, err)
	}
	resp, err := decodeConnectResponse(buf)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", server, err)
	}
	if resp.timeoutMs <= 0 {
		// A server behind what this client has seen refuses it.
		return 0, fmt.Errorf("connect to %s: session refused", server)
	}
	negotiated := time.Duration(resp.timeoutMs) * time.Millisecond
	readTimeout := negotiated * 2 / 3
	if c.cfg.Digest != "" {
		e := &encoder{}
		e.int32(xidAuth)
		e.int32(opAuth)
		e.int32(0)
		e.string("digest")
		e.buffer([]byte(c.cfg.Digest))
		if _, err := nc.Write(e.packet()); err != nil {
			return 0, fmt.Errorf("auth with %s: %w", server, err)
		}
		buf, err := readPacket(nc)
		if err != nil {
			return 0, fmt.Errorf("auth with %s: %w", server, err)
		}
		d := &decoder{b: buf}
		xid, _, code := d.int32(), d.int64(), d.int32()
		if d.err != nil || xid != xidAuth {
			return 0, fmt.Errorf("auth with %s: %w", server, errMalformed)
		}
		if err := errorForCode(code); err != nil {
			return 0, fmt.Errorf("auth with %s: %w", server, err)
		}
	}
	_ = nc.SetDeadline(time.Time{})

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	c.gen++
	gen := c.gen
	c.live = true
	c.server = server
	c.pending = map[int32]int32{}
	c.out = nil
	c.push(Item{Kind: Connected, Gen: gen})
	c.mu.Unlock()
	liveSince := time.Now()
	c.log.Debug("zkwatch: connected", "server", server, "session", fmt.Sprintf("0x%x", resp.sessionID), "timeout", negotiated)

	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write(nc, negotiated/3, readTimeout, stopWriter)
	}()
	err = c.read(nc, gen, readTimeout)

	c.mu.Lock()
	c.live = false
	c.pending = nil
	c.out = nil
	c.push(Item{Kind: Gap, Gen: gen})
	c.mu.Unlock()
	close(stopWriter)
	_ = nc.Close() // ends a write under way
	<-writerDone
	return time.Since(liveSince), fmt.Errorf("connection to %s lost: %w", server, err)
}

// write sends the queued packets, and a ping when nothing was sent for
// pingEvery, until stop or a write fails (the reader then fails too).
// When the Conn is closed it sends what is queued (the closeSession) and
// closes the connection.
func (c *Conn) write(nc net.Conn, pingEvery, writeTimeout time.Duration, stop <-chan struct{}) {
	ping := request(xidPing, opPing, nil)
	t := time.NewTimer(pingEvery)
	defer t.Stop()
	for {
		var batch [][]byte
		closing := false
		select {
		case <-stop:
			return
		case <-t.C:
			batch = [][]byte{ping}
		case <-c.outKick:
		case <-c.life.Done():
			closing = true
		}
		c.mu.Lock()
		batch, c.out = append(batch, c.out...), nil
		deadline := writeTimeout
		if c.closed {
			deadline = closeGrace
		}
		_ = nc.SetWriteDeadline(time.Now().Add(deadline))
		c.mu.Unlock()
		// One system call for the batch (writev), not one per packet.
		bufs := net.Buffers(batch)
		if _, err := bufs.WriteTo(nc); err != nil {
			_ = nc.Close()
			return
		}
		if closing {
			_ = nc.Close()
			return
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(pingEvery)
	}
}

// read decodes packets and queues them as items, in order, until the
// connection fails, stays silent for readTimeout, or sends what does not
// decode.
func (c *Conn) read(nc net.Conn, gen uint64, readTimeout time.Duration) error {
	// Buffered: a burst of events (one per change below a watched path)
	// costs a read of the socket per buffer, not two per packet.
	br := bufio.NewReaderSize(nc, readBuffer)
	for {
		_ = nc.SetReadDeadline(time.Now().Add(readTimeout))
		buf, err := readPacket(br)
		if err != nil {
			return err
		}
		if err := c.handle(buf, gen); err != nil {
			return err
		}
	}
}

// handle decodes one packet of connection gen and queues what it says.
func (c *Conn) handle(buf []byte, gen uint64) error {
	d := &decoder{b: buf}
	xid, zxid, code := d.int32(), d.int64(), d.int32()
	if d.err != nil {
		return fmt.Errorf("reply header: %w", d.err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The zxid counts only once the packet has decoded: a connection
	// dropped as malformed must not leave a zxid behind, which the next
	// handshake would send (every server behind it refuses the client).
	seen := func() {
		if zxid > c.lastZxid {
			c.lastZxid = zxid
		}
	}
	switch xid {
	case xidPing, xidAuth:
		seen()
		return nil
	case xidNotification:
		typ, _, path := d.int32(), d.int32(), d.string()
		if d.err != nil {
			return fmt.Errorf("watch event: %w", d.err)
		}
		seen()
		c.events.Add(1)
		if c.cfg.Events == nil || c.cfg.Events(zk.EventType(typ)) {
			c.push(Item{Kind: Event, Gen: gen, Zxid: zxid, Type: zk.EventType(typ), Path: path})
		}
		return nil
	}
	op, ok := c.pending[xid]
	if !ok {
		return fmt.Errorf("reply to xid %d, which is not a request of this connection: %w", xid, errMalformed)
	}
	delete(c.pending, xid)
	it := Item{Kind: Reply, Gen: gen, Zxid: zxid, Xid: xid, Err: errorForCode(code)}
	if it.Err == nil {
		switch op {
		case opGetChildren2:
			it.Children = d.strings()
			it.Stat = d.stat()
		case opGetData:
			it.Data = d.buffer()
			it.Stat = d.stat()
		case opExists:
			it.Stat = d.stat()
		}
		if d.err != nil {
			return fmt.Errorf("reply to xid %d (opcode %d): %w", xid, op, d.err)
		}
	}
	seen()
	c.push(it)
	return nil
}

// readPacket reads one length-prefixed packet.
func readPacket(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := int32(uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3]))
	if n < 0 || n > maxPacket {
		return nil, fmt.Errorf("packet of %d bytes: %w", n, errMalformed)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
