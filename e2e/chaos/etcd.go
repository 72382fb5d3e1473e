package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// leaseEtcd is an etcd of its own for Lease objects, behind a StallProxy:
// the API server is told to keep leases there (--etcd-servers-overrides),
// so that the suite can stall the storage of Leases without touching the
// control plane's etcd, which it cannot reach.
type leaseEtcd struct {
	etcd  *embed.Etcd
	dir   string
	proxy *StallProxy
}

// startLeaseEtcd starts an embedded single-member etcd in a temp dir and a
// StallProxy in front of it.
func startLeaseEtcd(ctx context.Context) (*leaseEtcd, error) {
	dir, err := os.MkdirTemp("", "leadership-chaos-etcd-")
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	l := &leaseEtcd{dir: dir}
	var lastErr error
	// A port found free may be taken before etcd binds it: try again.
	for attempt := range 3 {
		l.etcd, lastErr = startEtcd(ctx, filepath.Join(dir, fmt.Sprint(attempt)))
		if lastErr == nil || ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		_ = os.RemoveAll(dir)
		return nil, lastErr
	}
	target := l.etcd.Clients[0].Addr().String()
	if l.proxy, err = NewStallProxy(target); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// override is the kube-apiserver flag that stores Leases in this etcd,
// through the proxy.
func (l *leaseEtcd) override() string {
	return "--etcd-servers-overrides=coordination.k8s.io/leases#http://" + l.proxy.Addr()
}

func (l *leaseEtcd) close() {
	if l.proxy != nil {
		_ = l.proxy.Close()
	}
	if l.etcd != nil {
		l.etcd.Close()
	}
	_ = os.RemoveAll(l.dir)
}

func startEtcd(ctx context.Context, dir string) (*embed.Etcd, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0]))}
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[1]))}
	cfg := embed.NewConfig()
	cfg.Name = "leadership-chaos-leases"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Test data need not survive a crash; fsync would dominate latency.
	cfg.UnsafeNoFsync = true
	// At "error", Close prints harmless stack traces.
	cfg.LogLevel = "panic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("chaos: start etcd: %w", err)
	}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, fmt.Errorf("chaos: etcd: %w", err)
	case <-timer.C:
		e.Close()
		return nil, errors.New("chaos: etcd not ready after 1m")
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("chaos: etcd: %w", ctx.Err())
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("chaos: find a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
