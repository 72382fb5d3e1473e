// Package kubelease stores a leadership lock in a Kubernetes
// coordination.k8s.io/v1 Lease, with the same fields and meaning as
// client-go's leader election, so that both kinds of elector can share one
// Lease during a migration.
//
// Besides the spec it keeps a few annotations: the holder's fencing token,
// the writing process's instance (to tell two processes with one identity
// apart), the holder's release mark, a requested successor, the pod UID and
// lock-file proof of a holder configured for fast takeover after a restart
// in place, and the liveness probe of a handover (ping and pong).
//
// Every write starts from the Lease as last read, so that what this package
// does not own survives it: labels, other annotations, and the fields of
// Coordinated Leader Election (spec.strategy). A spec.preferredHolder written
// by a coordinator is read as a handover request, like the annotation; an
// acquisition clears both (the request is fulfilled, or void because the
// named replica did not take the Lease in its head start), as client-go's
// elector and Kubernetes' own coordinator do.
package kubelease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/leadership-dev/leadership"
)

// Annotations written on the Lease.
const (
	AnnotationToken           = "leadership.dev/token"
	AnnotationInstance        = "leadership.dev/instance"
	AnnotationPreferredHolder = "leadership.dev/preferred-holder"
	// AnnotationReleased marks the holder's own release (Record.Released):
	// the token of the term released once its work had returned.
	AnnotationReleased = "leadership.dev/released"
	// AnnotationPodUID and AnnotationProof bind a term to the pod and the
	// pod-local lock file it held (Record.PodUID, Record.Proof), for the
	// fast takeover of a leader that crashed in place.
	AnnotationPodUID = "leadership.dev/pod-uid"
	AnnotationProof  = "leadership.dev/proof"
	// AnnotationPing is the liveness probe of a handover (Record.Ping,
	// "identity/nonce"), AnnotationPong its answer (Record.Pong). Only
	// `leadership handover` and Lock.AnswerPing write them; Encode keeps them
	// as they are.
	AnnotationPing = "leadership.dev/ping"
	AnnotationPong = "leadership.dev/pong"
	// ValuesPrefix prefixes the annotation of each Record.Values key.
	ValuesPrefix = "values.leadership.dev/"
)

