package contain

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Cgroups makes sub-cgroups in this process's own cgroup v2 directory.
type Cgroups struct {
	parent string
}

// DetectCgroups finds this process's cgroup v2 directory and checks that a
// sub-cgroup with cgroup.kill can be made in it (cgroup v2 mounted
// read-write, the directory writable or delegated to this user, a kernel of
// 5.14 or later). The error says why not.
func DetectCgroups() (*Cgroups, error) {
	mnt, root, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("contain: %w", err)
	}
	var own string
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			own, found = rest, true
		}
	}
	if !found {
		return nil, errors.New("contain: this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")
	}
	rel, err := filepath.Rel(root, own)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("contain: this process's cgroup %s is outside the cgroup2 mount's root %s", own, root)
	}
	parent := filepath.Join(mnt, rel)
	probe := filepath.Join(parent, fmt.Sprintf("leadership-probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return nil, fmt.Errorf("contain: cannot create a sub-cgroup in %s: %w", parent, err)
	}
	defer os.Remove(probe)
	if err := unix.Access(filepath.Join(probe, "cgroup.kill"), unix.W_OK); err != nil {
		return nil, fmt.Errorf("contain: no writable cgroup.kill in a sub-cgroup of %s (kernel before 5.14?): %w", parent, err)
	}
	if err := unix.Access(filepath.Join(probe, "cgroup.procs"), unix.W_OK); err != nil {
		return nil, fmt.Errorf("contain: cannot move processes into a sub-cgroup of %s: %w", parent, err)
	}
	return &Cgroups{parent: parent}, nil
}

// Dir is the cgroup the sub-cgroups are made in.
func (c *Cgroups) Dir() string { return c.parent }

// New creates the sub-cgroup name.
func (c *Cgroups) New(name string) (*Cgroup, error) {
	dir := filepath.Join(c.parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("contain: cannot create cgroup %s: %w", dir, err)
	}
	return &Cgroup{Dir: dir}, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted read-write
// and which of its directories the mount shows as its root.
func cgroup2Mount() (mountpoint, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("contain: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	readOnly := ""
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 6 || len(qf) < 1 || qf[0] != "cgroup2" {
			continue
		}
		opts := "," + pf[5] + ","
		if strings.Contains(opts, ",ro,") {
			readOnly = pf[4]
			continue
		}
		return unescape(pf[4]), unescape(pf[3]), nil
	}
	if readOnly != "" {
		return "", "", fmt.Errorf("contain: cgroup v2 is mounted read-only at %s", readOnly)
	}
	return "", "", errors.New("contain: no cgroup v2 mount in /proc/self/mountinfo")
}

// unescape undoes mountinfo's octal escapes (\040 for a space...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Cgroup is one sub-cgroup holding a supervised tree.
type Cgroup struct {
	Dir string
}

// Open returns a file descriptor of the directory, for starting a process
// straight into the cgroup (SysProcAttr.CgroupFD). The caller closes it.
func (g *Cgroup) Open() (int, error) {
	fd, err := unix.Open(g.Dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("contain: %w", err)
	}
	return fd, nil
}

// Kill sends SIGKILL to every process in the cgroup (cgroup.kill).
func (g *Cgroup) Kill() error {
	if err := os.WriteFile(filepath.Join(g.Dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("contain: %w", err)
	}
	return nil
}

// Populated reports whether any process is left in the cgroup.
func (g *Cgroup) Populated() (bool, error) {
	b, err := os.ReadFile(filepath.Join(g.Dir, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("contain: %w", err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("populated ")); ok {
			return string(v) != "0", nil
		}
	}
	return false, fmt.Errorf("contain: no populated line in %s/cgroup.events", g.Dir)
}

// Remove removes the (empty) cgroup.
func (g *Cgroup) Remove() error {
	if err := unix.Rmdir(g.Dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("contain: cannot remove cgroup %s: %w", g.Dir, err)
	}
	return nil
}
