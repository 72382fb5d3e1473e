package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
)

func newHandoverCmd(g *globalFlags, stdout io.Writer) *cobra.Command {
	var lease, to, output string
	var timeout, pingTimeout time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "handover --lease NAME [--to ID [--ping-timeout D | --force]] [--timeout D] [-o text|json|yaml]",
		Short: "Ask the holder to step down, optionally in favour of a named replica",
		Long: `Ask the holder of the Lease to hand over: it stops its work, releases the
Lease, and another replica takes it within milliseconds. With --to, the named
replica (an identity as 'leadership status' shows it, and as each replica
logs it in its "campaigning" line) gets a head start of one renew interval on
the released Lease; without it, any other replica may take it.

With --to, the command first checks that the named replica is a live
candidate of the Lease: it writes a probe on the Lease (the annotation
leadership.dev/ping), which that replica answers (leadership.dev/pong) as soon
as it sees it. If no answer comes within --ping-timeout, the command removes
the probe and refuses at once, exit 1: the holder is not disturbed. Replicas
that cannot answer probes (client-go's elector, or leadership built before
probes existed) need --force, which skips the check; a handover forced to a
replica that is not running costs one needless change of leader (the holder
stops its work and steps down, and after the head start another replica, or
the same, takes the Lease). The probe and its answer change the Lease's
metadata only: no term ends and no replica's countdown moves.

The request is the annotation leadership.dev/preferred-holder on the Lease,
written with a compare-and-swap update (that also removes the probe). The
command returns once the holder has changed (to the named replica, if given).
If that does not happen within --timeout, or the Lease goes to another replica
than the one named, the request is withdrawn (so that it does not linger and
bounce the Lease later) and the command fails: exit 5 on a timeout, 1
otherwise. Holders that do not understand the request (client-go's elector)
ignore it.

With -o json or -o yaml, a successful handover prints an object (namespace,
lease, from, to, token, seconds) instead of the sentence.

Needs the verbs get, watch and update on the Lease.

` + exitCodesHelp,
		Example: `  # let any other replica take over
  leadership handover --lease credential-renewer

  # move leadership to a given replica, e.g. before draining the holder's node
  leadership handover --lease credential-renewer --to renewer-5d8f-2a91c3e0 --timeout 1m

  # to a client-go replica, which cannot answer the liveness probe
  leadership handover --lease credential-renewer --to controller-7c9d --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkLeaseName(lease); err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErrorf("invalid --timeout %v: must be positive", timeout)
			}
			if pingTimeout <= 0 {
				return usageErrorf("invalid --ping-timeout %v: must be positive", pingTimeout)
			}
			if output != "text" && output != "json" && output != "yaml" {
				return usageErrorf("invalid -o %q: use text, json or yaml", output)
			}
			if to == leadership.AnyOtherHolder {
				to = ""
			}
			if force && to == "" {
				return usageErrorf("--force skips the liveness check of the replica named by --to; without --to there is nothing to check")
			}
			if force && cmd.Flags().Changed("ping-timeout") {
				return usageErrorf("--force skips the liveness probe, so --ping-timeout has no effect: pass one or the other")
			}
			k, err := g.connect(nil)
			if err != nil {
				return err
			}
			h := &handoverCmd{k: k, g: g, name: lease, to: to, timeout: timeout, pingTimeout: pingTimeout, force: force, output: output, stdout: stdout}
			return h.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&lease, "lease", "l", "", "name of the Lease (required)")
	fs.StringVar(&to, "to", "", "identity of the replica that should take over (default: any other)")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the holder to change")
	fs.DurationVar(&pingTimeout, "ping-timeout", defaultPingTimeout, "how long the replica named by --to has to answer the liveness probe; raise it for replicas that poll the Lease (watch forbidden) with a --retry-period above 3s")
	fs.StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	fs.BoolVar(&force, "force", false, "hand over to --to without checking that it is a live candidate (for client-go replicas, which do not answer the probe)")
	return cmd
}

// defaultPingTimeout covers a replica that polls the Lease (watching
// forbidden) with the default retry period (at most 2s, plus 20% jitter),
// with room for a compare-and-swap conflict with the holder's renewal. A
// replica that watches answers in milliseconds.
const defaultPingTimeout = 5 * time.Second

// handoverResult is a done handover as -o json and -o yaml print it.
type handoverResult struct {
	Namespace string `json:"namespace"`
	Lease     string `json:"lease"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Token is the new holder's fencing token (0: not known yet).
	Token   uint64  `json:"token"`
	Seconds float64 `json:"seconds"`
}