// checkValues refuses keys that cannot be annotation names, before the API
// server does with a less specific message.
func checkValues(r leadership.Record) error {
	for k := range r.Values {
		if errs := validation.IsQualifiedName(ValuesPrefix + k); len(errs) > 0 {
			return fmt.Errorf("kubelease: value key %q cannot be stored as annotation %q: %s", k, ValuesPrefix+k, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Lock is a leadership.Lock on one Lease.
type Lock struct {
	client    coordinationv1client.LeasesGetter
	namespace string
	name      string

	mu sync.Mutex
	// last is the newest Lease object seen. Updates start from it when its
	// version matches, so that labels and annotations set by others (Helm,
	// an operator) survive our writes.
	last *coordinationv1.Lease
	// recent are the last Lease objects seen, newest last, so that an
	// update of a version that is no longer the newest seen still carries
	// that object's UID (see Update).
	recent []*coordinationv1.Lease
}

// keepRecent is how many Lease objects Lock remembers for their UIDs: the
// elector updates the version it last observed, a few events at most
// behind the newest this Lock has seen.
const keepRecent = 16

var _ leadership.Lock = (*Lock)(nil)

// New returns the lock on Lease namespace/name, used through client (for
// example clientset.CoordinationV1()). The Lease need not exist yet.
func New(client coordinationv1client.LeasesGetter, namespace, name string) (*Lock, error) {
	if client == nil {
		return nil, errors.New("kubelease: client is nil")
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, fmt.Errorf("kubelease: invalid namespace %q: %s", namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("kubelease: invalid Lease name %q: %s", name, strings.Join(errs, "; "))
	}
	return &Lock{client: client, namespace: namespace, name: name}, nil
}

func (l *Lock) String() string { return "Lease " + l.namespace + "/" + l.name }

// Namespace and Name locate the Lease.
func (l *Lock) Namespace() string { return l.namespace }
func (l *Lock) Name() string      { return l.name }

func (l *Lock) Get(ctx context.Context) (leadership.Record, error) {
	lease, err := l.client.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return leadership.Record{}, l.wrap("get", err)
	}
	return l.keep(lease)
}

func (l *Lock) Create(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if err := checkValues(r); err != nil {
		return leadership.Record{}, err
	}
	lease := Encode(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.name}}, r)
	lease.ResourceVersion = ""
	out, err := l.client.Leases(l.namespace).Create(ctx, lease, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		// Creating reports NotFound only when the namespace is missing; it
		// must not read as "the Lease is missing", or callers would retry
		// the create in a tight loop.
		return leadership.Record{}, fmt.Errorf("kubelease: cannot create %s: namespace %q does not exist; create it or choose another namespace: %v", l, l.namespace, err)
	}
	if err != nil {
		return leadership.Record{}, l.wrap("create", err)
	}
	return l.keep(out)
}

func (l *Lock) Update(ctx context.Context, r leadership.Record) (leadership.Record, error) {
	if r.Version == 0 {
		return leadership.Record{}, fmt.Errorf("kubelease: update of %s without a version: %w", l, leadership.ErrConflict)
	}
	if err := checkValues(r); err != nil {
		return leadership.Record{}, err
	}
	base, err := l.base(ctx, r.Version)
	if err != nil {
		return leadership.Record{}, err
	}
	lease, err := withPrecondition(Encode(base, r), base)
	if err != nil {
		return leadership.Record{}, err
	}
	out, err := l.client.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return leadership.Record{}, l.wrap("update", err)
	}
	return l.keep(out)
}

// withPrecondition makes lease a compare-and-swap on base: its version AND
// its UID. The API server creates a Lease that an update names but that
// does not exist (Leases allow create-on-update), whatever resourceVersion
// the update carries: without the UID, an update from a version seen before
// an operator deleted the Lease would re-create it, a create that nobody
// held, and lead beside whoever acquired before the deletion. With the UID
// the server refuses it (409: the UID precondition fails on an absent
// object).
func withPrecondition(lease, base *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	lease.ResourceVersion, lease.UID = base.ResourceVersion, base.UID
	if lease.UID == "" {
		return nil, fmt.Errorf("kubelease: update of Lease %s/%s from version %s: the object read at that version has no UID; refusing an update that could re-create a deleted Lease", base.Namespace, base.Name, base.ResourceVersion)
	}
	return lease, nil
}

// base returns the Lease at version, to write over: one seen through this
// Lock, or else the one read now. A write built from anything else would
// drop what this package does not own (labels, other annotations,
// spec.strategy) and the UID that keeps an update from re-creating a
// deleted Lease; if the Lease is no longer at version, the write would fail
// its compare-and-swap anyway, and fails with ErrConflict without being
// sent.
func (l *Lock) base(ctx context.Context, version uint64) (*coordinationv1.Lease, error) {
	rv := strconv.FormatUint(version, 10)
	if b := l.seen(rv); b != nil {
		return b, nil
	}
	cur, err := l.client.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return nil, l.wrap("get", err)
	}
	if cur.ResourceVersion != rv {
		if _, err := l.keep(cur); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("kubelease: %s is at resourceVersion %s, not %s: %w", l, cur.ResourceVersion, rv, leadership.ErrConflict)
	}
	l.remember(cur)
	return cur, nil
}

// AnswerPing writes ping as the answer to a handover's liveness probe (the
// pong annotation), changing nothing else, as a compare-and-swap on version.
func (l *Lock) AnswerPing(ctx context.Context, version uint64, ping string) (leadership.Record, error) {
	if version == 0 {
		return leadership.Record{}, fmt.Errorf("kubelease: answer to a probe of %s without a version: %w", l, leadership.ErrConflict)
	}
	base, err := l.base(ctx, version)
	if err != nil {
		return leadership.Record{}, err
	}
	lease := base.DeepCopy()
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AnnotationPong] = ping
	if lease, err = withPrecondition(lease, base); err != nil {
		return leadership.Record{}, err
	}
	out, err := l.client.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return leadership.Record{}, l.wrap("update", err)
	}
	return l.keep(out)
}

// Watch watches the Lease by name. A server-side timeout of 5 to 10 minutes
// recycles connections that died silently, at a cost of one request per
// follower every few minutes.
func (l *Lock) Watch(ctx context.Context, fromVersion uint64) (<-chan leadership.Event, error) {
	timeout := int64(300 + rand.IntN(300))
	opts := metav1.ListOptions{
		FieldSelector:  fields.OneTermEqualSelector("metadata.name", l.name).String(),
		TimeoutSeconds: &timeout,
	}
	if fromVersion != 0 {
		opts.ResourceVersion = strconv.FormatUint(fromVersion, 10)
	}
	w, err := l.client.Leases(l.namespace).Watch(ctx, opts)
	if err != nil {
		return nil, l.wrap("watch", err)
	}
	ch := make(chan leadership.Event, 8)
	go func() {
		defer close(ch)
		defer w.Stop()
		send := func(ev leadership.Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		fail := func(err error) { send(leadership.Event{Type: leadership.Failed, Err: err}) }
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return // the server's timeout, or a dropped connection: re-read
				}
				switch ev.Type {
				case watch.Added, watch.Modified, watch.Deleted:
					lease, ok := ev.Object.(*coordinationv1.Lease)
					if !ok {
						fail(fmt.Errorf("kubelease: watch of %s sent a %T, not a Lease", l, ev.Object))
						return
					}
					r, err := Decode(lease)
					if err != nil {
						fail(err)
						return
					}
					var out leadership.Event
					if ev.Type == watch.Deleted {
						l.forget()
						out = leadership.Event{Type: leadership.Deleted, Record: leadership.Record{Version: r.Version}}
					} else {
						l.remember(lease)
						out = leadership.Event{Type: leadership.Put, Record: r}
					}
					if !send(out) {
						return
					}
				case watch.Bookmark:
				case watch.Error:
					fail(l.watchError(ev.Object))
					return
				default:
					fail(fmt.Errorf("kubelease: watch of %s sent an event of unknown type %q", l, ev.Type))
					return
				}
			}
		}
	}()
	return ch, nil
}

