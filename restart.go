package leadership

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/leadership-dev/leadership/internal/podlock"
)

// restarter is the elector's side of RestartProof: the pod-local lock file
// it holds while it leads, and the judgement of a dead term of its own pod.
// It is used only from Run's goroutine.
type restarter struct {
	cfg  RestartProof
	path string
	log  *slog.Logger
	// acquire takes the lock file (podlock.Acquire; a test may replace it).
	acquire func(path string) (*podlock.Held, error)

	held      *podlock.Held
	busySince time.Time // when the lock was first found held, for the log
	// verdict is the judgement of the record at verdictVersion: whether
	// its term is proven dead and may be taken over, and from when.
	verdictVersion uint64
	verdictAt      time.Time
}

func newRestarter(cfg RestartProof, lock string, log *slog.Logger) *restarter {
	if !cfg.enabled() {
		return nil
	}
	return &restarter{
		cfg:     cfg,
		path:    filepath.Join(cfg.Dir, podlock.FileName(lock)),
		log:     log,
		acquire: podlock.Acquire,
	}
}

// hold takes the lock file if this process does not hold it yet, without
// waiting. False if another process holds it (a process of an earlier term
// is alive) or it cannot be taken.
func (r *restarter) hold(now time.Time) bool {
	if r.held != nil {
		return true
	}
	h, err := r.acquire(r.path)
	switch {
	case errors.Is(err, podlock.ErrHeld):
		if r.busySince.IsZero() {
			r.busySince = now
			r.log.Info("the restart lock file is held by another process (a process of an earlier term of this pod is alive, or another elector of this Lease in this pod); no fast takeover, and this process's terms publish no proof until it is free", "file", r.path)
		}
		return false
	case err != nil:
		if r.busySince.IsZero() {
			r.busySince = now
			r.log.Warn("cannot take the restart lock file; no fast takeover after a restart in place until it works", "file", r.path, "error", err)
		}
		return false
	}
	if !r.busySince.IsZero() {
		r.log.Info("took the restart lock file", "file", r.path)
	}
	r.busySince = time.Time{}
	r.held = h
	return true
}

// restartPoll is how often a candidate tries the lock file again while the
// record names a term of this replica in this pod and the file is held: the
// old term's last processes may be exiting (a tree being killed), and the
// lock comes free without any change to the record.
const restartPoll = 25 * time.Millisecond

// provenAt says whether the holder of the observed record is a term of
// this replica in this pod whose every process is proven gone, and if so
// from when it may be taken (zero: not proven). It takes the lock file to
// find out, and keeps it: the term that follows holds it. busy says that
// the file was held by another process: worth trying again soon.
func (r *restarter) provenAt(o observation, identity, instance string, now time.Time, bootNow time.Duration) (at time.Time, busy bool) {
	if r == nil || !o.exists {
		return time.Time{}, false
	}
	rec := o.rec
	if rec.HolderIdentity != identity || rec.Instance == instance || rec.Instance == "" ||
		rec.PodUID != r.cfg.PodUID || rec.Proof == "" {
		return time.Time{}, false
	}
	if r.verdictVersion == o.version {
		return r.verdictAt, false
	}
	// From here on the verdict is kept for this version: a crash counts
	// once, however often the campaign looks at the record.
	if !r.hold(now) {
		// Not cached: the lock may come free later (the last process of
		// the old term exits) while the record stays as it is.
		return time.Time{}, true
	}
	return r.judge(o, now, bootNow), false
}

// judge decides on the record o holds, with the lock file held.
func (r *restarter) judge(o observation, now time.Time, bootNow time.Duration) time.Time {
	rec := o.rec
	r.verdictVersion, r.verdictAt = o.version, time.Time{}
	st := r.held.State()
	log := r.log.With("holderInstance", rec.Instance, "version", o.version)
	switch {
	case rec.Proof != r.held.Proof():
		log.Info("the Lease names this replica in this pod, but with another lock file's proof (a wiped volume, or before a reboot); waiting like any candidate", "recorded", rec.Proof, "file", r.held.Proof())
		return time.Time{}
	case st.Token == 0 || rec.TermToken() != st.Token:
		// The file's last term is not the one recorded: the record is
		// an older term of this pod (a store restored from a backup), or
		// the term died before its token was saved.
		log.Info("the Lease names this replica in this pod, but not the last term that held the lock file; waiting like any candidate", "recordedToken", rec.TermToken(), "fileToken", st.Token)
		return time.Time{}
	case st.Released:
		// The term wrote its release (the record seen is older than
		// that: a store restored from a backup): a successor may have
		// led on it at once.
		log.Info("the Lease names a term of this replica in this pod that released the lock; waiting like any candidate", "token", st.Token)
		return time.Time{}
	case bootNow >= st.Valid:
		// Past the dead term's validity, other replicas may have taken
		// the lock over, and a record restored from a backup would not
		// show it. Fast takeover is for a restart within the validity.
		log.Info("the previous process of this replica died, but its term's validity has run out since: others may have taken over; waiting like any candidate", "validityEndedAgo", (bootNow - st.Valid).Round(time.Millisecond))
		return time.Time{}
	}
	ran := bootNow - st.Start
	quick := st.Quick
	if r.cfg.MinTerm > 0 && ran < r.cfg.MinTerm {
		quick++
	} else {
		quick = 0
	}
	st.Quick = quick
	if err := r.held.Save(st); err != nil {
		log.Warn("cannot record the crash in the restart lock file; waiting like any candidate", "error", err)
		return time.Time{}
	}
	if quick >= r.cfg.MaxQuickCrashes {
		log.Warn("the previous process of this replica led and died, but its term was short: a quick crash; waiting like any candidate so that a healthy replica can lead",
			"termRan", ran.Round(time.Millisecond), "minTerm", r.cfg.MinTerm, "quickCrashesInARow", quick, "maxQuickCrashes", r.cfg.MaxQuickCrashes)
		return time.Time{}
	}
	r.verdictAt = now.Add(r.cfg.Delay)
	log.Info("the previous process of this replica led and died in this pod: its lock file is free, so none of its term's processes is alive; taking the Lease over at once",
		"termRan", ran.Round(time.Millisecond), "delay", r.cfg.Delay)
	return r.verdictAt
}

