// Package podlabel marks the leader's own Pod with a label while it leads,
// so that a Service (or anything that selects Pods by label) can route to
// the leader.
//
// The label is leadership.dev/leader-<lease>: "true". It is keyed by the
// Lease, so one Pod can take part in several elections (say a `run` and a
// `serve` container on different Leases) without their labels overwriting
// each other; the price is that label names hold at most 63 characters, so
// the Lease name can have at most 56 (MaxLeaseName).
//
// The label is advisory: it follows the leadership with a lag (one API
// request after an acquisition or the end of a term; a crashed leader's
// label stays until the next leader removes it, so up to the Lease duration
// plus one request), and for a moment two Pods may carry it or none. It is
// for routing traffic, never for deciding who may act: that is the term's
// job, and its fencing token's.
//
// Writes happen on a goroutine of their own, in order, so the elector's
// hooks never wait for the API server. The Pod's ServiceAccount needs get,
// list and patch on pods in the Pod's namespace.
package podlabel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership"
)

// Prefix is the label key's prefix; the Lease name follows it.
const Prefix = "leadership.dev/leader-"

// Value is the label's value on the leader's Pod.
const Value = "true"

// MaxLeaseName is the longest Lease name whose label key is valid: the
// name part of a label key holds at most 63 characters.
const MaxLeaseName = validation.LabelValueMaxLength - len("leader-")

// Key returns the label key for the Lease named lease, or an error saying
// why that Lease cannot have one.
func Key(lease string) (string, error) {
	key := Prefix + lease
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		if len(lease) > MaxLeaseName {
			return "", fmt.Errorf("the Lease name %q is too long for the Pod label %s<lease>: label names hold at most 63 characters, so Lease names of at most %d characters can label Pods; use a shorter Lease name", lease, Prefix, MaxLeaseName)
		}
		return "", fmt.Errorf("the Lease name %q makes an invalid label key %q: %s", lease, key, strings.Join(errs, "; "))
	}
	return key, nil
}

// Options configure a Labeler.
type Options struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// Namespace and Pod name this replica's own Pod (from the Downward
	// API: metadata.namespace and metadata.name).
	Namespace, Pod string
	// Lease is the Lease's name; the label key is Key(Lease).
	Lease string
	// Resync is how often the leader checks that its Pod, and only its
	// Pod, carries the label (one list of the labelled Pods); default 30s.
	Resync time.Duration
	// RetryPeriod is the pause after a failed request; default 2s.
	RetryPeriod time.Duration
	// Logger receives what the Labeler does; default slog.Default().
	Logger *slog.Logger
}

// Labeler keeps the label on this replica's Pod while it leads.
type Labeler struct {
	client         kubernetes.Interface
	namespace, pod string
	key            string
	resync, retry  time.Duration
	log            *slog.Logger

	mu      sync.Mutex
	leading bool
	gen     uint64 // counts the changes of leading
	closing bool

	wake chan struct{}
	done chan struct{}
	stop context.CancelFunc
	ctx  context.Context
}

