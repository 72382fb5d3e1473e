package chaos

import (
	"context"
	"fmt"
	"os"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/leadership-dev/leadership/e2e/controlplane"
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
	if l.etcd, _, err = controlplane.StartEtcd(ctx, dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("chaos: %w", err)
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
