package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports; the kernel fixes it for
// user space whatever the internal tick rate.
const clockTicks = 100

// procSample is one reading of a process's accounting.
type procSample struct {
	At  time.Time
	CPU time.Duration // user + system, all threads, since the process started
	RSS int64         // resident set, bytes
	HWM int64         // peak resident set, bytes
}

// readProc reads /proc/PID/stat and /proc/PID/status.
func readProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read CPU time of process %d: %w (the bench needs Linux /proc)", pid, err)
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are fixed: state is field 3, utime 14,
	// stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTicks

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("unexpected /proc/%d/status line %q", pid, sc.Text())
		}
		if k == "VmRSS" {
			s.RSS = kb * 1024
		} else {
			s.HWM = kb * 1024
		}
	}
	return s, sc.Err()
}

// loadAvg is /proc/loadavg's three figures: the machine is shared, so every
// measurement says how busy it was.
type loadAvg struct {
	Phase  string    `json:"phase"`
	At     time.Time `json:"at"`
	Load1  float64   `json:"load1"`
	Load5  float64   `json:"load5"`
	Load15 float64   `json:"load15"`
}

func readLoad(phase string) loadAvg {
	l := loadAvg{Phase: phase, At: time.Now()}
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		l.Load1, _ = strconv.ParseFloat(f[0], 64)
		l.Load5, _ = strconv.ParseFloat(f[1], 64)
		l.Load15, _ = strconv.ParseFloat(f[2], 64)
	}
	return l
}
