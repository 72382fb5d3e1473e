// Package badinput feeds the elector bad input that only a real API server
// can produce: Leases edited into garbage, a Role missing a verb (the API
// server runs with --authorization-mode=RBAC), an unreachable API server,
// one with a TLS certificate or credentials that do not match. Each gets a
// clear error or a documented safe interpretation; never a panic, never
// two leaders, never a leader working past its term's validity.
//
// Invalid Config values are unit-tested in the library (config_test.go:
// TestConfigInvalid and FuzzConfig).
package badinput

import (
	"os"
	"testing"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

// cp is shared by the package's tests; each uses its own Lease and user.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m, controlplane.Options{
		ExtraAPIServerFlags: []string{"--authorization-mode=RBAC"},
	}, func(c *controlplane.ControlPlane) { cp = c }))
}