type handoverCmd struct {
	k                    *kube
	g                    *globalFlags
	name, to             string
	timeout, pingTimeout time.Duration
	force                bool
	output               string
	stdout               io.Writer
}

func (h *handoverCmd) leases() coordinationv1client.LeaseInterface {
	return h.k.client.CoordinationV1().Leases(h.k.namespace)
}

func (h *handoverCmd) what() string { return fmt.Sprintf("Lease %s/%s", h.k.namespace, h.name) }

// errAlreadyHolds: the replica named by --to holds the Lease; nothing to do.
var errAlreadyHolds = errors.New("already holds the Lease")

// update reads the Lease, lets change check and modify it, and writes it
// back with a compare-and-swap, again on a conflict (the holder renews
// meanwhile). An error from change ends it, as is.
func (h *handoverCmd) update(ctx context.Context, change func(l *coordinationv1.Lease, r leadership.Record) error) (leadership.Record, *coordinationv1.Lease, error) {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		l, err := h.leases().Get(rctx, h.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			defer cancel()
			return leadership.Record{}, nil, h.k.leaseNotFound(rctx, h.name)
		}
		if err != nil {
			cancel()
			return leadership.Record{}, nil, h.k.apiError("get", h.what(), err)
		}
		r, err := kubelease.Decode(l)
		if err != nil {
			cancel()
			return leadership.Record{}, nil, withCode(exitFailure, err)
		}
		l = l.DeepCopy()
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		if err := change(l, r); err != nil {
			cancel()
			return r, l, err
		}
		out, err := h.leases().Update(rctx, l, metav1.UpdateOptions{})
		cancel()
		if apierrors.IsConflict(err) && attempt < 20 {
			continue
		}
		if err != nil {
			return leadership.Record{}, nil, h.k.apiError("update", h.what(), err)
		}
		r, err = kubelease.Decode(out)
		if err != nil {
			return leadership.Record{}, nil, withCode(exitFailure, err)
		}
		return r, out, nil
	}
}

