package credentials

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dbProxy is a TCP proxy on 127.0.0.1 in front of PostgreSQL, one per
// replica, that can delay what the replica sends, as a slow network would:
// bytes already sent keep their order and still arrive, late, even after
// the replica gave up on them and closed the connection. That is how a
// request sent in one term reaches the database in the next.
type dbProxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // time.Duration, for bytes read from now on
	delayed atomic.Int64 // chunks delivered after a delay
	pending atomic.Int64 // delayed chunks not yet delivered

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newDBProxy(target string) (*dbProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *dbProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// setLatency delays every chunk the client sends from now on by d.
func (p *dbProxy) setLatency(d time.Duration) { p.latency.Store(int64(d)) }

func (p *dbProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *dbProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *dbProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(client)
		}()
	}
}

type chunk struct {
	b    []byte
	at   time.Time // when to deliver
	late bool
}

func (p *dbProxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	defer func() {
		_ = client.Close()
		_ = server.Close()
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	// Client to server, through a queue that holds each chunk until its
	// time. The queue is large enough for any burst a test makes.
	q := make(chan chunk, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(q)
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				d := time.Duration(p.latency.Load())
				if d > 0 {
					p.pending.Add(1)
				}
				q <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now().Add(d), late: d > 0}
			}
			if err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		for c := range q {
			if w := time.Until(c.at); w > 0 {
				time.Sleep(w)
			}
			_, err := server.Write(c.b)
			if c.late {
				p.delayed.Add(1)
				p.pending.Add(-1)
			}
			if err != nil {
				break
			}
		}
		for c := range q { // drain, so the reader never blocks
			if c.late {
				p.pending.Add(-1)
			}
		}
		// What the client sent has all arrived: now the server sees the
		// client's end.
		if tc, ok := server.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	})
	_, err = io.Copy(client, server)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = client.Close()
	}
	// The server side is done: unblock the client reader and wait for the
	// writer to deliver what is still queued.
	_ = client.Close()
	wg.Wait()
}
