package leadershiptest

import (
	"context"
	"fmt"
	"sync"

	"github.com/leadership-dev/leadership"
)

// Conn is one client's connection to a Lock, which a test can cut as a
// network partition would: give each elector its own Conn, and cut one to
// partition that elector alone. A Conn is a leadership.Lock and a
// leadership.PingAnswerer.
type Conn struct {
	lock *Lock

	mu      sync.Mutex
	cut     bool
	cancels map[*context.CancelFunc]struct{} // open watches, ended by a cut
}

// Conn returns a new connection to l, not cut.
func (l *Lock) Conn() *Conn {
	return &Conn{lock: l, cancels: map[*context.CancelFunc]struct{}{}}
}

// Cut cuts the connection (true) or mends it (false). A cut fails every
// request with ErrCut, before it reaches the store, and ends every open
// watch (its channel closes, as a broken stream's would).
func (c *Conn) Cut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for f := range c.cancels {
			(*f)()
		}
		clear(c.cancels)
	}
}

func (c *Conn) String() string { return c.lock.String() }

func (c *Conn) down(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return fmt.Errorf("%s: %s: %w", c.lock, op, ErrCut)
	}
	return nil
}

// Get is Lock.Get through the connection.
func (c *Conn) Get(ctx context.Context) (leadership.Record, error) {
	if err := c.down("get"); err != nil {
		return leadership.Record{}, err
	}
	return c.lock.Get(ctx)
}

// Create is Lock.Create through the connection.
func (c *Conn) Create(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if err := c.down("create"); err != nil {
		return leadership.Record{}, err
	}
	return c.lock.Create(ctx, r)
}

// Update is Lock.Update through the connection.
func (c *Conn) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if err := c.down("update"); err != nil {
		return leadership.Record{}, err
	}
	return c.lock.Update(ctx, r)
}

// AnswerPing is Lock.AnswerPing through the connection.
func (c *Conn) AnswerPing(ctx context.Context, version uint64, ping string) (leadership.Record, error) {
	if err := c.down("answer a probe"); err != nil {
		return leadership.Record{}, err
	}
	return c.lock.AnswerPing(ctx, version, ping)
}

// Watch is Lock.Watch through the connection; a cut ends it.
func (c *Conn) Watch(ctx context.Context, fromVersion uint64) (<-chan leadership.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, fmt.Errorf("%s: watch: %w", c.lock, ErrCut)
	}
	ctx, cancel := context.WithCancel(ctx)
	key := &cancel
	c.cancels[key] = struct{}{}
	ch, err := c.lock.Watch(ctx, fromVersion)
	if err != nil {
		delete(c.cancels, key)
		cancel()
		return nil, err
	}
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		delete(c.cancels, key)
		c.mu.Unlock()
	})
	return ch, nil
}
