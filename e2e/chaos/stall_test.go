package chaos

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer echoes every connection until the listener is closed.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string, within time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestStallProxy(t *testing.T) {
	p, err := NewStallProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "before", 30*time.Second); err != nil || got != "before" {
		t.Fatalf("forwarding: %q %v", got, err)
	}

	p.Stall()
	p.Stall() // one stall
	// Nothing comes back while stalled; a short window shows it.
	if _, err := roundTrip(t, c, "held", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while stalled: %v, want a timeout", err)
	}
	// A connection opened during the stall is accepted but stalled too.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	p.Resume() // idempotent
	// What was sent during the stall arrives, in order, after it.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after Resume: %q %v, want the held bytes", buf, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf = make([]byte, 3)
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "new" {
		t.Fatalf("connection opened while stalled: %q %v", buf, err)
	}
	if p.Stalled() < 300*time.Millisecond {
		t.Fatalf("Stalled() = %v, want at least the 300ms the read waited", p.Stalled())
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
