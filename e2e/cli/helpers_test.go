package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership/e2e/e2etest"
)

const ns = "default"

func admin(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func getLease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := admin(t).CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Lease %s: %v", name, err)
	}
	return l
}

// holderNow is the Lease's holder, "" if it is released or does not exist
// yet.
func holderNow(t *testing.T, name string) string {
	t.Helper()
	l, err := admin(t).CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return e2etest.HolderOf(l)
}

// proc is one leadership process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout e2etest.SyncBuffer
	stderr e2etest.SyncBuffer
	done   chan struct{}
	code   int
}

// start runs the leadership binary with args (admin kubeconfig unless args
// name another) and stops it, if still running, when the test ends. Its
// output is shown if the test fails.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	if !contains(args, "--kubeconfig") {
		args = append([]string{args[0], "--kubeconfig", adminKubeconfig}, args[1:]...)
	}
	return startProgram(t, name, env, bin, args...)
}

// startProgram runs any program as start does.
func startProgram(t *testing.T, name string, env []string, program string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(program, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s (%s) stderr:\n%s", p.name, strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// run runs the binary to completion and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := start(t, "cli", args...)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("leadership %s did not finish", strings.Join(args, " "))
	}
	return p.code, p.stdout.String(), p.stderr.String()
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.name, timeout)
		return 0
	}
}

var addrRE = regexp.MustCompile(`msg="serving HTTP" .*addr=(\S+)`)

// httpAddr waits for the process to log where it serves HTTP.
func (p *proc) httpAddr(t *testing.T) string {
	t.Helper()
	var addr string
	e2etest.Eventually(t, time.Minute, p.name+" serving HTTP", func() bool {
		m := addrRE.FindStringSubmatch(p.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
