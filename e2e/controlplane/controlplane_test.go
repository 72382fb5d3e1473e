package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// cp is shared by all tests of the package; each test uses its own Lease names.
var cp *ControlPlane

func TestMain(m *testing.M) {
	os.Exit(Main(m, Options{}, func(c *ControlPlane) { cp = c }))
}

const ns = metav1.NamespaceDefault

func uniqueName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	base := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return base + "-" + hex.EncodeToString(b)
}

func newClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(httpClient.CloseIdleConnections)
	client, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func createLease(t *testing.T, client kubernetes.Interface, name string) *coordinationv1.Lease {
	t.Helper()
	holder := "candidate-a"
	duration := int32(15)
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &holder,
			LeaseDurationSeconds: &duration,
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := client.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create lease %s: %v", name, err)
	}
	return created
}

func getLease(client kubernetes.Interface, name string, timeout time.Duration) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return client.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
}

func checkHolder(lease *coordinationv1.Lease, want string) error {
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != want {
		return errors.New("unexpected holder identity")
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func TestLeaseThroughConfig(t *testing.T) {
	client := newClient(t, rest.CopyConfig(cp.Config))
	name := uniqueName(t)
	created := createLease(t, client, name)
	got, err := getLease(client, name, 30*time.Second)
	if err != nil {
		t.Fatalf("get lease: %v", err)
	}
	if got.UID != created.UID || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("got uid/rv %s/%s, want %s/%s", got.UID, got.ResourceVersion, created.UID, created.ResourceVersion)
	}
	if err := checkHolder(got, "candidate-a"); err != nil {
		t.Fatal(err)
	}
}

func TestProxyFaults(t *testing.T) {
	p, err := cp.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cfg := p.Config()
	if cfg.Host == cp.Config.Host {
		t.Fatalf("proxy config points at the control plane (%s), not the proxy", cfg.Host)
	}
	client := newClient(t, cfg)
	name := uniqueName(t)
	createLease(t, client, name)
	if _, err := getLease(client, name, 30*time.Second); err != nil {
		t.Fatalf("get through proxy: %v", err)
	}
	if n := p.Connections(); n < 1 {
		t.Fatalf("Connections() = %d after requests, want >= 1", n)
	}

	t.Run("blackhole", func(t *testing.T) {
		p.Blackhole()
		t.Cleanup(p.Restore)
		start := time.Now()
		_, err := getLease(client, name, 2*time.Second)
		elapsed := time.Since(start)
		if err == nil {
			t.Fatal("get succeeded through a blackholed proxy")
		}
		if !isTimeout(err) {
			t.Fatalf("want a timeout, got %v", err)
		}
		if elapsed < 1500*time.Millisecond {
			t.Fatalf("failed after %s, want a hang until the 2s timeout: %v", elapsed, err)
		}
		t.Logf("blackholed get failed after %s: %v", elapsed.Round(time.Millisecond), err)

		// A fresh client's new connection must hang too.
		fresh := newClient(t, p.Config())
		if _, err := getLease(fresh, name, 2*time.Second); err == nil || !isTimeout(err) {
			t.Fatalf("new connection while blackholed: want a timeout, got %v", err)
		}

		p.Restore()
		e2etest.Eventually(t, 30*time.Second, "get after Restore", func() error {
			_, err := getLease(client, name, 5*time.Second)
			return err
		})
	})

	t.Run("reset", func(t *testing.T) {
		p.Reset()
		t.Cleanup(p.Restore)
		// Creates are not retried by client-go (a GET is, 10 times, one
		// second apart), so they show how fast the failure is. The first
		// request hits the reset connection, the second a new one.
		for _, c := range []kubernetes.Interface{client, newClient(t, p.Config())} {
			before := p.Connections()
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Namespace: ns}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now()
			_, err := c.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{})
			elapsed := time.Since(start)
			cancel()
			if err == nil {
				t.Fatal("create succeeded through a reset proxy")
			}
			if isTimeout(err) || elapsed > 5*time.Second {
				t.Fatalf("want a fast failure, got %v after %s", err, elapsed)
			}
			t.Logf("create through reset proxy failed after %s (%d new connections): %v",
				elapsed.Round(time.Millisecond), p.Connections()-before, err)
		}

		p.Restore()
		e2etest.Eventually(t, 30*time.Second, "get after Restore", func() error {
			_, err := getLease(client, name, 5*time.Second)
			return err
		})
	})

	t.Run("latency", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		p.SetLatency(delay)
		t.Cleanup(func() { p.SetLatency(0) })
		start := time.Now()
		if _, err := getLease(client, name, 30*time.Second); err != nil {
			t.Fatalf("get with latency: %v", err)
		}
		// One delay each way at least.
		if elapsed := time.Since(start); elapsed < 2*delay {
			t.Fatalf("get took %s, want >= %s", elapsed, 2*delay)
		}
		p.SetLatency(0)
		e2etest.Eventually(t, 30*time.Second, "fast get after SetLatency(0)", func() error {
			start := time.Now()
			if _, err := getLease(client, name, 5*time.Second); err != nil {
				return err
			}
			if elapsed := time.Since(start); elapsed >= delay {
				return errors.New("still slow: " + elapsed.String())
			}
			return nil
		})
	})

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRestartAPIServer(t *testing.T) {
	client := newClient(t, rest.CopyConfig(cp.Config))
	p, err := cp.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	proxied := newClient(t, p.Config())

	name := uniqueName(t)
	created := createLease(t, client, name)
	if _, err := getLease(proxied, name, 30*time.Second); err != nil {
		t.Fatalf("get through proxy before restart: %v", err)
	}
	host := cp.Config.Host

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := cp.RestartAPIServer(ctx); err != nil {
		t.Fatalf("RestartAPIServer: %v", err)
	}
	t.Logf("restart took %s", time.Since(start).Round(time.Millisecond))
	if cp.Config.Host != host {
		t.Fatalf("Config.Host changed from %s to %s", host, cp.Config.Host)
	}

	for what, c := range map[string]kubernetes.Interface{
		"client from before the restart": client,
		"new client from Config":         newClient(t, rest.CopyConfig(cp.Config)),
		"client through proxy":           proxied,
	} {
		e2etest.Eventually(t, 30*time.Second, what, func() error {
			got, err := getLease(c, name, 5*time.Second)
			if err != nil {
				return err
			}
			if got.UID != created.UID {
				return errors.New("lease was recreated: uid " + string(got.UID))
			}
			return checkHolder(got, "candidate-a")
		})
	}
	// Writes work too, not only reads from the watch cache.
	createLease(t, client, name+"-after")
}