// samePod reports whether r was written by a term of this pod: a restart
// in place, not another process using our identity.
func (r *restarter) samePod(rec Record) bool {
	return r != nil && rec.PodUID == r.cfg.PodUID
}

// beginTerm is called before a write that makes this process the holder.
// It returns the proof to publish: empty if the lock file is not held, so
// that a term whose process could not take the lock never claims it.
func (r *restarter) beginTerm(now time.Time, bootNow time.Duration) (podUID, proof string) {
	if r == nil {
		return "", ""
	}
	if !r.hold(now) {
		return r.cfg.PodUID, ""
	}
	st := r.held.State()
	// The token is unknown until the write returns; a crash before it is
	// saved leaves 0, which never proves anything.
	st.Start, st.Token, st.Valid, st.Released = bootNow, 0, 0, false
	if err := r.held.Save(st); err != nil {
		r.log.Warn("cannot write the restart lock file; this term publishes no proof", "error", err)
		return r.cfg.PodUID, ""
	}
	return r.cfg.PodUID, r.held.Proof()
}

// acquired records the token of the term that now holds the file, and
// the end of its validity on the boot clock.
func (r *restarter) acquired(token uint64, validUntil time.Duration) {
	if r == nil || r.held == nil {
		return
	}
	st := r.held.State()
	st.Token, st.Valid = token, validUntil
	if err := r.held.Save(st); err != nil {
		r.log.Warn("cannot write the term's token to the restart lock file; a crash of this term will be waited out", "error", err)
	}
}

// renewed records the term's validity after a successful write.
func (r *restarter) renewed(validUntil time.Duration) {
	if r == nil || r.held == nil {
		return
	}
	st := r.held.State()
	if st.Token == 0 || validUntil <= st.Valid {
		return
	}
	st.Valid = validUntil
	if err := r.held.Save(st); err != nil {
		r.log.Warn("cannot write the term's validity to the restart lock file", "error", err)
	}
}

// releasing records, before the release is sent, that the term released:
// once it lands a successor may lead at once, so the term must never be
// taken for a dead one, whatever record a restored store shows later. If
// the mark cannot be written, the file's token is cleared instead (a token
// of 0 never proves anything).
func (r *restarter) releasing() {
	if r == nil || r.held == nil {
		return
	}
	st := r.held.State()
	st.Released = true
	if err := r.held.Save(st); err != nil {
		// The file's token no longer matters: a token of 0 never proves.
		st.Token = 0
		if err2 := r.held.Save(st); err2 != nil {
			r.log.Warn("cannot mark the release in the restart lock file; a restore of this term's record from a backup could be taken for a crash", "error", err)
		}
	}
}

// file is the lock file to hand to the term's work, nil if not held.
func (r *restarter) file() *os.File {
	if r == nil || r.held == nil {
		return nil
	}
	return r.held.File()
}

// endTerm closes this process's descriptor once the term's work has
// returned. Processes of the term that inherited it keep the lock until
// they are gone, and then the next term of this process publishes no
// proof.
func (r *restarter) endTerm(bootNow time.Duration) {
	if r == nil || r.held == nil {
		return
	}
	// A term that lasted ends a run of quick crashes, however it ended:
	// they were not in a row.
	if st := r.held.State(); st.Quick != 0 && st.Token != 0 && bootNow-st.Start >= r.cfg.MinTerm {
		st.Quick = 0
		if err := r.held.Save(st); err != nil {
			r.log.Warn("cannot write the restart lock file", "error", err)
		}
	}
	if err := r.held.Close(); err != nil {
		r.log.Warn("cannot close the restart lock file", "error", err)
	}
	r.held = nil
	r.verdictVersion = 0
}
