package zktest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on loopback that forwards connections to a target address and can
// break them on demand, to test how clients ride out network faults.
//
// Its modes affect the connections that exist when the mode changes and those accepted later:
//
//   - normal: each connection is forwarded to the target, in both directions.
//   - [Proxy.Cut]: every connection is closed; new ones are accepted and closed at once, as a
//     client sees a server that is down.
//   - [Proxy.Blackhole]: connections stay open but nothing passes in either direction, and new
//     ones are accepted but never reach the target, as in a silent network partition. A side
//     that closes its connection is not told to the other.
//   - [Proxy.DropToTarget] and [Proxy.DropFromTarget]: a one-way partition. Connections stay
//     open and new ones are forwarded, but the bytes of one direction are dropped while the
//     other direction still flows.
//   - [Proxy.Restore]: back to normal for new connections; silenced ones (in either or both
//     directions) are closed, so clients reconnect.
//
// A connection silenced in a direction stays silenced until Restore closes it: switching from
// one partition mode to another adds silence and never lifts it, because a byte stream with a
// gap in it is garbage to both ends.
//
// Independently of the mode, [Proxy.Delay] holds back every chunk the target sends for a
// while, in order, as a slow return path does.
//
// The proxy and its goroutines stop when the test ends.
type Proxy struct {
	ln    net.Listener
	wg    sync.WaitGroup // the accept loop and every connection's goroutines
	delay atomic.Int64   // nanoseconds each chunk from the target is held back

	mu     sync.Mutex
	target string
	mode   proxyMode
	conns  map[*proxyConn]struct{}
	closed bool
	// rewrite, if set, reads the start of each client's stream and returns what the target
	// gets instead (see electionHandshakeRewriter).
	rewrite func(io.Reader) ([]byte, error)
	// dialRetry is how long a connection waits for its target to accept when it refuses;
	// zero makes the first refusal final.
	dialRetry time.Duration
}

type proxyMode int

const (
	modeForward proxyMode = iota
	modeCut
	modeBlackhole
	modeDropToTarget
	modeDropFromTarget
)

// proxyConn is one client connection and, unless it was blackholed from the start, its
// connection to the target.
type proxyConn struct {
	client   net.Conn
	upstream net.Conn      // nil until dialed; stays nil for a connection accepted in Blackhole
	done     chan struct{} // closed when the proxy closes the connection

	dropToTarget   atomic.Bool // client -> target bytes are dropped
	dropFromTarget atomic.Bool // target -> client bytes are dropped
}

// silenced reports whether either direction drops its bytes; Restore closes such connections.
func (pc *proxyConn) silenced() bool {
	return pc.dropToTarget.Load() || pc.dropFromTarget.Load()
}

// silence makes the connection drop what mode drops, adding to what it already drops.
func (pc *proxyConn) silence(mode proxyMode) {
	if mode == modeBlackhole || mode == modeDropToTarget {
		pc.dropToTarget.Store(true)
	}
	if mode == modeBlackhole || mode == modeDropFromTarget {
		pc.dropFromTarget.Store(true)
	}
}

// chunk is a piece of the target's byte stream on its way to the client.
type chunk struct {
	data []byte
	due  time.Time // when it may be written: read time plus the delay then in force
}

// chunkQueueLen bounds the chunks of one connection held back by Delay (each at most 32 KiB).
// When it is full the proxy stops reading from the target, which then sees TCP backpressure.
const chunkQueueLen = 64

// NewProxy starts a proxy that listens on a free loopback port and forwards to target. It is
// closed, with all its connections, when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := newProxy(target)
	if err != nil {
		t.Fatalf("zktest: proxy for %s: %v", target, err)
	}
	t.Cleanup(p.close)
	return p
}

// newProxy starts a proxy that the caller must close.
func newProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Proxies starts one proxy in front of each server of c and returns them with their addresses,
// in the order of c.Addrs(). Hand the addresses to a client in place of the servers'.
func Proxies(t testing.TB, c *Cluster) ([]*Proxy, []string) {
	t.Helper()
	var proxies []*Proxy
	var addrs []string
	for _, target := range c.Addrs() {
		p := NewProxy(t, target)
		proxies = append(proxies, p)
		addrs = append(addrs, p.Addr())
	}
	return proxies, addrs
}

// Addr returns the address clients connect to, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection and, until Restore, closes new connections as soon as they are
// accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = modeCut
	for pc := range p.conns {
		p.closeConnLocked(pc)
	}
}

// Blackhole silences every connection: they stay open but nothing is forwarded in either
// direction. Until Restore, new connections are accepted and silenced too.
func (p *Proxy) Blackhole() { p.silenceAll(modeBlackhole) }

// DropToTarget partitions the path one way: bytes from clients to the target are dropped while
// the target's bytes still reach the clients. Connections stay open, and until Restore new ones
// are forwarded with the same partition. A ZooKeeper client behind it sends requests and pings
// that the server never sees.
func (p *Proxy) DropToTarget() { p.silenceAll(modeDropToTarget) }

// DropFromTarget partitions the path the other way: bytes from the target to clients are
// dropped while the clients' bytes still reach the target. Connections stay open, and until
// Restore new ones are forwarded with the same partition. A ZooKeeper server behind it
// executes requests whose replies are lost.
func (p *Proxy) DropFromTarget() { p.silenceAll(modeDropFromTarget) }

func (p *Proxy) silenceAll(mode proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for pc := range p.conns {
		pc.silence(mode)
	}
}

