// Package events records an elector's leadership changes as Kubernetes
// Events on its Lease, so that `kubectl describe lease` and `kubectl get
// events` show who acquired, lost, released and handed over the lock.
//
// Events are written with the events.k8s.io/v1 API, one create per event
// and no series aggregation (leadership changes are rare), so the only
// permission needed is the verb "create" on resource "events" in API group
// "events.k8s.io" in the Lease's namespace. Writing is asynchronous and
// best effort: a hook never waits for the API server, and a failed write
// is logged, not retried.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/leadership-dev/leadership"
	"github.com/leadership-dev/leadership/metrics"
)

// Reasons of the events recorded.
const (
	ReasonAcquired  = "Acquired"
	ReasonLost      = "Lost"
	ReasonReleased  = "Released"
	ReasonHandover  = "HandedOver"
	ReasonRequested = "HandoverRequested"
)

// Controller is the events' reportingController.
const Controller = "leadership.dev/leadership"

// queueSize bounds the events waiting to be written; beyond it new ones are
// dropped (and logged), so a hook never blocks.
const queueSize = 64

// Recorder writes Events about one Lease.
type Recorder struct {
	client    kubernetes.Interface
	namespace string
	lease     string
	identity  string
	log       *slog.Logger

	queue chan *eventsv1.Event
	done  chan struct{}
	once  sync.Once
	stop  chan struct{}
}

// NewRecorder starts a Recorder for Lease namespace/lease, reporting as
// identity (the replica). Call Close to flush and stop it.
func NewRecorder(client kubernetes.Interface, namespace, lease, identity string, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{
		client: client, namespace: namespace, lease: lease, identity: identity,
		log:   log,
		queue: make(chan *eventsv1.Event, queueSize),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go r.loop()
	return r
}

// Hooks returns the elector hooks that record the events: Acquired when
// this replica wins a term, Lost when a term ends without its consent,
// HandedOver when it steps down for a handover, Released when it releases
// the lock.
func (r *Recorder) Hooks() leadership.Hooks {
	return leadership.Hooks{
		OnAcquire: func(t leadership.Term, previous string, waited time.Duration) {
			note := fmt.Sprintf("%s became leader with fencing token %d", r.identity, t.Token)
			if previous != "" && previous != r.identity {
				note += fmt.Sprintf(", taking over from %s %v after the lock became free", previous, waited.Round(time.Millisecond))
			}
			r.Emit(corev1.EventTypeNormal, ReasonAcquired, "Acquire", note)
		},
		OnTermEnd: func(t leadership.Term, cause error) {
			switch metrics.Cause(cause) {
			case "handover":
				r.Emit(corev1.EventTypeNormal, ReasonHandover, "StepDown",
					fmt.Sprintf("%s stepped down (token %d): a handover was requested", r.identity, t.Token))
			case "validity_expired", "suspended", "lock_lost", "lock_deleted", "identity_clash":
				r.Emit(corev1.EventTypeWarning, ReasonLost, "Lose",
					fmt.Sprintf("%s lost leadership (token %d): %v", r.identity, t.Token, cause))
			}
		},
		OnRelease: func(t leadership.Term, err error) {
			if err == nil {
				r.Emit(corev1.EventTypeNormal, ReasonReleased, "Release",
					fmt.Sprintf("%s released the lock after its work returned (token %d)", r.identity, t.Token))
			}
		},
	}
}

// Emit queues one event about the Lease. It never blocks: when the queue
// is full or the Recorder closed, the event is dropped with a log line.
func (r *Recorder) Emit(eventType, reason, action, note string) {
	var b [2]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// As client-go names events: object name, a dot, a unique
			// suffix; the name is cut so the whole stays a valid name.
			Name:      fmt.Sprintf("%s.%x%s", strings.TrimRight(truncate(r.lease, 200), "-."), now.UnixNano(), hex.EncodeToString(b[:])),
			Namespace: r.namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: Controller,
		ReportingInstance:   truncate(r.identity, 128),
		Action:              action,
		Reason:              reason,
		Type:                eventType,
		Note:                truncate(note, 1024),
		Regarding: corev1.ObjectReference{
			APIVersion: "coordination.k8s.io/v1",
			Kind:       "Lease",
			Namespace:  r.namespace,
			Name:       r.lease,
		},
	}
	select {
	case <-r.stop:
		r.log.Debug("event dropped: recorder closed", "reason", reason)
		return
	default:
	}
	select {
	case r.queue <- ev:
	default:
		r.log.Warn("event dropped: too many events waiting to be written", "reason", reason)
	}
}

// Close writes the events still queued, giving up when ctx is done, and
// stops the Recorder.
func (r *Recorder) Close(ctx context.Context) {
	r.once.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forbiddenSaid := false
	for {
		var ev *eventsv1.Event
		select {
		case ev = <-r.queue:
		case <-r.stop:
			select {
			case ev = <-r.queue:
			default:
				return
			}
		}
		err := r.write(ctx, ev)
		switch {
		case err == nil:
		case apierrors.IsForbidden(err):
			if !forbiddenSaid {
				forbiddenSaid = true
				r.log.Warn(fmt.Sprintf("cannot record Events on the Lease: grant the verb \"create\" on resource events (API group events.k8s.io) in namespace %q to this replica's user or ServiceAccount; leadership itself is not affected", r.namespace), "error", err)
			}
		default:
			r.log.Warn("cannot record an Event on the Lease; leadership itself is not affected", "reason", ev.Reason, "error", err)
		}
	}
}

func (r *Recorder) write(ctx context.Context, ev *eventsv1.Event) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The UID lets `kubectl describe lease` find the event; a Lease
	// recreated since has a new one, so it is read each time (events are
	// rare). Without it the event is still written.
	if l, err := r.client.CoordinationV1().Leases(r.namespace).Get(ctx, r.lease, metav1.GetOptions{}); err == nil {
		ev.Regarding.UID = l.UID
		ev.Regarding.ResourceVersion = l.ResourceVersion
	} else if !apierrors.IsNotFound(err) && !errors.Is(err, context.Canceled) {
		r.log.Debug("cannot read the Lease for its UID", "error", err)
	}
	_, err := r.client.EventsV1().Events(r.namespace).Create(ctx, ev, metav1.CreateOptions{})
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
