// Command demo shows leadership at work on a local control plane (a real
// kube-apiserver on an embedded etcd, started here): three replicas elect a
// leader that renews credentials; the leader is cut off from the API server
// as a crash would, another takes over after the lease duration; then a
// graceful handover takes milliseconds. It exits by itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/e2e/controlplane"
	"github.com/leadership-dev/leadership/kubelease"
)

func main() {
	// A FlagSet of its own: the API server's packages fill the global one.
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	lease := fs.Duration("lease-duration", 4*time.Second, "lease duration of every replica")
	verbose := fs.Bool("verbose", false, "show the electors' logs")
	_ = fs.Parse(os.Args[1:])
	if err := run(*lease, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type term struct {
	who        string
	token      uint64
	start, end time.Time
}

type replica struct {
	id     string
	proxy  *controlplane.Proxy
	e      *leadership.Elector
	cancel context.CancelFunc
	done   chan struct{}
}

type demo struct {
	began time.Time
	mu    sync.Mutex
	terms []term
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("%6.2fs  %s\n", time.Since(d.began).Seconds(), fmt.Sprintf(format, args...))
}

func run(leaseDuration time.Duration, verbose bool) error {
	d := &demo{began: time.Now()}
	d.say("starting a local control plane (embedded etcd + real kube-apiserver)…")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return err
	}
	defer cp.Stop()
	d.say("control plane ready; starting replicas a, b, c on Lease default/credential-renewer (lease %v)", leaseDuration)

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var reps []*replica
	for _, id := range []string{"replica-a", "replica-b", "replica-c"} {
		r, err := d.start(cp, id, leaseDuration, logger)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	defer func() {
		for _, r := range reps {
			r.cancel()
			<-r.done
		}
	}()

	first := d.waitLeader("", 30*time.Second)
	if first == "" {
		return fmt.Errorf("no leader elected within 30s")
	}
	time.Sleep(2 * time.Second) // let the audience watch a few renewals
	victim := find(reps, first)
	d.say("✂  cutting %s off the API server, as a crash or a partition would: it cannot release the lock", first)
	victim.proxy.Blackhole()
	cutAt := time.Now()
	second := d.waitLeader(first, 30*time.Second)
	if second == "" {
		return fmt.Errorf("no takeover within 30s")
	}
	crash := d.lastStart().Sub(cutAt)
	d.say("→ %s took over %v after the cut (lease duration %v; the last renewal came shortly before the cut)", second, crash.Round(time.Millisecond), leaseDuration)
	victim.proxy.Restore()
	time.Sleep(1500 * time.Millisecond)

	d.say("⇄  stopping %s gracefully: it ends its work, then releases the lock", second)
	leader := find(reps, second)
	stopAt := time.Now()
	leader.cancel()
	<-leader.done
	third := d.waitLeader(second, 30*time.Second)
	if third == "" {
		return fmt.Errorf("no takeover after the graceful stop")
	}
	graceful := d.lastStart().Sub(d.endOf(second))
	d.say("→ %s took over %v after %s's work returned (%v after the stop was asked)", third, graceful.Round(time.Microsecond), second, time.Since(stopAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)

	fmt.Println()
	fmt.Println("summary")
	fmt.Println("  term  holder      fencing token  worked")
	d.mu.Lock()
	ts := append([]term(nil), d.terms...)
	d.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].start.Before(ts[j].start) })
	overlaps := 0
	for i, t := range ts {
		end := t.end
		if end.IsZero() {
			end = time.Now()
		}
		fmt.Printf("  %-4d  %-10s  %-13d  %6.2fs → %6.2fs\n", i+1, t.who, t.token, t.start.Sub(d.began).Seconds(), end.Sub(d.began).Seconds())
		if i+1 < len(ts) && !ts[i+1].start.After(end) {
			overlaps++
		}
	}
	fmt.Printf("  crash takeover %v, graceful handover %v, overlapping terms: %d\n", crash.Round(time.Millisecond), graceful.Round(time.Microsecond), overlaps)
	if overlaps > 0 {
		return fmt.Errorf("%d overlapping terms", overlaps)
	}
	return nil
}

func (d *demo) start(cp *controlplane.ControlPlane, id string, leaseDuration time.Duration, logger *slog.Logger) (*replica, error) {
	p, err := cp.NewProxy()
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(p.Config())
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lock, err := kubelease.New(cs.CoordinationV1(), "default", "credential-renewer")
	if err != nil {
		return nil, err
	}
	e, err := leadership.New(lock, leadership.Config{Identity: id, LeaseDuration: leaseDuration, Logger: logger.With("replica", id)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{id: id, proxy: p, e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = e.Run(ctx, d.renewCredentials(id))
	}()
	return r, nil
}

// renewCredentials is the critical work: it must never run on two replicas
// at once.
func (d *demo) renewCredentials(id string) leadership.LeadFunc {
	return func(ctx context.Context, t leadership.Term) error {
		d.mu.Lock()
		d.terms = append(d.terms, term{who: id, token: t.Token, start: time.Now()})
		i := len(d.terms) - 1
		d.mu.Unlock()
		d.say("★ %s leads (fencing token %d)", id, t.Token)
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				d.mu.Lock()
				d.terms[i].end = time.Now()
				d.mu.Unlock()
				d.say("  %s stops its work: %v", id, context.Cause(ctx))
				return nil
			case <-tick.C:
				d.say("  %s renews credentials with token %d (term valid for another %v)", id, t.Token, t.Remaining().Round(time.Millisecond))
			}
		}
	}
}

// waitLeader waits for a leader other than not.
func (d *demo) waitLeader(not string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		if n := len(d.terms); n > 0 && d.terms[n-1].who != not && d.terms[n-1].end.IsZero() {
			w := d.terms[n-1].who
			d.mu.Unlock()
			return w
		}
		d.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return ""
}

func (d *demo) lastStart() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.terms[len(d.terms)-1].start
}

func (d *demo) endOf(who string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.terms) - 1; i >= 0; i-- {
		if d.terms[i].who == who {
			return d.terms[i].end
		}
	}
	return time.Time{}
}

func find(rs []*replica, id string) *replica {
	for _, r := range rs {
		if r.id == id {
			return r
		}
	}
	return nil
}