// watchError turns a watch's error event into an error: 410 Gone (the
// version is compacted) wraps leadership.ErrExpired, 403 ErrForbidden.
func (l *Lock) watchError(obj runtime.Object) error {
	err := apierrors.FromObject(obj)
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return fmt.Errorf("kubelease: watch of %s failed: %v", l, err)
	}
	switch {
	case apierrors.IsGone(err), apierrors.IsResourceExpired(err):
		return fmt.Errorf("kubelease: watch of %s: %w: %v", l, leadership.ErrExpired, err)
	}
	return l.wrap("watch", err)
}

func (l *Lock) keep(lease *coordinationv1.Lease) (leadership.Record, error) {
	r, err := Decode(lease)
	if err != nil {
		return leadership.Record{}, err
	}
	l.remember(lease)
	return r, nil
}

func (l *Lock) remember(lease *coordinationv1.Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || newer(lease.ResourceVersion, l.last.ResourceVersion) {
		l.last = lease
	}
	for _, o := range l.recent {
		if o.ResourceVersion == lease.ResourceVersion {
			return
		}
	}
	l.recent = append(l.recent, lease)
	if len(l.recent) > keepRecent {
		l.recent = append(l.recent[:0:0], l.recent[len(l.recent)-keepRecent:]...)
	}
}

// seen returns the object seen at version rv, nil if none is remembered.
func (l *Lock) seen(rv string) *coordinationv1.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != nil && l.last.ResourceVersion == rv {
		return l.last
	}
	for i := len(l.recent) - 1; i >= 0; i-- {
		if l.recent[i].ResourceVersion == rv {
			return l.recent[i]
		}
	}
	return nil
}

func (l *Lock) forget() {
	l.mu.Lock()
	l.last = nil
	l.mu.Unlock()
}

