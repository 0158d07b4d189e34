package main

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// ZooKeeper opcodes counted as reads (jute protocol).
var readOps = map[int32]bool{
	3:   true, // exists
	4:   true, // getData
	8:   true, // getChildren
	12:  true, // getChildren2
	104: true, // getAllChildrenNumber
}

// countingProxy forwards one client's connections to a ZooKeeper server and
// counts the read requests the client sends: the frames of the client-to-
// server stream are [length][xid][opcode]..., after the connect request.
type countingProxy struct {
	ln     net.Listener
	target string
	reads  atomic.Int64
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newCountingProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.count(io.TeeReader(c, s))
			c.Close()
			s.Close()
		}()
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, s)
			c.Close()
			s.Close()
		}()
	}
}

// count reads the client's frames (already forwarded by the TeeReader) and
// counts the reads among them.
func (p *countingProxy) count(r io.Reader) {
	var head [4]byte
	first := true
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(head[:])
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if first { // the connect request has no header
			first = false
			continue
		}
		if len(body) >= 8 && readOps[int32(binary.BigEndian.Uint32(body[4:8]))] {
			p.reads.Add(1)
		}
	}
}
