// Package podlock is the pod-local lock file behind the fast takeover of a
// leader that crashed in place (leadership.Config.Restart).
//
// While it leads, a replica holds an exclusive flock(2) on a file in a
// directory that survives a container restart and belongs to one pod (an
// emptyDir). A flock belongs to an open file description: every process
// that inherited a descriptor of it (fork, exec with the descriptor passed
// on) keeps the lock alive, and the kernel frees it only when the last of
// them has closed it — exited, killed, or closed it deliberately. A process
// that opens the file anew and takes the lock without waiting therefore
// knows that no process holding the earlier description is left.
//
// The lock is never released with LOCK_UN, which would free it while
// inherited descriptors are still open: a holder only closes its own
// descriptor.
//
// The file also keeps what must survive the process: a random nonce written
// when the file was created (so a wiped and re-created file is another
// file even if the inode number is reused), when the last term began on the
// boot clock, its fencing token, and the count of quick crashes in a row.
// Proof binds all of it to the file and the boot: boot id, device, inode
// and nonce.
package podlock

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrHeld says that another open file description holds the lock: some
// process that holds (or inherited) it is alive.
var ErrHeld = errors.New("podlock: the lock file is held by another process")

// bootIDPath is where Linux exposes the random id of the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// BootID returns the id the kernel chose at boot: it differs after every
// reboot, so a proof from an earlier boot never matches.
func BootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("podlock: cannot read the boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("podlock: %s is empty", bootIDPath)
	}
	return id, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// FileName is the lock file's name for the lock named lock (e.g. "Lease
// default/db"): readable, and unique per lock through a hash of the full
// name, so that several electors in one pod do not share a file.
func FileName(lock string) string {
	sum := sha256.Sum256([]byte(lock))
	base := strings.Trim(unsafeName.ReplaceAllString(lock, "_"), "_.")
	if len(base) > 80 {
		base = base[:80]
	}
	return "leadership-" + base + "-" + hex.EncodeToString(sum[:6]) + ".lock"
}

// State is what the file keeps across processes.
type State struct {
	// Nonce is written once, when the file is created.
	Nonce string
	// Start is the boot-clock time at which the last term that held the
	// file began.
	Start time.Duration
	// Token is that term's fencing token, written once its acquiring
	// write succeeded (0: unknown, e.g. it crashed before that).
	Token uint64
	// Quick counts the quick crashes in a row judged so far.
	Quick int
	// Valid is the boot-clock time at which that term's validity ends,
	// as of its last successful write (0: unknown). Until then no other
	// replica can have taken the lock over, except on a release.
	Valid time.Duration
	// Released says that the term wrote (or was about to write) its
	// release: a successor may have led at once, on it.
	Released bool
}

// Held is the lock, held by this process through one open file
// description.
type Held struct {
	f     *os.File
	path  string
	proof string
	st    State
}

// Acquire opens (creating it if needed) the lock file at path and takes its
// exclusive lock without waiting. It returns ErrHeld if another open file
// description holds it. The descriptor is close-on-exec, as Go opens every
// file; pass File to a child deliberately (exec.Cmd.ExtraFiles).
func Acquire(path string) (*Held, error) {
	boot, err := BootID()
	if err != nil {
		return nil, err
	}
	return acquire(path, boot)
}

func acquire(path, boot string) (*Held, error) {
	// The file may be replaced (deleted and re-created) between our open
	// and our lock; then the lock we got is on a file nobody else will
	// open again. Try again a few times.
	for range 5 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("podlock: %w", err)
		}
		fd := int(f.Fd())
		for {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrHeld
			}
			return nil, fmt.Errorf("podlock: flock %s: %w", path, err)
		}
		var fst, pst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			f.Close()
			return nil, fmt.Errorf("podlock: fstat %s: %w", path, err)
		}
		if err := unix.Stat(path, &pst); err != nil || pst.Dev != fst.Dev || pst.Ino != fst.Ino {
			f.Close()
			continue
		}
		h := &Held{f: f, path: path}
		st, ok := read(f)
		if !ok {
			// New, empty, or unreadable: a file of its own from now on. A
			// proof written for its earlier content never matches again.
			st = State{Nonce: newNonce()}
			if err := h.write(st); err != nil {
				f.Close()
				return nil, err
			}
		}
		h.st = st
		h.proof = proof(boot, uint64(fst.Dev), fst.Ino, st.Nonce)
		return h, nil
	}
	return nil, fmt.Errorf("podlock: %s keeps being replaced while it is locked", path)
}

func proof(boot string, dev, ino uint64, nonce string) string {
	return fmt.Sprintf("v1:%s:%d:%d:%s", boot, dev, ino, nonce)
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

const header = "leadership podlock v1\n"

func read(f *os.File) (State, bool) {
	b := make([]byte, 4096)
	n, err := f.ReadAt(b, 0)
	if n == 0 || (err != nil && n == len(b)) {
		return State{}, false
	}
	b = b[:n]
	rest, ok := bytes.CutPrefix(b, []byte(header))
	if !ok {
		return State{}, false
	}
	var st State
	sc := bufio.NewScanner(bytes.NewReader(rest))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch k {
		case "nonce":
			st.Nonce = v
		case "start":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			st.Start = time.Duration(ns)
		case "token":
			st.Token, err = strconv.ParseUint(v, 10, 64)
		case "quick":
			st.Quick, err = strconv.Atoi(v)
		case "valid":
			var ns int64
			ns, err = strconv.ParseInt(v, 10, 64)
			st.Valid = time.Duration(ns)
		case "released":
			st.Released, err = strconv.ParseBool(v)
		}
		if err != nil {
			return State{}, false
		}
	}
	if len(st.Nonce) < 16 {
		return State{}, false
	}
	return st, true
}

func (h *Held) write(st State) error {
	s := fmt.Sprintf("%snonce %s\nstart %d\ntoken %d\nquick %d\nvalid %d\nreleased %t\n", header, st.Nonce, int64(st.Start), st.Token, st.Quick, int64(st.Valid), st.Released)
	// One write of a few bytes at offset 0: a kill -9 cannot tear it; a
	// node crash can, but then the boot id changes and no proof matches.
	if _, err := h.f.WriteAt([]byte(s), 0); err != nil {
		return fmt.Errorf("podlock: write %s: %w", h.path, err)
	}
	if err := h.f.Truncate(int64(len(s))); err != nil {
		return fmt.Errorf("podlock: truncate %s: %w", h.path, err)
	}
	return nil
}

// Proof identifies the file and the boot: boot id, device, inode and nonce.
// Two Helds of one file in one boot have the same proof; a deleted and
// re-created file, another pod's volume, or a reboot give another.
func (h *Held) Proof() string { return h.proof }

// State is the file's content as read when the lock was taken, or as last
// saved.
func (h *Held) State() State { return h.st }

// Save writes st, keeping the file's nonce.
func (h *Held) Save(st State) error {
	st.Nonce = h.st.Nonce
	if err := h.write(st); err != nil {
		return err
	}
	h.st = st
	return nil
}

// File is the locked file. Pass it to every process that the term starts
// (exec.Cmd.ExtraFiles), so that the lock outlives this process while they
// live. Do not close it.
func (h *Held) File() *os.File { return h.f }

// Path is the lock file's path.
func (h *Held) Path() string { return h.path }

// Close closes this process's descriptor. The lock is freed once every
// process that inherited the descriptor has closed it too.
func (h *Held) Close() error { return h.f.Close() }

// CheckDir says whether dir can hold lock files: an existing directory.
func CheckDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%q is not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
