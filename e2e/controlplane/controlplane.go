// Package controlplane runs a real kube-apiserver on an embedded etcd inside
// the test process, so that end-to-end tests of the leader-election library
// exercise real Lease semantics (resource versions, conflicts, RBAC) without
// a cluster, container runtime or etcd binary.
//
// One control plane is meant to be shared by a whole test package through
// Main, because starting one costs a few seconds; tests keep out of each
// other's way by using fresh Lease names. Proxy puts a fault-injecting TCP hop
// between one client and the API server, so a test can partition or slow down
// a single candidate.
package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options for Start.
type Options struct {
	// ExtraAPIServerFlags are appended to the kube-apiserver flags (e.g.
	// "--authorization-mode=RBAC"). They may not set --client-ca-file, which
	// carries the admin identity behind Config.
	ExtraAPIServerFlags []string
	// Logf receives progress lines; nil = silent.
	Logf func(format string, args ...any)
	// Verbose keeps klog output (default: klog silenced), for debugging the
	// API server itself. klog is process-global, so silencing is not undone
	// by Stop.
	Verbose bool
}

// ControlPlane is an embedded etcd with a kube-apiserver on it.
//
// Config and every Proxy reach the API server through addresses that stay the
// same across RestartAPIServer: StartTestServer always picks a new port, so
// Config.Host is a plain TCP forwarder on 127.0.0.1 that follows the current
// API server. Clients therefore need no new Config after a restart; they only
// see their connections drop, as with a real API server restart behind a
// load balancer.
type ControlPlane struct {
	// Config is an admin rest.Config for the API server (loopback, full
	// rights: group system:masters via a client certificate). Callers must
	// copy it (rest.CopyConfig) before changing it. It does not change over
	// the control plane's life.
	Config *rest.Config
	// EtcdURL is the embedded etcd's client URL, for tests that need to look
	// under the API server. Keys live under EtcdPrefix.
	EtcdURL string
	// EtcdPrefix is the kube-apiserver's storage prefix in etcd.
	EtcdPrefix string

	opts  Options
	flags []string
	dir   string
	etcd  *embed.Etcd
	front *Proxy
	// bg tracks API server starts abandoned because their ctx ended; they
	// must be gone before etcd is closed.
	bg sync.WaitGroup

	// mu serializes the lifecycle: Stop and RestartAPIServer.
	mu      sync.Mutex
	server  *apiServer
	stopped bool

	backendMu sync.RWMutex
	backend   string // current kube-apiserver host:port, "" while down

	proxiesMu     sync.Mutex
	proxies       map[*Proxy]struct{}
	proxiesClosed bool
}

const (
	// etcdPrefix is the usual one: the etcd belongs to this control plane
	// alone, so there is nothing to keep apart.
	etcdPrefix = "/registry"
	// readyTimeout bounds the wait for /readyz after StartTestServer has
	// already seen /healthz, so it only needs to cover post-start hooks.
	readyTimeout = 2 * time.Minute
)