func newer(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

func (l *Lock) wrap(verb string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubelease: %s: %w", l, leadership.ErrNotFound)
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return fmt.Errorf("kubelease: %s: %w", l, leadership.ErrConflict)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("kubelease: %w: may not %s %s: grant the verb %q on resource leases (API group coordination.k8s.io) in namespace %q to this replica's user or ServiceAccount: %v",
			leadership.ErrForbidden, verb, l, verb, l.namespace, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("kubelease: the API server rejected this replica's credentials (check the kubeconfig or ServiceAccount token) on %s of %s: %v", verb, l, err)
	case apierrors.IsUnexpectedServerError(err):
		// client-go replaces an answer that is not a Kubernetes Status (a
		// plain-HTTP request to the TLS port, a proxy's error page) by "the
		// server rejected our request for an unknown reason" and keeps the
		// server's own words in the details: show them.
		var st apierrors.APIStatus
		if errors.As(err, &st) && st.Status().Details != nil {
			for _, c := range st.Status().Details.Causes {
				if c.Type == metav1.CauseTypeUnexpectedServerResponse && strings.TrimSpace(c.Message) != "" {
					return fmt.Errorf("kubelease: %s %s: %w; the server answered %q, which is not the Kubernetes API: check the server URL (scheme, host, port) in the kubeconfig", verb, l, err, strings.TrimSpace(c.Message))
				}
			}
		}
	}
	return fmt.Errorf("kubelease: %s %s: %w", verb, l, err)
}

// Decode reads a Lease as a leadership.Record. Only a resourceVersion that
// is not a decimal number is an error: every other oddity of a hand-edited
// Lease decodes to a value the elector reads conservatively (a missing or
// non-positive duration counts as the elector's own lease duration, an
// unreadable token as none).
func Decode(lease *coordinationv1.Lease) (leadership.Record, error) {
	if lease == nil {
		return leadership.Record{}, errors.New("kubelease: nil Lease")
	}
	v, err := strconv.ParseUint(lease.ResourceVersion, 10, 64)
	if err != nil || v == 0 {
		return leadership.Record{}, fmt.Errorf("kubelease: Lease %s/%s has resourceVersion %q, which is not a positive decimal number; fencing tokens need the API server's comparable resource versions (Kubernetes ≥ 1.35 with etcd storage)",
			lease.Namespace, lease.Name, lease.ResourceVersion)
	}
	s := lease.Spec
	r := leadership.Record{Version: v}
	if s.HolderIdentity != nil {
		r.HolderIdentity = *s.HolderIdentity
	}
	if s.LeaseDurationSeconds != nil {
		r.LeaseDuration = time.Duration(*s.LeaseDurationSeconds) * time.Second
	}
	if s.AcquireTime != nil {
		r.AcquireTime = s.AcquireTime.Time
	}
	if s.RenewTime != nil {
		r.RenewTime = s.RenewTime.Time
	}
	if s.LeaseTransitions != nil {
		r.LeaseTransitions = *s.LeaseTransitions
	}
	a := lease.Annotations
	if s.PreferredHolder != nil && *s.PreferredHolder != "" {
		r.PreferredHolder = *s.PreferredHolder
	} else {
		r.PreferredHolder = a[AnnotationPreferredHolder]
	}
	if t, err := strconv.ParseUint(a[AnnotationToken], 10, 64); err == nil {
		r.Token = t
	}
	r.Instance = a[AnnotationInstance]
	r.PodUID = a[AnnotationPodUID]
	r.Proof = a[AnnotationProof]
	r.Ping, r.Pong = a[AnnotationPing], a[AnnotationPong]
	if t, err := strconv.ParseUint(a[AnnotationReleased], 10, 64); err == nil {
		r.Released = t
	}
	for k, v := range a {
		if name, ok := strings.CutPrefix(k, ValuesPrefix); ok {
			if r.Values == nil {
				r.Values = map[string]string{}
			}
			r.Values[name] = v
		}
	}
	return r, nil
}

// Encode returns a copy of base with r written into it. The resourceVersion
// is left as in base, and so is everything r does not carry: labels, other
// annotations, the probe annotations (r.Ping and r.Pong are not written),
// spec.strategy. A spec.preferredHolder that r does not name is cleared.
func Encode(base *coordinationv1.Lease, r leadership.Record) *coordinationv1.Lease {
	lease := base.DeepCopy()
	secs := int32(r.LeaseDuration / time.Second)
	if r.LeaseDuration%time.Second != 0 {
		secs++ // never shorten what the holder counts on
	}
	transitions := r.LeaseTransitions
	holder := r.HolderIdentity
	lease.Spec.HolderIdentity = &holder
	lease.Spec.LeaseDurationSeconds = &secs
	lease.Spec.LeaseTransitions = &transitions
	lease.Spec.AcquireTime = microTime(r.AcquireTime)
	lease.Spec.RenewTime = microTime(r.RenewTime)
	a := make(map[string]string, len(lease.Annotations)+3+len(r.Values))
	for k, v := range lease.Annotations {
		if !strings.HasPrefix(k, ValuesPrefix) {
			a[k] = v
		}
	}
	for k, v := range r.Values {
		a[ValuesPrefix+k] = v
	}
	set := func(k, v string) {
		if v == "" {
			delete(a, k)
		} else {
			a[k] = v
		}
	}
	if r.Token != 0 {
		set(AnnotationToken, strconv.FormatUint(r.Token, 10))
	} else {
		set(AnnotationToken, "")
	}
	set(AnnotationInstance, r.Instance)
	set(AnnotationPodUID, r.PodUID)
	set(AnnotationProof, r.Proof)
	if r.Released != 0 {
		set(AnnotationReleased, strconv.FormatUint(r.Released, 10))
	} else {
		set(AnnotationReleased, "")
	}
	switch sp := lease.Spec.PreferredHolder; {
	case sp != nil && *sp != "" && *sp == r.PreferredHolder:
		set(AnnotationPreferredHolder, "") // the spec already carries it
	default:
		// A coordinator's request that r no longer carries (an acquisition
		// clears the request) must go too, or it would outlive its term:
		// Decode would read it back, client-go holders would stop renewing
		// at once, and a later handover request in the annotation would
		// stay hidden behind it.
		lease.Spec.PreferredHolder = nil
		set(AnnotationPreferredHolder, r.PreferredHolder)
	}
	if len(a) == 0 {
		a = nil
	}
	lease.Annotations = a
	return lease
}

func microTime(t time.Time) *metav1.MicroTime {
	if t.IsZero() {
		return nil
	}
	m := metav1.NewMicroTime(t.Round(0)) // strip the monotonic reading
	return &m
}
