package podlock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a helper process: PODLOCK_HELPER
// says what to do.
const helperEnv = "PODLOCK_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		// Take the lock, say so, and keep it until killed.
		h, err := Acquire(os.Getenv("PODLOCK_PATH"))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("held", h.Proof())
		idle()
		runtime.KeepAlive(h) // its finalizer would close the descriptor
	case "inherit":
		// Hold nothing of our own: fd 3 is the inherited lock, left as
		// it is (an *os.File around it could be finalized and closed).
		if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err != nil {
			fmt.Println("error no fd 3:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		idle()
	case "try":
		h, err := Acquire(os.Getenv("PODLOCK_PATH"))
		switch {
		case errors.Is(err, ErrHeld):
			fmt.Println("busy")
		case err != nil:
			fmt.Println("error", err)
		default:
			fmt.Println("held", h.Proof())
		}
		os.Exit(0)
	}
}

// idle keeps a helper process alive until it is killed. (A bare select {}
// would end it: the runtime reports a deadlock when nothing can run.)
func idle() {
	for {
		time.Sleep(time.Hour)
	}
}

// helper starts the test binary as a helper and returns it with the first
// line it printed.
func helper(t *testing.T, mode, path string, extra ...*os.File) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PODLOCK_PATH="+path)
	cmd.ExtraFiles = extra
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	return cmd, strings.TrimSpace(line)
}

func try(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("env", helperEnv+"=try", "PODLOCK_PATH="+path, os.Args[0], "-test.run=^$").Output()
	if err != nil {
		t.Fatalf("try: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

func TestAnotherProcessHoldsUntilKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName("Lease default/db"))
	holder, line := helper(t, "hold", path)
	proofHeld, ok := strings.CutPrefix(line, "held ")
	if !ok {
		t.Fatalf("holder: %s", line)
	}
	if _, err := Acquire(path); !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire while another process holds the lock: %v, want ErrHeld", err)
	}
	if got := try(t, path); got != "busy" {
		t.Fatalf("a third process got %q while the lock is held", got)
	}
	kill(t, holder)
	h, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	defer h.Close()
	if h.Proof() != proofHeld {
		t.Errorf("same file, same boot: proof %q, the dead holder's was %q", h.Proof(), proofHeld)
	}
}

func TestInheritedDescriptorKeepsTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	h, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	// A child that inherits the descriptor (as everything a term starts
	// does) keeps the lock after this process closed its own.
	child, line := helper(t, "inherit", path, h.File())
	if line != "ready" {
		t.Fatalf("child: %s", line)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := try(t, path); got != "busy" {
		t.Fatalf("with the inheriting child alive: %q, want busy", got)
	}
	kill(t, child)
	if got := try(t, path); !strings.HasPrefix(got, "held ") {
		t.Fatalf("after the child died: %q, want held", got)
	}
}

func TestCloseOnExecByDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	h, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	// A child started without ExtraFiles must not hold the lock.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	h.Close()
	if got := try(t, path); !strings.HasPrefix(got, "held ") {
		t.Fatalf("a child started without the descriptor kept the lock: %q", got)
	}
}

func TestProofChangesWhenTheFileIsReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lock")
	h, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	first := h.Proof()
	h.Close()
	h, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Proof() != first {
		t.Fatalf("reopening the same file changed the proof: %q then %q", first, h.Proof())
	}
	h.Close()
	// Wiped: the same path, a new file. Even if the inode number is
	// reused, the nonce differs.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Proof() == first {
		t.Fatalf("a re-created file has the old proof %q", first)
	}
	// Another directory (another pod's emptyDir): another proof.
	o, err := Acquire(filepath.Join(t.TempDir(), "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Proof() == h.Proof() {
		t.Fatal("two files share a proof")
	}
}

func TestProofNamesTheBoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	a, err := acquire(path, "boot-a")
	if err != nil {
		t.Fatal(err)
	}
	pa := a.Proof()
	a.Close()
	b, err := acquire(path, "boot-b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Proof() == pa {
		t.Fatal("the same file after a reboot has the same proof")
	}
	id, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 16 {
		t.Fatalf("boot id %q", id)
	}
}

func TestStateSurvivesAndGarbageStartsAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	h, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	want := State{Start: 90 * time.Second, Token: 1234, Quick: 2}
	if err := h.Save(want); err != nil {
		t.Fatal(err)
	}
	nonce, proof := h.State().Nonce, h.Proof()
	h.Close()
	h, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	want.Nonce = nonce
	if got := h.State(); got != want {
		t.Fatalf("state read back %+v, want %+v", got, want)
	}
	h.Close()
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err = Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if st := h.State(); st.Nonce == nonce || st.Token != 0 || st.Start != 0 {
		t.Fatalf("an unreadable file kept its history: %+v", st)
	}
	if h.Proof() == proof {
		t.Fatal("an unreadable file kept its proof")
	}
}

func TestFileName(t *testing.T) {
	a, b := FileName("Lease default/db"), FileName("Lease default/db2")
	if a == b || !strings.HasSuffix(a, ".lock") || strings.ContainsAny(a, "/ ") {
		t.Fatalf("file names %q, %q", a, b)
	}
	if FileName("Lease default/db") != a {
		t.Fatal("not deterministic")
	}
	if err := CheckDir("relative"); err == nil {
		t.Fatal("a relative directory passed")
	}
	if err := CheckDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing directory passed")
	}
}
