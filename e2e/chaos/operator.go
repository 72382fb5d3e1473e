package chaos

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/leadership-dev/leadership/e2e/e2etest/ledger"
)

// The operator's faults: what kubectl edit, a patch or a script does to a
// held Lease. Each edit is a read-modify-write (Get, change, Update on the
// version read) that keeps every annotation, as any such client does, so
// the record still names the holder's instance and token.

// editLease applies change to the fleet's Lease as an operator would.
func (s *session) editLease(ctx context.Context, f *fleet, change func(*coordinationv1.Lease)) error {
	leases := s.r.kube.CoordinationV1().Leases("default")
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, f.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(l)
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("the operator's edit of Lease %s: %w", f.name, err)
	}
	return nil
}

// handEdit: round i edits the held Lease in one of three ways (i%3):
// leaseDurationSeconds 2→1, renewTime an hour ahead, or a label only; with
// the leader partitioned in every other round (i%2 == 0), so that it never
// sees the edit while its followers do. Shortening the duration of a
// partitioned leader is the dangerous one: a follower that counts the
// edited, shorter duration takes over while the leader still works.
func handEdit(ctx context.Context, s *session, f *fleet) error {
	edits := []struct {
		name   string
		change func(*coordinationv1.Lease, int)
	}{
		{"leaseDurationSeconds 2→1", func(l *coordinationv1.Lease, _ int) {
			one := int32(1)
			l.Spec.LeaseDurationSeconds = &one
		}},
		{"renewTime +1h", func(l *coordinationv1.Lease, _ int) {
			t := metav1.NewMicroTime(time.Now().Add(time.Hour))
			l.Spec.RenewTime = &t
		}},
		{"label only", func(l *coordinationv1.Lease, i int) {
			if l.Labels == nil {
				l.Labels = map[string]string{}
			}
			l.Labels["chaos.leadership.dev/touched"] = strconv.Itoa(i)
		}},
	}
	for i := range s.o.Transitions {
		e := edits[i%len(edits)]
		partitioned := i%2 == 0
		kind := "hand edit: " + e.name
		if partitioned {
			kind += ", leader partitioned"
		}
		s.progress(f, kind, i, s.o.Transitions)
		if err := operatorRound(ctx, s, f, kind, partitioned, partitioned, func(l *coordinationv1.Lease) { e.change(l, i) }); err != nil {
			return err
		}
	}
	return nil
}

