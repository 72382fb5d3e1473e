package badinput

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

// selfSigned returns a fresh self-signed certificate and key, PEM-encoded:
// a CA nobody trusts, or a client certificate no CA signed.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// closedPort returns an address on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableOrMismatchedAPIServer points candidates at an API server
// they cannot use. New succeeds (it does no I/O); Run logs why it cannot
// read the Lease, in words an operator can act on, keeps retrying without
// electing anyone, and returns nil promptly when stopped.
func TestUnreachableOrMismatchedAPIServer(t *testing.T) {
	host, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  func(t *testing.T) *rest.Config
		want string
	}{
		{"nothing listening", func(t *testing.T) *rest.Config {
			cfg := rest.CopyConfig(cp.Config)
			cfg.Host = "https://" + closedPort(t)
			return cfg
		}, "connection refused"},
		{"serving certificate from an unknown CA", func(t *testing.T) *rest.Config {
			cfg := rest.CopyConfig(cp.Config)
			cfg.CAData, _ = selfSigned(t, "some other CA")
			return cfg
		}, "certificate signed by unknown authority"},
		{"serving certificate for another name", func(t *testing.T) *rest.Config {
			cfg := rest.CopyConfig(cp.Config)
			cfg.ServerName = "not-the-apiserver.example"
			return cfg
		}, "not-the-apiserver.example"},
		{"plain HTTP to the TLS port", func(t *testing.T) *rest.Config {
			return &rest.Config{Host: "http://" + host.Host}
		},
			// client-go turns the server's 400 "Client sent an HTTP request
			// to an HTTPS server." into this generic message and keeps the
			// server's words only in the error's details, which kubelease
			// does not print yet: the one case here whose message does not
			// say what to do.
			"the server rejected our request for an unknown reason"},
		{"client certificate no CA signed", func(t *testing.T) *rest.Config {
			cfg := rest.CopyConfig(cp.Config)
			cfg.CertData, cfg.KeyData = selfSigned(t, "mallory")
			return cfg
		}, "rejected this replica's credentials"},
		{"unknown bearer token", func(t *testing.T) *rest.Config {
			return &rest.Config{Host: cp.Config.Host, BearerToken: "not-a-token", TLSClientConfig: rest.TLSClientConfig{CAData: cp.Config.CAData}}
		}, "rejected this replica's credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			log, buf := newLog(t)
			rec := &record{}
			cand := startCandidate(t, c.cfg(t), e2etest.LeaseName(t), "cand-0", rec, log)
			e2etest.Eventually(t, time.Minute, "a log line saying "+c.want, func() bool { return strings.Contains(buf.String(), c.want) })
			if !strings.Contains(buf.String(), "cannot read the lock") {
				t.Error("the log does not say that the Lease cannot be read")
			}
			if n := rec.terms(); n != 0 {
				t.Errorf("%d terms without a usable API server", n)
			}
			if l := cand.e.Leader(); l.Identity != "" {
				t.Errorf("leader %+v without a usable API server", l)
			}
			// Not wedged: it is running and retrying, which is what it
			// should do until the API server is reachable.
			if err := cand.e.Healthy(); err != nil {
				t.Errorf("Healthy: %v", err)
			}
			cand.stop(t)
		})
	}
}