// Start starts an embedded etcd (temp dir, free 127.0.0.1 ports,
// UnsafeNoFsync) and a real kube-apiserver on it, and waits until the API
// server answers through Config: GET /readyz is ok and namespace "default"
// exists. It takes a few seconds.
//
// If ctx ends while the API server is starting, Start returns at once and the
// partly started processes are cleaned up in the background, because the
// kube-apiserver test harness cannot be interrupted.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	began := time.Now()
	if !opts.Verbose {
		silenceKlog()
	}
	for _, f := range opts.ExtraAPIServerFlags {
		if f == "--client-ca-file" || strings.HasPrefix(f, "--client-ca-file=") {
			return nil, errors.New("controlplane: ExtraAPIServerFlags may not set --client-ca-file: the admin identity relies on it")
		}
	}

	c := &ControlPlane{
		opts:       opts,
		EtcdPrefix: etcdPrefix,
		proxies:    map[*Proxy]struct{}{},
	}
	ok := false
	defer func() {
		if !ok {
			if c.etcd != nil && ctx.Err() != nil {
				// An API server start may have been abandoned; it can take
				// a minute to wind down, and etcd must outlive it.
				go c.Stop()
			} else {
				c.Stop()
			}
		}
	}()

	var err error
	if c.dir, err = os.MkdirTemp("", "leadership-e2e-controlplane-"); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	admin, err := newAdminIdentity()
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	caFile := filepath.Join(c.dir, "admin-client-ca.crt")
	if err := os.WriteFile(caFile, admin.caPEM, 0o600); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	c.flags = append([]string{
		// No Endpoints reconciliation: the "external" address is loopback.
		"--endpoint-reconciler-type=none",
		// The ServiceAccount admission plugin wants a token controller that
		// does not run here.
		"--disable-admission-plugins=ServiceAccount",
		"--client-ca-file=" + caFile,
	}, opts.ExtraAPIServerFlags...)

	t := time.Now()
	if c.etcd, c.EtcdURL, err = StartEtcd(ctx, filepath.Join(c.dir, "etcd")); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	etcdTook := since(t)

	if c.front, err = newProxy(c.backendAddr, nil, nil); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}

	t = time.Now()
	server, err := c.startAPIServer(ctx)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	c.Config = &rest.Config{
		Host: "https://" + c.front.Addr(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   server.servingCA,
			CertData: admin.certPEM,
			KeyData:  admin.keyPEM,
		},
		// Like StartTestServer's loopback config: tests should not be
		// throttled client-side unless they ask for it.
		QPS:   1000,
		Burst: 10000,
	}
	c.setServer(server)
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.log("controlplane: ready in %s (etcd %s in %s, kube-apiserver %s in %s)",
		since(began), c.EtcdURL, etcdTook, c.Config.Host, since(t))
	ok = true
	return c, nil
}

// Stop stops the API server, then etcd, and removes temp dirs. It also closes
// every Proxy. Idempotent.
func (c *ControlPlane) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	t := time.Now()

	if c.server != nil {
		c.server.stop()
		c.setServer(nil)
	}
	c.proxiesMu.Lock()
	c.proxiesClosed = true
	proxies := make([]*Proxy, 0, len(c.proxies))
	for p := range c.proxies {
		proxies = append(proxies, p)
	}
	c.proxiesMu.Unlock()
	for _, p := range proxies {
		_ = p.Close()
	}
	if c.front != nil {
		_ = c.front.Close()
	}
	c.bg.Wait()
	if c.etcd != nil {
		c.etcd.Close()
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			c.log("controlplane: %v", err)
		}
	}
	c.log("controlplane: stopped in %s", since(t))
}

// RestartAPIServer stops the kube-apiserver and starts a new one on the same
// etcd, so stored objects survive, as in an API server upgrade or crash. The
// new server listens on a new port (StartTestServer allows no other), but
// Config and every Proxy keep their addresses and follow it; open connections
// are dropped. Clients that connect while no server runs are reset at once.
//
// If the new server fails to start, the control plane has no API server;
// calling RestartAPIServer again may recover it.
func (c *ControlPlane) RestartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("controlplane: stopped")
	}
	t := time.Now()
	if c.server != nil {
		old := c.server
		c.setServer(nil)
		old.stop()
	}
	stopTook := since(t)
	server, err := c.startAPIServer(ctx)
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	if !bytes.Equal(server.servingCA, c.Config.CAData) {
		// Config is shared and must not change; this would only happen if
		// ExtraAPIServerFlags chose a generated serving certificate.
		server.stop()
		return errors.New("controlplane: restarted kube-apiserver has a different serving CA")
	}
	c.setServer(server)
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	c.log("controlplane: kube-apiserver restarted in %s (stop %s)", since(t), stopTook)
	return nil
}