// manualRelease: the operator empties holderIdentity (annotations kept),
// with the leader partitioned in every other round. The empty holder is no
// release by the holder: its work has not returned. A leader that sees the
// edit may take the Lease back in the same term (client-go does), so only
// a partitioned leader must be replaced.
func manualRelease(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		partitioned := i%2 == 0
		kind := "manual release"
		if partitioned {
			kind += ", leader partitioned"
		}
		s.progress(f, kind, i, s.o.Transitions)
		err := operatorRound(ctx, s, f, kind, partitioned, partitioned, func(l *coordinationv1.Lease) {
			empty := ""
			l.Spec.HolderIdentity = &empty
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// operatorRound edits the leader's Lease, with its path to the API server
// blackholed first if partitioned. If expect, a new term must follow (a
// partitioned leader's term runs out; an emptied holder is taken);
// otherwise the leader may keep its term or end it, depending on what the
// edit changed, and the round waits up to three lease durations for a
// successor. Either way, if a successor came, the round waits for the old
// leader's work to return before healing and going on.
func operatorRound(ctx context.Context, s *session, f *fleet, kind string, partitioned, expect bool, change func(*coordinationv1.Lease)) error {
	c, old, err := f.stableLeader(ctx)
	if err != nil {
		return err
	}
	if partitioned {
		c.proxy.Blackhole()
		defer c.proxy.Restore()
	}
	at := ledger.Now()
	s.fault(f, kind, c.identity, at, expect)
	if err := s.editLease(ctx, f, change); err != nil {
		return f.fail(err)
	}
	within := 3 * s.o.LeaseDuration
	if expect {
		within = s.o.WaitTimeout
	}
	took, err := f.takeover(ctx, at, old, within)
	if err != nil {
		return err
	}
	if expect && !took {
		return f.fail(fmt.Errorf("no new leader %v after %s on %v", within, kind, old))
	}
	if took {
		return f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term)
	}
	return nil
}

// deletePolling: the operator deletes the held Lease while every candidate
// polls (watch forbidden), in three variants (i%3):
//
//  0. deleted under a working leader;
//  1. the leader partitioned until its successor leads and its own work
//     has returned, then the Lease deleted and the old leader healed at
//     once: its last look at the Lease showed its own record, so a
//     shortcut "my own record is gone, re-create at once" takes it while
//     the successor, which learns of the deletion only by polling, works;
//  2. the leader partitioned and the Lease deleted at once: the followers
//     learn of it by a read, which says nothing about when it happened.
func deletePolling(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		variant := i % 3
		kinds := []string{"delete", "delete after a partitioned leader's successor began, old leader healed", "delete with the leader partitioned"}
		s.progress(f, kinds[variant], i, s.o.Transitions)
		c, old, err := f.stableLeader(ctx)
		if err != nil {
			return err
		}
		switch variant {
		case 0:
			at := ledger.Now()
			s.fault(f, kinds[0], c.identity, at, false)
			if err := s.deleteLease(ctx, f); err != nil {
				return err
			}
			took, err := f.takeover(ctx, at, old, 3*s.o.LeaseDuration)
			if err != nil {
				return err
			}
			if took {
				if err := f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term); err != nil {
					return err
				}
			}
		case 1:
			at := ledger.Now()
			s.fault(f, "partition", c.identity, at, true)
			c.proxy.Blackhole()
			err := f.awaitTakeover(ctx, at, old)
			if err == nil {
				err = f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term)
			}
			succ := old
			if err == nil {
				_, succ, err = f.stableLeader(ctx)
			}
			if err == nil {
				// The successor may re-create the Lease and keep its term
				// (client-go does); what matters is who else starts.
				at = ledger.Now()
				s.fault(f, kinds[1], "", at, false)
				err = s.deleteLease(ctx, f)
			}
			c.proxy.Restore()
			if err != nil {
				return err
			}
			if _, err := f.takeover(ctx, at, succ, 3*s.o.LeaseDuration); err != nil {
				return err
			}
		case 2:
			at := ledger.Now()
			s.fault(f, kinds[2], c.identity, at, true)
			c.proxy.Blackhole()
			err := s.deleteLease(ctx, f)
			if err == nil {
				err = f.awaitTakeover(ctx, at, old)
			}
			if err == nil {
				err = f.awaitEvent(ctx, c, ledger.EventLeadEnd, old.Term)
			}
			c.proxy.Restore()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) deleteLease(ctx context.Context, f *fleet) error {
	err := s.r.kube.CoordinationV1().Leases("default").Delete(ctx, f.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return f.fail(fmt.Errorf("the operator's delete of Lease %s: %w", f.name, err))
	}
	return nil
}

// clockDrift: one of the fleet's leadership candidates runs on a fast
// clock, the others on slow ones (see Options.ClockDrift), and a killed
// candidate's replacement keeps its rate. The fast candidate, waiting the
// least real time, takes over whenever it follows. So in partitions in a
// row the leader alternates: a partitioned fast leader is followed by a
// slow one, and a partitioned slow leader by the fast one, the case
// MaxClockDrift is for (a slow leader's validity against a fast
// successor's wait), every other partition. Every third round (i%3 == 2)
// kills the leader with SIGKILL instead and replaces it.
func clockDrift(ctx context.Context, s *session, f *fleet) error {
	for i := range s.o.Transitions {
		if i%3 != 2 {
			s.progress(f, "partition (drifting clocks)", i, s.o.Transitions)
			if err := partitionOnce(ctx, s, f, "partition"); err != nil {
				return err
			}
			continue
		}
		s.progress(f, "kill -9 (drifting clocks)", i, s.o.Transitions)
		err := signalOnce(ctx, s, f, func(*candidate) (syscall.Signal, string) { return syscall.SIGKILL, "kill -9" })
		if err != nil {
			return err
		}
	}
	return nil
}
