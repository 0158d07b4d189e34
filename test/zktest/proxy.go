package zktest

import (
	"errors"
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
//   - [Proxy.Restore]: back to normal for new connections; silenced ones are closed, so clients
//     reconnect.
//
// The proxy and its goroutines stop when the test ends.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex
	target string
	mode   proxyMode
	conns  map[*proxyConn]struct{}
	closed bool
}

type proxyMode int

const (
	modeForward proxyMode = iota
	modeCut
	modeBlackhole
)

// proxyConn is one client connection and, unless it was silenced from the start, its
// connection to the target.
type proxyConn struct {
	client   net.Conn
	upstream net.Conn // nil until dialed; stays nil for a connection accepted in Blackhole
	silenced atomic.Bool
}

// NewProxy starts a proxy that listens on a free loopback port and forwards to target. It is
// closed, with all its connections, when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("zktest: proxy for %s: %v", target, err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
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
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = modeBlackhole
	for pc := range p.conns {
		pc.silenced.Store(true)
	}
}

// Restore forwards new connections again and closes the connections Blackhole silenced.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = modeForward
	for pc := range p.conns {
		if pc.silenced.Load() {
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

func (p *Proxy) closeConnLocked(pc *proxyConn) {
	_ = pc.client.Close()
	if pc.upstream != nil {
		_ = pc.upstream.Close()
	}
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
		pc := &proxyConn{client: client}
		p.mu.Lock()
		switch {
		case p.closed || p.mode == modeCut:
			_ = client.Close()
		case p.mode == modeBlackhole:
			// Held open and never read, so the client's bytes vanish as into a partition.
			pc.silenced.Store(true)
			p.conns[pc] = struct{}{}
		default:
			p.conns[pc] = struct{}{}
			p.wg.Add(1) // the counter is held above zero by this loop, so Add cannot race Wait
			go p.forward(pc, p.target)
		}
		p.mu.Unlock()
	}
}

// forward dials the target and copies between the two connections until either side closes
// or the proxy closes the connection.
func (p *Proxy) forward(pc *proxyConn, target string) {
	defer p.wg.Done()
	upstream, err := net.DialTimeout("tcp", target, 2*time.Second)
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
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.copy(pc, upstream, pc.client)
	}()
	p.copy(pc, pc.client, upstream)
}

// copy moves bytes from src to dst, dropping them while the connection is silenced. When src
// ends, the whole connection is closed unless it is silenced: a partition does not pass on
// a close either.
func (p *Proxy) copy(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pc.silenced.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, live := p.conns[pc]; live && !pc.silenced.Load() {
		p.closeConnLocked(pc)
	}
}