// WriteKubeconfig writes a kubeconfig file for the admin config (embedding CA
// data and client certificate, or whatever credentials Config holds), so that
// kubectl-like tools and our CLI can connect. The file is written with mode
// 0600 because it holds a private key.
func (c *ControlPlane) WriteKubeconfig(path string) error {
	return writeKubeconfig(c.Config, path)
}

// NewProxy starts a Proxy in front of the API server. Stop closes it if the
// test has not.
func (c *ControlPlane) NewProxy() (*Proxy, error) {
	c.proxiesMu.Lock()
	defer c.proxiesMu.Unlock()
	if c.proxiesClosed {
		return nil, errors.New("controlplane: stopped")
	}
	p, err := newProxy(c.backendAddr, c.Config, c.forgetProxy)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	c.proxies[p] = struct{}{}
	return p, nil
}

// WriteKubeconfig writes a kubeconfig file like ControlPlane.WriteKubeconfig
// whose server is this proxy, so a CLI under test can be partitioned too.
func (p *Proxy) WriteKubeconfig(path string) error {
	return writeKubeconfig(p.Config(), path)
}

func (c *ControlPlane) forgetProxy(p *Proxy) {
	c.proxiesMu.Lock()
	defer c.proxiesMu.Unlock()
	delete(c.proxies, p)
}

func (c *ControlPlane) log(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

func (c *ControlPlane) startAPIServer(ctx context.Context) (*apiServer, error) {
	var logf func(string, ...any)
	if c.opts.Verbose {
		logf = c.log
	}
	return startAPIServer(ctx, &c.bg, c.EtcdURL, c.EtcdPrefix, c.flags, logf)
}

func (c *ControlPlane) setServer(s *apiServer) {
	c.server = s
	c.backendMu.Lock()
	defer c.backendMu.Unlock()
	c.backend = ""
	if s != nil {
		c.backend = s.addr
	}
}

func (c *ControlPlane) backendAddr() (string, error) {
	c.backendMu.RLock()
	defer c.backendMu.RUnlock()
	if c.backend == "" {
		return "", errors.New("kube-apiserver is not running")
	}
	return c.backend, nil
}

// waitReady polls through Config, which also proves that the forwarder, the
// serving CA and the admin certificate work, not just the server.
func (c *ControlPlane) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg := rest.CopyConfig(c.Config)
	cfg.Timeout = 10 * time.Second
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	defer httpClient.CloseIdleConnections()
	client, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}

	var lastErr error
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		lastErr = c.ready(ctx, client)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("controlplane: kube-apiserver not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-ticker.C:
		}
	}
}

func (c *ControlPlane) ready(ctx context.Context, client kubernetes.Interface) error {
	body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w", err)
	}
	if strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("/readyz: %q", body)
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("namespace default: %w", err)
	}
	return nil
}

func writeKubeconfig(cfg *rest.Config, path string) error {
	const name = "leadership-e2e"
	cluster := clientcmdapi.NewCluster()
	cluster.Server = cfg.Host
	cluster.CertificateAuthority = cfg.CAFile
	cluster.CertificateAuthorityData = cfg.CAData
	cluster.TLSServerName = cfg.ServerName
	cluster.InsecureSkipTLSVerify = cfg.Insecure

	auth := clientcmdapi.NewAuthInfo()
	auth.ClientCertificate = cfg.CertFile
	auth.ClientCertificateData = cfg.CertData
	auth.ClientKey = cfg.KeyFile
	auth.ClientKeyData = cfg.KeyData
	auth.Token = cfg.BearerToken
	auth.TokenFile = cfg.BearerTokenFile
	auth.Username = cfg.Username
	auth.Password = cfg.Password

	kctx := clientcmdapi.NewContext()
	kctx.Cluster = name
	kctx.AuthInfo = name
	kctx.Namespace = metav1.NamespaceDefault

	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = cluster
	kc.AuthInfos[name] = auth
	kc.Contexts[name] = kctx
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("controlplane: write kubeconfig: %w", err)
	}
	return nil
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(10 * time.Millisecond)
}
