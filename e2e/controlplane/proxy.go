package controlplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// Proxy is a TCP (L4) proxy on 127.0.0.1 in front of the API server, one per
// test candidate, so that a test can cut one candidate's traffic while others
// keep theirs. TLS passes through unchanged (the serving cert is valid for
// 127.0.0.1), so clients keep verifying the real API server.
//
// A Proxy dials the API server that is current at connect time, so it keeps
// working across RestartAPIServer. All methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target func() (string, error)
	base   *rest.Config
	onStop func(*Proxy)

	latency  atomic.Int64 // time.Duration
	accepted atomic.Int64

	mu     sync.Mutex
	mode   proxyMode
	links  map[*link]struct{}
	held   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxyMode int

const (
	modeForward proxyMode = iota
	modeBlackhole
	modeReset
)

// dialTimeout bounds how long a new client connection waits for the API
// server; a restart in progress shows up as a quick failure rather than a hang.
const dialTimeout = 5 * time.Second

// chunkQueue is how many read chunks may wait for their latency to pass; it
// bounds memory per direction while keeping throughput under SetLatency.
const chunkQueue = 64

func newProxy(target func() (string, error), base *rest.Config, onStop func(*Proxy)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{
		ln:     ln,
		target: target,
		base:   base,
		onStop: onStop,
		links:  map[*link]struct{}{},
		held:   map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the proxy's listening address ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Config returns a copy of the admin rest.Config whose Host points at the
// proxy. Each call returns a fresh copy, so callers may change it freely.
func (p *Proxy) Config() *rest.Config {
	cfg := rest.CopyConfig(p.base)
	cfg.Host = "https://" + p.Addr()
	return cfg
}

// Connections reports how many client connections the proxy has accepted so
// far, so a test can tell whether a client reconnected.
func (p *Proxy) Connections() int64 { return p.accepted.Load() }

// Blackhole makes the proxy stop forwarding in both directions on existing
// connections and hold new connections open without forwarding (a network
// partition: requests hang until the client times out). Nothing is closed,
// because a real partition gives the client no signal either.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.mode = modeBlackhole
	for l := range p.links {
		l.cut.Store(true)
	}
}

// Reset closes all connections (RST where possible) and refuses new ones until
// Restore, so clients see an immediate error instead of a hang. New
// connections are accepted and reset at once rather than left unaccepted, which
// fails them just as fast and keeps the port ours.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.mode = modeReset
	for l := range p.links {
		l.cut.Store(true)
		l.close(true)
	}
	for c := range p.held {
		resetConn(c)
	}
}

// SetLatency adds a one-way delay to every chunk forwarded (0 = none). Chunks
// are queued rather than slept on, so throughput is unaffected; a new value
// applies to chunks read after the call.
func (p *Proxy) SetLatency(d time.Duration) {
	if d < 0 {
		d = 0
	}
	p.latency.Store(int64(d))
}

// Restore returns to normal forwarding for new connections. Connections cut by
// Blackhole or Reset are closed rather than resumed: bytes were dropped on
// them, so their TLS streams cannot continue, and closing makes clients
// reconnect promptly. Latency is left as set.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.mode = modeForward
	for l := range p.links {
		if l.cut.Load() {
			l.close(false)
		}
	}
	for c := range p.held {
		_ = c.Close()
	}
}

// Close stops the proxy and closes all its connections. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for l := range p.links {
		l.close(false)
	}
	for c := range p.held {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if p.onStop != nil {
		p.onStop(p)
	}
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient errors such as EMFILE: back off instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.accepted.Add(1)

		p.mu.Lock()
		switch {
		case p.closed:
			_ = conn.Close()
		case p.mode == modeReset:
			resetConn(conn)
		case p.mode == modeBlackhole:
			p.held[conn] = struct{}{}
			p.wg.Add(1)
			go p.hold(conn)
		default:
			p.wg.Add(1)
			go p.forward(conn)
		}
		p.mu.Unlock()
	}
}

// hold swallows what a client sends while the proxy is blackholed, so the
// client's handshake hangs as in a partition, and forgets the connection once
// the client gives up.
func (p *Proxy) hold(conn net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(io.Discard, conn)
	_ = conn.Close()
	p.mu.Lock()
	delete(p.held, conn)
	p.mu.Unlock()
}

func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()

	addr, err := p.target()
	var server net.Conn
	if err == nil {
		server, err = net.DialTimeout("tcp", addr, dialTimeout)
	}
	if err != nil {
		// The API server is down (or restarting): fail the client fast, as a
		// load balancer with no healthy backend would.
		resetConn(client)
		return
	}

	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		l.close(false)
		return
	case p.mode == modeReset:
		p.mu.Unlock()
		l.close(true)
		return
	case p.mode == modeBlackhole:
		// The partition started while we were dialing.
		l.cut.Store(true)
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(l, client, server) }()
	go func() { defer pipes.Done(); p.pipe(l, server, client) }()
	pipes.Wait()

	l.close(false)
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through a queue so that each chunk can be delayed by
// the latency in force when it was read. When either side ends, the whole link
// is closed: HTTP/TLS clients never rely on half-closed connections.
func (p *Proxy) pipe(l *link, src, dst net.Conn) {
	queue := make(chan chunk, chunkQueue)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		failed := false
		for c := range queue {
			if failed || l.cut.Load() {
				continue
			}
			if wait := time.Until(c.due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-l.done:
					t.Stop()
					failed = true
					continue
				}
			}
			if l.cut.Load() {
				continue
			}
			if _, err := dst.Write(c.data); err != nil {
				failed = true
				l.close(false)
			}
		}
	}()

	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.cut.Load() {
			data := make([]byte, n)
			copy(data, buf[:n])
			queue <- chunk{data: data, due: time.Now().Add(time.Duration(p.latency.Load()))}
		}
		if err != nil {
			break
		}
	}
	close(queue)
	<-writerDone
	l.close(false)
}

// link is one client connection and its API server connection.
type link struct {
	client, server net.Conn
	// cut is set when the link stops forwarding (Blackhole, Reset).
	cut  atomic.Bool
	done chan struct{}
	once sync.Once
}

func (l *link) close(rst bool) {
	l.once.Do(func() {
		close(l.done)
		if rst {
			resetConn(l.client)
			resetConn(l.server)
			return
		}
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// resetConn closes conn with an RST instead of a FIN where the OS allows it,
// so the peer gets "connection reset by peer" at once.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
