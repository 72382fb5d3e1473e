package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/kubelease"
)

func newHandoverCmd(g *globalFlags, stdout io.Writer) *cobra.Command {
	var lease, to, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "handover --lease NAME [--to ID] [--timeout D] [-o text|json|yaml]",
		Short: "Ask the holder to step down, optionally in favour of a named replica",
		Long: `Ask the holder of the Lease to hand over: it stops its work, releases the
Lease, and another replica takes it within milliseconds. With --to, the named
replica (an identity as 'leadership status' shows it) gets a head start of
one renew interval on the released Lease; without it, any other replica may
take it.

The request is the annotation leadership.dev/preferred-holder on the Lease,
written with a compare-and-swap update. The command returns once the holder
has changed (to the named replica, if given). If that does not happen within
--timeout, or the Lease goes to another replica than the one named, the
request is withdrawn (so that it does not linger and bounce the Lease later)
and the command fails: exit 5 on a timeout, 1 otherwise. Holders that do not
understand the request (client-go's elector) ignore it.

With -o json or -o yaml, a successful handover prints an object (namespace,
lease, from, to, token, seconds) instead of the sentence.

Needs the verbs get, watch and update on the Lease.

` + exitCodesHelp,
		Example: `  # let any other replica take over
  leadership handover --lease credential-renewer

  # move leadership to a given replica, e.g. before draining the holder's node
  leadership handover --lease credential-renewer --to renewer-5d8f-2a91c3e0 --timeout 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkLeaseName(lease); err != nil {
				return err
			}
			if timeout <= 0 {
				return usageErrorf("invalid --timeout %v: must be positive", timeout)
			}
			if output != "text" && output != "json" && output != "yaml" {
				return usageErrorf("invalid -o %q: use text, json or yaml", output)
			}
			if to == leadership.AnyOtherHolder {
				to = ""
			}
			k, err := g.connect(nil)
			if err != nil {
				return err
			}
			return handover(cmd.Context(), k, g, lease, to, timeout, output, stdout)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&lease, "lease", "l", "", "name of the Lease (required)")
	fs.StringVar(&to, "to", "", "identity of the replica that should take over (default: any other)")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the holder to change")
	fs.StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	return cmd
}

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

func handover(ctx context.Context, k *kube, g *globalFlags, name, to string, timeout time.Duration, output string, stdout io.Writer) error {
	leases := k.client.CoordinationV1().Leases(k.namespace)
	what := fmt.Sprintf("Lease %s/%s", k.namespace, name)
	want := to
	if want == "" {
		want = leadership.AnyOtherHolder
	}

	// Write the request, compare-and-swap: the holder renews meanwhile, so a
	// conflict just means reading again.
	var (
		from  leadership.Record
		asked time.Time
	)
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		l, err := leases.Get(rctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			defer cancel()
			return k.leaseNotFound(rctx, name)
		}
		if err != nil {
			cancel()
			return k.apiError("get", what, err)
		}
		from, err = kubelease.Decode(l)
		if err != nil {
			cancel()
			return withCode(exitFailure, err)
		}
		switch {
		case from.HolderIdentity == "":
			cancel()
			return withCode(exitFailure, fmt.Errorf("%s is not held (it was released): there is nothing to hand over; the next replica to campaign takes it", what))
		case to != "" && from.HolderIdentity == to:
			cancel()
			if output != "text" {
				return printObject(stdout, output, handoverResult{Namespace: k.namespace, Lease: name, From: to, To: to, Token: from.Token})
			}
			fmt.Fprintf(stdout, "%s already holds %s\n", to, what)
			return nil
		}
		l = l.DeepCopy()
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[kubelease.AnnotationPreferredHolder] = want
		asked = time.Now()
		_, err = leases.Update(rctx, l, metav1.UpdateOptions{})
		cancel()
		if apierrors.IsConflict(err) && attempt < 20 {
			continue
		}
		if err != nil {
			return k.apiError("update", what, err)
		}
		break
	}
	g.log.Debug("handover requested", "lease", what, "holder", from.HolderIdentity, "to", want)

	lock, err := kubelease.New(k.client.CoordinationV1(), k.namespace, name)
	if err != nil {
		return withCode(exitUsage, err)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := awaitHandover(wctx, lock, from, to)
	took := time.Since(asked)
	if err == nil && output != "text" {
		return printObject(stdout, output, handoverResult{Namespace: k.namespace, Lease: name, From: from.HolderIdentity, To: res.HolderIdentity, Token: res.Version, Seconds: took.Seconds()})
	}
	if err == nil {
		fmt.Fprintf(stdout, "%s handed over from %s to %s in %v (fencing token %d)\n", what, from.HolderIdentity, res.HolderIdentity, took.Round(time.Millisecond), res.Version)
		return nil
	}
	// Withdraw the request, so that it cannot bounce the Lease later.
	withdrawn := withdraw(ctx, leases, name, want)
	note := " The request was withdrawn."
	if !withdrawn {
		note = " The request could not be withdrawn: remove the annotation " + kubelease.AnnotationPreferredHolder + " from the Lease by hand."
	}
	var wrong *wrongSuccessor
	switch {
	case errors.As(err, &wrong):
		return withCode(exitFailure, fmt.Errorf("%s: %v.%s", what, wrong, note))
	case wctx.Err() != nil && ctx.Err() == nil:
		cur := from.HolderIdentity
		if r, gerr := lock.Get(ctx); gerr == nil {
			cur = r.HolderIdentity
		}
		why := fmt.Sprintf("the holder %s did not step down within %v: it may not understand handover requests (client-go electors ignore them), be unable to reach the API server, or its work may take long to stop", from.HolderIdentity, timeout)
		if cur != from.HolderIdentity {
			why = fmt.Sprintf("%s stepped down but %s did not take over within %v (holder now %q): is a replica with that identity running with --lease %s?", from.HolderIdentity, to, timeout, cur, name)
		}
		return withCode(exitTimeout, fmt.Errorf("%s: handover not done: %s.%s", what, why, note))
	}
	return withCode(exitFailure, fmt.Errorf("%s: handover not confirmed: %v.%s", what, err, note))
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
