package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// restartMinTerm is leadership's Config.Restart.MinTerm in the restart
// scenario: the bench kills a leader soon after it began, which with the
// default (30 s) would count as a quick crash, waited out by design.
const restartMinTerm = time.Second

// RestartResult is the crash-and-restart-in-place scenario of one
// implementation: the leader's process is killed with SIGKILL and started
// again at once in the same "pod" (same identity for leadership, same
// directory and pod UID), as the kubelet restarts a crashed container.
type RestartResult struct {
	Impl          Impl          `json:"impl"`
	LeaseDuration time.Duration `json:"lease_duration"`
	// Identity says how a restarted process names itself.
	Identity string `json:"identity"`
	// Takeover is from the kill to the moment any replica (the restarted
	// one or a follower) reports that its work began; the restart of the
	// process is included.
	Takeover Dist `json:"takeover"`
	// ByRestarted counts takeovers won by the restarted process.
	ByRestarted int `json:"by_restarted"`
}

// restartSlot is one replica: its pod's directory and UID survive its
// process.
type restartSlot struct {
	pod, dir, uid string
	proc          *childProc
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func runRestarts(ctx context.Context, e *env, cfg ImplConfig, profile string, n int) (RestartResult, error) {
	res := RestartResult{Impl: cfg.Impl, LeaseDuration: cfg.LeaseDuration}
	if cfg.Impl.ours() {
		res.Identity = "the pod name (stable across restarts), with Config.Restart (MinTerm " + restartMinTerm.String() + ")"
	} else {
		res.Identity = "the pod name plus a random suffix per process, as kube-controller-manager does (with the bare pod name, client-go would take its own record back at once, proof or not)"
	}
	lease := e.leaseName("restart-" + shortName(cfg.Impl) + "-" + profile)
	slots := make([]*restartSlot, 3)
	start := func(s *restartSlot) error {
		id := s.pod
		if !cfg.Impl.ours() {
			id = s.pod + "_" + randHex(4)
		}
		spec := childSpec{Config: cfg, Kubeconfig: e.kubeconfig, Namespace: e.ns, Prefix: lease, Count: 1, Identity: id}
		if cfg.Impl.ours() {
			spec.RestartDir, spec.PodUID, spec.RestartMinTerm = s.dir, s.uid, restartMinTerm
		}
		p, err := e.spawn(lease+"-"+s.pod, spec)
		if err != nil {
			return err
		}
		s.proc = p
		return nil
	}
	for i := range slots {
		dir := filepath.Join(e.dir, lease+fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return res, err
		}
		slots[i] = &restartSlot{pod: fmt.Sprintf("pod-%d", i), dir: dir, uid: randHex(16)}
		if err := start(slots[i]); err != nil {
			return res, err
		}
	}
	defer func() {
		for _, s := range slots {
			_ = s.proc.cmd.Process.Kill()
			<-s.proc.exited
		}
	}()
	wait := 3*cfg.LeaseDuration + 30*time.Second
	leader := func() *restartSlot {
		for _, s := range slots {
			if l, _ := s.proc.state(); l > 0 {
				return s
			}
		}
		return nil
	}
	var takeovers []time.Duration
	for len(takeovers) < n {
		var victim *restartSlot
		deadline := time.Now().Add(wait)
		for victim = leader(); victim == nil; victim = leader() {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("%s restart %d: no leader within %v", cfg.Impl, len(takeovers)+1, wait)
			}
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return res, err
			}
		}
		// Past MinTerm, then at a random phase of its renewals.
		began := victim.proc.lastLeadStart()
		if err := sleepCtx(ctx, max(0, restartMinTerm+cfg.RenewEvery/2-time.Since(began))+mrand.N(cfg.RenewEvery)); err != nil {
			return res, err
		}
		killAt := time.Now()
		_ = victim.proc.cmd.Process.Kill()
		<-victim.proc.exited
		if err := start(victim); err != nil {
			return res, err
		}
		var next time.Time
		var by *restartSlot
		deadline = time.Now().Add(wait)
		for next.IsZero() {
			for _, s := range slots {
				if t := s.proc.lastLeadStart(); t.After(killAt) {
					next, by = t, s
				}
			}
			if next.IsZero() {
				if time.Now().After(deadline) {
					return res, fmt.Errorf("%s restart %d: nobody led within %v of the kill", cfg.Impl, len(takeovers)+1, wait)
				}
				if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
					return res, err
				}
			}
		}
		takeovers = append(takeovers, next.Sub(killAt))
		if by == victim {
			res.ByRestarted++
		}
		e.logf("%s restart %d: led again %v after the kill (%s)", cfg.Impl, len(takeovers), next.Sub(killAt).Round(time.Millisecond), by.pod)
	}
	res.Takeover = newDist(takeovers)
	return res, nil
}