// check refuses a request that cannot be made on r.
func (h *handoverCmd) check(l *coordinationv1.Lease, r leadership.Record) error {
	switch {
	case r.HolderIdentity == "":
		return withCode(exitFailure, fmt.Errorf("%s is not held (it was released): there is nothing to hand over; the next replica to campaign takes it", h.what()))
	case h.to != "" && r.HolderIdentity == h.to:
		return errAlreadyHolds
	}
	if sp := l.Spec.PreferredHolder; sp != nil && *sp != "" && *sp != r.HolderIdentity {
		// It hides any request in the annotation (see kubelease.Decode).
		return withCode(exitFailure, fmt.Errorf("%s: a handover to %s is already in progress, asked by a coordinator of Coordinated Leader Election (spec.preferredHolder, strategy %q); wait for it to complete", h.what(), *sp, ptrString(l.Spec.Strategy)))
	}
	return nil
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

func (h *handoverCmd) run(ctx context.Context) error {
	want := h.to
	if want == "" {
		want = leadership.AnyOtherHolder
	}
	ping := ""
	if h.to != "" && !h.force {
		var cur leadership.Record
		var err error
		if ping, cur, err = h.probe(ctx); err != nil {
			if errors.Is(err, errAlreadyHolds) {
				return h.alreadyHolds(cur)
			}
			return err
		}
	}

	// Write the request, and remove the answered probe in the same write.
	var from leadership.Record
	var asked time.Time
	cur, _, err := h.update(ctx, func(l *coordinationv1.Lease, r leadership.Record) error {
		if err := h.check(l, r); err != nil {
			return err
		}
		from = r
		l.Annotations[kubelease.AnnotationPreferredHolder] = want
		dropProbe(l, ping)
		asked = time.Now()
		return nil
	})
	if errors.Is(err, errAlreadyHolds) {
		// The named replica took the Lease while it was being probed.
		if ping != "" {
			h.removeProbe(ctx, ping)
		}
		return h.alreadyHolds(cur)
	}
	if err != nil {
		if ping != "" {
			h.removeProbe(ctx, ping)
		}
		return err
	}
	h.g.log.Debug("handover requested", "lease", h.what(), "holder", from.HolderIdentity, "to", want)

	lock, err := kubelease.New(h.k.client.CoordinationV1(), h.k.namespace, h.name)
	if err != nil {
		return withCode(exitUsage, err)
	}
	wctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	res, err := awaitHandover(wctx, lock, from, h.to)
	took := time.Since(asked)
	if err == nil && h.output != "text" {
		return printObject(h.stdout, h.output, handoverResult{Namespace: h.k.namespace, Lease: h.name, From: from.HolderIdentity, To: res.HolderIdentity, Token: res.Version, Seconds: took.Seconds()})
	}
	if err == nil {
		fmt.Fprintf(h.stdout, "%s handed over from %s to %s in %v (fencing token %d)\n", h.what(), from.HolderIdentity, res.HolderIdentity, took.Round(time.Millisecond), res.Version)
		return nil
	}
	// Withdraw the request, so that it cannot bounce the Lease later.
	withdrawn := withdraw(ctx, h.leases(), h.name, want)
	note := " The request was withdrawn."
	if !withdrawn {
		note = " The request could not be withdrawn: remove the annotation " + kubelease.AnnotationPreferredHolder + " from the Lease by hand."
	}
	var wrong *wrongSuccessor
	switch {
	case errors.As(err, &wrong):
		return withCode(exitFailure, fmt.Errorf("%s: %v.%s", h.what(), wrong, note))
	case wctx.Err() != nil && ctx.Err() == nil:
		cur := from.HolderIdentity
		if r, gerr := lock.Get(ctx); gerr == nil {
			cur = r.HolderIdentity
		}
		why := fmt.Sprintf("the holder %s did not step down within %v: it may not understand handover requests (client-go electors ignore them), be unable to reach the API server, or its work may take long to stop", from.HolderIdentity, h.timeout)
		if cur != from.HolderIdentity {
			why = fmt.Sprintf("%s stepped down but %s did not take over within %v (holder now %q): is a replica with that identity running with --lease %s?", from.HolderIdentity, h.to, h.timeout, cur, h.name)
		}
		return withCode(exitTimeout, fmt.Errorf("%s: handover not done: %s.%s", h.what(), why, note))
	}
	return withCode(exitFailure, fmt.Errorf("%s: handover not confirmed: %v.%s", h.what(), err, note))
}

func (h *handoverCmd) alreadyHolds(r leadership.Record) error {
	if h.output != "text" {
		return printObject(h.stdout, h.output, handoverResult{Namespace: h.k.namespace, Lease: h.name, From: h.to, To: h.to, Token: r.TermToken()})
	}
	fmt.Fprintf(h.stdout, "%s already holds %s\n", h.to, h.what())
	return nil
}

// probe checks that the replica named by --to is a live candidate: it
// writes a ping naming it and waits for the pong, which only a running
// elector of that identity writes. It returns the ping, still on the Lease
// (the request's write removes it), or the refusal, the ping removed.
func (h *handoverCmd) probe(ctx context.Context) (string, leadership.Record, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", leadership.Record{}, withCode(exitFailure, fmt.Errorf("cannot make a probe: %v", err))
	}
	ping := h.to + "/" + hex.EncodeToString(nonce[:])
	sent, _, err := h.update(ctx, func(l *coordinationv1.Lease, r leadership.Record) error {
		if err := h.check(l, r); err != nil {
			return err
		}
		// One probe at a time: a stale one (a command that was killed)
		// is replaced.
		l.Annotations[kubelease.AnnotationPing] = ping
		delete(l.Annotations, kubelease.AnnotationPong)
		return nil
	})
	if err != nil {
		return "", sent, err
	}
	h.g.log.Debug("probing the successor", "lease", h.what(), "ping", ping)
	lock, err := kubelease.New(h.k.client.CoordinationV1(), h.k.namespace, h.name)
	if err != nil {
		return "", sent, withCode(exitUsage, err)
	}
	pctx, cancel := context.WithTimeout(ctx, h.pingTimeout)
	defer cancel()
	began := time.Now()
	err = awaitPong(pctx, lock, sent.Version, ping)
	if err == nil {
		h.g.log.Debug("the successor answered the probe", "lease", h.what(), "to", h.to, "after", time.Since(began))
		return ping, sent, nil
	}
	removed := h.removeProbe(ctx, ping)
	note := ""
	if !removed {
		note = " The probe could not be removed: remove the annotation " + kubelease.AnnotationPing + " from the Lease by hand."
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return "", sent, withCode(exitFailure, fmt.Errorf("replica %s is not a live candidate of %s: it did not answer within %v. The holder %s keeps leading; nothing was asked of it. Check the identity ('leadership status' shows the holder; each replica logs its identity in its \"campaigning\" line) and that the replica runs with --lease %s in namespace %s. A replica that polls the Lease (watch forbidden) with a long --retry-period needs a longer --ping-timeout; one that cannot answer (client-go's elector, or leadership built before probes existed) needs --force.%s",
			h.to, h.what(), h.pingTimeout, sent.HolderIdentity, h.name, h.k.namespace, note))
	}
	return "", sent, withCode(exitFailure, fmt.Errorf("%s: cannot check that %s is a live candidate: %v. Nothing was asked of the holder.%s", h.what(), h.to, err, note))
}