func TestWriteKubeconfig(t *testing.T) {
	name := uniqueName(t)
	createLease(t, newClient(t, rest.CopyConfig(cp.Config)), name)

	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("kubeconfig mode %v: readable by others, but it holds a private key", perm)
	}

	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		t.Fatalf("client config from kubeconfig: %v", err)
	}
	got, err := getLease(newClient(t, cfg), name, 30*time.Second)
	if err != nil {
		t.Fatalf("get lease via kubeconfig: %v", err)
	}
	if err := checkHolder(got, "candidate-a"); err != nil {
		t.Fatal(err)
	}

	// The proxy variant points at the proxy.
	p, err := cp.NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	proxyPath := filepath.Join(t.TempDir(), "kubeconfig-proxy")
	if err := p.WriteKubeconfig(proxyPath); err != nil {
		t.Fatal(err)
	}
	proxyCfg, err := clientcmd.BuildConfigFromFlags("", proxyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getLease(newClient(t, proxyCfg), name, 30*time.Second); err != nil {
		t.Fatalf("get lease via proxy kubeconfig: %v", err)
	}
	if p.Connections() < 1 {
		t.Fatal("proxy kubeconfig did not go through the proxy")
	}
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if c, err := Start(ctx, Options{}); err == nil || !errors.Is(err, context.Canceled) {
		if c != nil {
			c.Stop()
		}
		t.Fatalf("Start with a canceled context: got %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Start with a canceled context took %s", elapsed)
	}

	if c, err := Start(context.Background(), Options{ExtraAPIServerFlags: []string{"--client-ca-file=/nonexistent"}}); err == nil {
		c.Stop()
		t.Fatal("Start accepted --client-ca-file in ExtraAPIServerFlags")
	}

	// Stop is idempotent; a second Stop of the shared one happens in Main.
	other := &ControlPlane{}
	other.Stop()
	other.Stop()
}