// Delay holds back every chunk of bytes the target sends by d before it is passed on to the
// client, in the order received, on existing and new connections; requests still pass at once.
// Delay(0) (or Restore) stops delaying chunks read from then on; chunks already held back
// keep their delay, so order is preserved. At most 64 chunks per connection are held: beyond
// that the proxy stops reading from the target until the queue drains.
func (p *Proxy) Delay(d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.delay.Store(int64(d))
}

// Restore forwards new connections again, ends any Delay, and closes the connections that
// Blackhole, DropToTarget or DropFromTarget silenced, so their clients reconnect.
func (p *Proxy) Restore() {
	p.delay.Store(0)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = modeForward
	for pc := range p.conns {
		if pc.silenced() {
			p.closeConnLocked(pc)
		}
	}
}

// Retarget forwards connections accepted from now on to target; existing ones keep theirs.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// Conns returns the number of connections the proxy holds open, silenced ones included.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// close stops accepting, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for pc := range p.conns {
		p.closeConnLocked(pc)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// closeConnLocked closes both sides of pc; closing a connection twice does nothing.
func (p *Proxy) closeConnLocked(pc *proxyConn) {
	if _, live := p.conns[pc]; !live {
		return
	}
	_ = pc.client.Close()
	if pc.upstream != nil {
		_ = pc.upstream.Close()
	}
	close(pc.done)
	delete(p.conns, pc)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error such as too many open files
		}
		pc := &proxyConn{client: client, done: make(chan struct{})}
		p.mu.Lock()
		switch {
		case p.closed || p.mode == modeCut:
			_ = client.Close()
		case p.mode == modeBlackhole:
			// Held open and never read, so the client's bytes vanish as into a partition.
			pc.silence(modeBlackhole)
			p.conns[pc] = struct{}{}
		default:
			pc.silence(p.mode) // nothing in modeForward, one direction in a one-way partition
			p.conns[pc] = struct{}{}
			p.wg.Add(1) // the counter is held above zero by this loop, so Add cannot race Wait
			go p.forward(pc, p.target, p.rewrite, p.dialRetry)
		}
		p.mu.Unlock()
	}
}

// forward dials the target and moves bytes between the two connections until either side
// closes or the proxy closes the connection. The target's bytes pass through a queue, so
// that Delay can hold them back without a goroutine per chunk.
func (p *Proxy) forward(pc *proxyConn, target string, rewrite func(io.Reader) ([]byte, error), dialRetry time.Duration) {
	defer p.wg.Done()
	upstream, err := dial(pc, target, dialRetry)
	p.mu.Lock()
	if _, live := p.conns[pc]; !live || err != nil {
		// Cut, Restore or close got to it first, or the target is down: the client sees EOF.
		if upstream != nil {
			_ = upstream.Close()
		}
		p.closeConnLocked(pc)
		p.mu.Unlock()
		return
	}
	pc.upstream = upstream
	queue := make(chan chunk, chunkQueueLen)
	p.wg.Add(2)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.readFromTarget(pc, queue)
	}()
	go func() {
		defer p.wg.Done()
		p.writeToClient(pc, queue)
	}()
	if rewrite != nil {
		start, err := rewrite(pc.client)
		if err == nil && !pc.dropToTarget.Load() {
			_, err = pc.upstream.Write(start)
		}
		if err != nil {
			p.mu.Lock()
			p.closeConnLocked(pc)
			p.mu.Unlock()
			return
		}
	}
	p.copyToTarget(pc)
}

// dialRetryInterval is how often dial tries again while its target refuses.
const dialRetryInterval = 20 * time.Millisecond

// dial connects to target, trying again for up to retry while it refuses, unless the proxy
// closes pc meanwhile.
func dial(pc *proxyConn, target string, retry time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(retry)
	for {
		conn, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-pc.done:
			return nil, err
		case <-time.After(dialRetryInterval):
		}
	}
}

// copyToTarget moves the client's bytes to the target, dropping them while that direction is
// silenced.
func (p *Proxy) copyToTarget(pc *proxyConn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := pc.client.Read(buf)
		if n > 0 && !pc.dropToTarget.Load() {
			if _, werr := pc.upstream.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	p.ended(pc)
}

// readFromTarget queues the target's bytes for writeToClient, each chunk stamped with the time
// it may be written, and closes the queue when the target's side ends.
func (p *Proxy) readFromTarget(pc *proxyConn, queue chan<- chunk) {
	defer close(queue)
	buf := make([]byte, 32*1024)
	for {
		n, err := pc.upstream.Read(buf)
		if n > 0 && !pc.dropFromTarget.Load() {
			c := chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.delay.Load()))}
			select {
			case queue <- c:
			case <-pc.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// writeToClient writes the queued chunks to the client in order, each no earlier than it is
// due, dropping those that arrive while the direction is silenced. Once the queue is closed
// and drained, the target's end of the stream is passed on like any other byte.
func (p *Proxy) writeToClient(pc *proxyConn, queue <-chan chunk) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-pc.done:
				return
			}
		}
		if pc.dropFromTarget.Load() {
			continue
		}
		if _, err := pc.client.Write(c.data); err != nil {
			break
		}
	}
	p.ended(pc)
	// If the client broke off while the connection is silenced, it stays open until Restore:
	// keep the reader from blocking on a full queue until then.
	for {
		select {
		case _, ok := <-queue:
			if !ok {
				return
			}
		case <-pc.done:
			return
		}
	}
}

// ended closes the whole connection once one side has ended, unless it is silenced: a
// partition does not pass on a close either.
func (p *Proxy) ended(pc *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !pc.silenced() {
		p.closeConnLocked(pc)
	}
}
