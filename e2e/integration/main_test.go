// Package integration runs the elector against a real kube-apiserver backed
// by a real etcd, both started in this test process.
package integration

import (
	"os"
	"testing"

	"github.com/leadership-dev/leadership/e2e/controlplane"
)

// cp is shared by every test of the package; each test uses its own Lease.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
}
