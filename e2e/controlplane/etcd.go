package controlplane

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

// etcdStartAttempts covers the small race between finding a free port and
// etcd binding it.
const etcdStartAttempts = 3

// StartEtcd runs an embedded single-member etcd under dir (free 127.0.0.1
// ports, no fsync) and returns it with its client URL once it is ready. It
// lives in the test process so that no etcd binary is needed on PATH. The
// caller closes it and removes dir.
func StartEtcd(ctx context.Context, dir string) (*embed.Etcd, string, error) {
	var lastErr error
	for attempt := range etcdStartAttempts {
		e, clientURL, err := startEtcdOnce(ctx, filepath.Join(dir, fmt.Sprintf("etcd-%d", attempt)))
		if err == nil {
			return e, clientURL, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "", lastErr
}

func startEtcdOnce(ctx context.Context, dir string) (*embed.Etcd, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[1]))}

	cfg := embed.NewConfig()
	cfg.Name = "leadership-e2e"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Test data need not survive a crash; fsync would dominate write latency.
	cfg.UnsafeNoFsync = true
	// At "error", Close prints harmless stack traces.
	cfg.LogLevel = "panic"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, clientURL.String(), nil
	case err := <-e.Err():
		e.Close()
		_ = os.RemoveAll(dir)
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, "", fmt.Errorf("etcd: %w", err)
	case <-timer.C:
		e.Close()
		_ = os.RemoveAll(dir)
		return nil, "", errors.New("etcd: not ready after 1m")
	case <-ctx.Done():
		e.Close()
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("etcd: %w", ctx.Err())
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago.
// All listeners are held until all ports are chosen so the ports differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		lns = append(lns, ln)
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("find free port: unexpected address %v", ln.Addr())
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}