// New starts a Labeler. Until the first acquisition it removes the label
// from its own Pod (left there by a previous process of this Pod that
// crashed while it led). Call Close to stop it.
func New(opts Options) (*Labeler, error) {
	key, err := Key(opts.Lease)
	if err != nil {
		return nil, err
	}
	if opts.Client == nil {
		return nil, errors.New("podlabel: Options.Client is nil")
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("invalid Pod namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(opts.Pod); len(errs) > 0 {
		return nil, fmt.Errorf("invalid Pod name %q: %s", opts.Pod, strings.Join(errs, "; "))
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.RetryPeriod <= 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &Labeler{
		client: opts.Client, namespace: opts.Namespace, pod: opts.Pod, key: key,
		resync: opts.Resync, retry: opts.RetryPeriod,
		log:  opts.Logger.With("podLabel", key, "pod", opts.Namespace+"/"+opts.Pod),
		gen:  1,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		stop: stop, ctx: ctx,
	}
	go l.loop()
	return l, nil
}

// LabelKey is the label key this Labeler sets.
func (l *Labeler) LabelKey() string { return l.key }

// Check reads the Pod once, to report at start-up a Pod that does not
// exist or may not be read, with what to do about it.
func (l *Labeler) Check(ctx context.Context) error {
	_, err := l.client.CoreV1().Pods(l.namespace).Get(ctx, l.pod, metav1.GetOptions{})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("no Pod %q in namespace %q to label: set POD_NAME and POD_NAMESPACE from the Downward API (fieldRef metadata.name and metadata.namespace), or pass --pod-name and --pod-namespace: %w", l.pod, l.namespace, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("may not read Pod %s/%s: %s: %w", l.namespace, l.pod, l.rbacHint(), err)
	}
	return fmt.Errorf("cannot read Pod %s/%s: %w", l.namespace, l.pod, err)
}

func (l *Labeler) rbacHint() string {
	return fmt.Sprintf("labelling the leader's Pod needs the verbs get, list and patch on resource pods (core API group) in namespace %q", l.namespace)
}

// Hooks returns the elector hooks that move the label: on with an
// acquisition, off at the end of the term. They only record the new state;
// the API calls happen on the Labeler's goroutine.
func (l *Labeler) Hooks() leadership.Hooks {
	return leadership.Hooks{
		OnAcquire: func(leadership.Term, string, time.Duration) { l.set(true) },
		OnTermEnd: func(leadership.Term, error) { l.set(false) },
	}
}

func (l *Labeler) set(leading bool) {
	l.mu.Lock()
	if l.leading != leading {
		l.leading = leading
		l.gen++
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Labeler) state() (leading bool, gen uint64, closing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading, l.gen, l.closing
}

// Close lets the Labeler apply the latest state (usually: the label off
// this Pod, as the term has ended), giving up when ctx is done, and stops
// it.
func (l *Labeler) Close(ctx context.Context) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		l.stop()
		<-l.done
	}
}

func (l *Labeler) loop() {
	defer close(l.done)
	defer l.stop()
	var applied uint64 // the gen last applied; 0: none yet
	var nextResync time.Time
	forbiddenSaid := false
	for {
		leading, gen, closing := l.state()
		var err error
		if gen != applied || (leading && !time.Now().Before(nextResync)) {
			if leading {
				err = l.reconcileLeader(gen)
			} else {
				err = l.removeOwn()
			}
			if err == nil {
				applied = gen
				nextResync = time.Now().Add(l.resync)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, errStale), l.ctx.Err() != nil:
		case apierrors.IsForbidden(err):
			if !forbiddenSaid {
				forbiddenSaid = true
				l.log.Warn("cannot label the leader's Pod: "+l.rbacHint()+"; leadership itself is not affected", "error", err)
			}
		default:
			l.log.Warn("cannot update the leader label; retrying", "error", err, "in", l.retry)
		}
		if closing && err == nil && applied == gen {
			return
		}
		var wait time.Duration
		switch {
		case err != nil && !errors.Is(err, errStale):
			wait = l.retry
		case leading:
			wait = time.Until(nextResync)
		default:
			wait = -1 // until woken
		}
		if !l.sleep(wait) {
			return
		}
	}
}

// sleep waits for d (forever if negative) or a wake-up; false once the
// Labeler is stopped.
func (l *Labeler) sleep(d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-l.ctx.Done():
		return false
	case <-l.wake:
	case <-timer:
	}
	return true
}

// errStale: the state changed while a reconcile ran; the next one starts
// at once.
var errStale = errors.New("the leadership changed during the update")

const requestTimeout = 10 * time.Second

// reconcileLeader makes this Pod carry the label, and takes it off every
// other Pod of the namespace (a crashed leader cannot take off its own).
func (l *Labeler) reconcileLeader(gen uint64) error {
	ctx, cancel := context.WithTimeout(l.ctx, requestTimeout)
	defer cancel()
	pods, err := l.client.CoreV1().Pods(l.namespace).List(ctx, metav1.ListOptions{LabelSelector: l.key})
	if err != nil {
		return err
	}
	own := false
	for _, p := range pods.Items {
		if p.Name == l.pod && p.Labels[l.key] == Value {
			own = true
		}
	}
	if !own {
		if err := l.patch(ctx, l.pod, Value, ""); err != nil {
			return err
		}
		l.log.Info("labelled this Pod as the leader's")
	}
	for _, p := range pods.Items {
		if p.Name == l.pod {
			continue
		}
		if _, g, _ := l.state(); g != gen {
			return errStale // no longer the leader this list was made for
		}
		// The resourceVersion makes the patch conditional: a Pod changed
		// since the list (maybe labelled by a newer leader) is listed again.
		err := l.patch(ctx, p.Name, "", p.ResourceVersion)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("removing the stale leader label from Pod %s: %w", p.Name, err)
		default:
			l.log.Info("removed the leader label from another Pod (a previous leader that could not remove it)", "from", p.Name)
		}
	}
	return nil
}

// removeOwn takes the label off this Pod.
func (l *Labeler) removeOwn() error {
	ctx, cancel := context.WithTimeout(l.ctx, requestTimeout)
	defer cancel()
	p, err := l.client.CoreV1().Pods(l.namespace).Get(ctx, l.pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	if _, ok := p.Labels[l.key]; !ok {
		return nil
	}
	if err := l.patch(ctx, l.pod, "", ""); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	l.log.Info("removed the leader label from this Pod")
	return nil
}

// patch sets the label on Pod name to value, or removes it if value is
// "", with a merge patch; with resourceVersion, only if the Pod is still
// at that version.
func (l *Labeler) patch(ctx context.Context, name, value, resourceVersion string) error {
	meta := map[string]any{}
	if value == "" {
		meta["labels"] = map[string]any{l.key: nil}
	} else {
		meta["labels"] = map[string]any{l.key: value}
	}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = l.client.CoreV1().Pods(l.namespace).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "leadership"})
	return err
}