// awaitPong watches the Lease, from version, until its pong answers ping.
func awaitPong(ctx context.Context, lock *kubelease.Lock, version uint64, ping string) error {
	answered := func(r leadership.Record) (bool, error) {
		switch {
		case r.Pong == ping:
			return true, nil
		case r.Ping != ping:
			return false, fmt.Errorf("the probe was replaced or removed by someone else (ping now %q): is another handover command running?", r.Ping)
		}
		return false, nil
	}
	for {
		ch, err := lock.Watch(ctx, version)
		if err != nil {
			// Watching may be forbidden: poll instead.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := lock.Get(ctx)
			switch {
			case errors.Is(err, leadership.ErrNotFound):
				return errors.New("the Lease was deleted")
			case err == nil:
				if ok, err := answered(r); ok || err != nil {
					return err
				}
			}
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return ctx.Err()
			}
			continue
		}
		for ev := range ch {
			switch ev.Type {
			case leadership.Deleted:
				return errors.New("the Lease was deleted")
			case leadership.Put:
				version = ev.Record.Version
				if ok, err := answered(ev.Record); ok || err != nil {
					return err
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The watch ended (expired, dropped): read, then watch again.
		r, err := lock.Get(ctx)
		if err == nil {
			version = r.Version
			if ok, err := answered(r); ok || err != nil {
				return err
			}
		}
	}
}

// dropProbe removes ping and its pong from l, if they are still ours.
func dropProbe(l *coordinationv1.Lease, ping string) {
	if ping == "" {
		return
	}
	if l.Annotations[kubelease.AnnotationPing] == ping {
		delete(l.Annotations, kubelease.AnnotationPing)
	}
	if l.Annotations[kubelease.AnnotationPong] == ping {
		delete(l.Annotations, kubelease.AnnotationPong)
	}
}

// removeProbe removes ping and its pong from the Lease; true if they are
// gone.
func (h *handoverCmd) removeProbe(ctx context.Context, ping string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	errDone := errors.New("nothing to remove")
	_, _, err := h.update(ctx, func(l *coordinationv1.Lease, r leadership.Record) error {
		if l.Annotations[kubelease.AnnotationPing] != ping && l.Annotations[kubelease.AnnotationPong] != ping {
			return errDone
		}
		dropProbe(l, ping)
		return nil
	})
	var ee *exitError
	return err == nil || errors.Is(err, errDone) || (errors.As(err, &ee) && ee.code == exitNotFound)
}

// wrongSuccessor: the Lease went elsewhere than asked.
type wrongSuccessor struct{ from, to, got string }

func (w *wrongSuccessor) Error() string {
	if w.got == w.from {
		if w.to == "" {
			return fmt.Sprintf("%s stepped down but took the Lease back: no other replica campaigns for it", w.from)
		}
		return fmt.Sprintf("%s stepped down but took the Lease back: %s did not take it within its head start (is a replica with that identity running?)", w.from, w.to)
	}
	return fmt.Sprintf("the Lease went to %s, not %s: %s did not take it within its head start (is a replica with that identity running?)", w.got, w.to, w.to)
}

// awaitHandover watches the Lease until its holder changed as asked, and
// returns the record of the acquisition.
func awaitHandover(ctx context.Context, lock *kubelease.Lock, from leadership.Record, to string) (leadership.Record, error) {
	judge := func(r leadership.Record) (bool, error) {
		switch h := r.HolderIdentity; {
		case h == "":
			return false, nil // released; a successor comes
		case h == from.HolderIdentity && r.AcquireTime.Equal(from.AcquireTime):
			return false, nil // still the same term
		case to != "" && h != to:
			return false, &wrongSuccessor{from: from.HolderIdentity, to: to, got: h}
		case to == "" && h == from.HolderIdentity:
			return false, &wrongSuccessor{from: from.HolderIdentity, got: h}
		}
		return true, nil
	}
	var version uint64
	for {
		r, err := lock.Get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return leadership.Record{}, ctx.Err()
			}
			if errors.Is(err, leadership.ErrNotFound) {
				return leadership.Record{}, errors.New("the Lease was deleted")
			}
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return leadership.Record{}, ctx.Err()
			}
			continue
		}
		if ok, err := judge(r); ok || err != nil {
			return r, err
		}
		version = r.Version
		ch, err := lock.Watch(ctx, version)
		if err != nil {
			// Watching may be forbidden: poll instead.
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return leadership.Record{}, ctx.Err()
			}
			continue
		}
		for ev := range ch {
			if ev.Type == leadership.Deleted {
				return leadership.Record{}, errors.New("the Lease was deleted")
			}
			if ok, err := judge(ev.Record); ok || err != nil {
				return ev.Record, err
			}
		}
		if ctx.Err() != nil {
			return leadership.Record{}, ctx.Err()
		}
	}
}

// withdraw removes the preferred-holder annotation if it is still the one
// written; true if it is gone.
func withdraw(ctx context.Context, leases interface {
	Get(context.Context, string, metav1.GetOptions) (*coordinationv1.Lease, error)
	Update(context.Context, *coordinationv1.Lease, metav1.UpdateOptions) (*coordinationv1.Lease, error)
}, name, want string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	for range 20 {
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true
		}
		if err != nil {
			return false
		}
		if l.Annotations[kubelease.AnnotationPreferredHolder] != want {
			return true // fulfilled, cleared or replaced by someone else
		}
		l = l.DeepCopy()
		delete(l.Annotations, kubelease.AnnotationPreferredHolder)
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		if err == nil {
			return true
		}
		if !apierrors.IsConflict(err) {
			return false
		}
	}
	return false
}
