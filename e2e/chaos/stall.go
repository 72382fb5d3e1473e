package chaos

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// StallProxy is a TCP proxy on 127.0.0.1 that can stall: while stalled it
// forwards nothing in either direction but keeps every byte, and on Resume
// delivers them in order. Between the API server and etcd that is an etcd
// that stops answering (a disk that hangs on fsync, a stop-the-world pause)
// and then catches up, applying requests that their senders may have given
// up on long ago. All methods are safe for concurrent use.
type StallProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	gate    chan struct{} // closed while forwarding
	closed  bool
	done    chan struct{}
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	stalled time.Duration
	since   time.Time
}

// NewStallProxy listens on a free port of 127.0.0.1 and forwards to target
// (host:port).
func NewStallProxy(target string) (*StallProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: stall proxy: %w", err)
	}
	open := make(chan struct{})
	close(open)
	p := &StallProxy{ln: ln, target: target, gate: open, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where the proxy listens.
func (p *StallProxy) Addr() string { return p.ln.Addr().String() }

// Stall stops forwarding until Resume. Stalling twice is one stall.
func (p *StallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
		p.since = time.Now()
	default:
	}
}

// Resume delivers what was held and forwards again.
func (p *StallProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
		p.stalled += time.Since(p.since)
	}
}

// Stalled is the total time spent stalled so far, a finished stall only.
func (p *StallProxy) Stalled() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// Close stops the proxy and closes its connections. Idempotent.
func (p *StallProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *StallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and the like: back off rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *StallProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *StallProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	_ = c.Close()
}

func (p *StallProxy) forward(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(client, server) }()
	go func() { defer pipes.Done(); p.pipe(server, client) }()
	pipes.Wait()
}

// pipe copies src to dst, holding each chunk while stalled. Holding the
// chunk also stops reading, so the sender's socket buffers fill and it
// blocks, as it would against a stalled peer.
func (p *StallProxy) pipe(src, dst net.Conn) {
	defer func() {
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			select {
			case <-gate:
			case <-p.done:
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
