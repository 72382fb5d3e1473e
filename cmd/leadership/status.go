package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/leadership-dev/leadership/kubelease"
)

// leaseStatus is one Lease as `status` shows it.
type leaseStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Holder is "" when the Lease is released.
	Holder string `json:"holder"`
	// Token is the fencing token the holder published (0: none yet).
	Token            uint64     `json:"token"`
	AcquireTime      *time.Time `json:"acquireTime,omitempty"`
	RenewTime        *time.Time `json:"renewTime,omitempty"`
	LeaseDurationSec int64      `json:"leaseDurationSeconds"`
	// AgeSeconds is how long the holder has held it (wall clocks).
	AgeSeconds *float64 `json:"ageSeconds,omitempty"`
	// ExpiresInSeconds is renewTime + leaseDuration − now on this host's
	// clock: negative once overdue. Informational, as it compares clocks.
	ExpiresInSeconds *float64          `json:"expiresInSeconds,omitempty"`
	Transitions      int32             `json:"transitions"`
	PreferredHolder  string            `json:"preferredHolder,omitempty"`
	Values           map[string]string `json:"values,omitempty"`
	// Strategy is Coordinated Leader Election's spec.strategy, if set.
	Strategy string `json:"strategy,omitempty"`
}

func newStatusCmd(g *globalFlags, stdout io.Writer) *cobra.Command {
	var lease, output string
	var all, allNamespaces bool
	cmd := &cobra.Command{
		Use:   "status [--lease NAME | --all | -A] [-o table|wide|json|yaml]",
		Short: "Show who holds a Lease: holder, token, age, expiry, transitions, requested successor",
		Long: `Show the state of one Lease (--lease), of every Lease in the namespace (--all),
or of every Lease in every namespace (-A, --all-namespaces, as in kubectl):
the holder, its fencing token, how long it has held the Lease, when it expires
unless renewed, how many times the holder changed, and a requested successor
(a handover in progress). Times compare this host's clock with the holder's.

With -o json or -o yaml, --lease prints one object and --all or -A a list; -o wide
adds the lease duration and the acquire and renew times to the table.

` + exitCodesHelp,
		Example: `  leadership status --lease credential-renewer
  leadership status --all -n payments
  leadership status -A
  leadership status --lease credential-renewer -o json | jq .holder
  kubectl leadership status --all -n payments -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "table", "wide", "json", "yaml":
			default:
				return usageErrorf("invalid -o %q: use table, wide, json or yaml", output)
			}
			if allNamespaces {
				if all {
					return usageErrorf("give either --all (one namespace) or -A/--all-namespaces (every namespace), not both")
				}
				if lease != "" {
					return usageErrorf("give either --lease NAME or -A/--all-namespaces, not both")
				}
				all = true
			}
			switch {
			case all && lease != "":
				return usageErrorf("give either --lease NAME or --all, not both")
			case !all && lease == "":
				return usageErrorf("--lease NAME or --all is required: which Lease? ('leadership status --all' lists them)")
			case !all:
				if err := checkLeaseName(lease); err != nil {
					return err
				}
			}
			k, err := g.connect(nil)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			now := time.Now()
			var list []leaseStatus
			if all {
				ns, where := k.namespace, fmt.Sprintf("Leases in namespace %q", k.namespace)
				if allNamespaces {
					ns, where = metav1.NamespaceAll, "Leases in all namespaces"
				}
				ls, err := k.client.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return k.apiError("list", where, err)
				}
				for i := range ls.Items {
					list = append(list, statusOf(&ls.Items[i], now))
				}
				sort.Slice(list, func(i, j int) bool {
					if list[i].Namespace != list[j].Namespace {
						return list[i].Namespace < list[j].Namespace
					}
					return list[i].Name < list[j].Name
				})
			} else {
				l, err := k.client.CoordinationV1().Leases(k.namespace).Get(ctx, lease, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return k.leaseNotFound(ctx, lease)
				}
				if err != nil {
					return k.apiError("get", fmt.Sprintf("Lease %s/%s", k.namespace, lease), err)
				}
				list = append(list, statusOf(l, now))
			}
			if output == "json" || output == "yaml" {
				if all {
					if list == nil {
						list = []leaseStatus{}
					}
					return printObject(stdout, output, list)
				}
				return printObject(stdout, output, list[0])
			}
			if len(list) == 0 {
				if allNamespaces {
					fmt.Fprintln(stdout, "No Leases in any namespace.")
				} else {
					fmt.Fprintf(stdout, "No Leases in namespace %q.\n", k.namespace)
				}
				return nil
			}
			return printTable(stdout, list, output == "wide", allNamespaces)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&lease, "lease", "l", "", "name of the Lease")
	fs.BoolVar(&all, "all", false, "every Lease in the namespace")
	fs.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "every Lease in every namespace (with a NAMESPACE column)")
	fs.StringVarP(&output, "output", "o", "table", "output format: table, wide, json or yaml")
	return cmd
}

func statusOf(l *coordinationv1.Lease, now time.Time) leaseStatus {
	s := leaseStatus{Namespace: l.Namespace, Name: l.Name}
	if l.Spec.Strategy != nil {
		s.Strategy = string(*l.Spec.Strategy)
	}
	r, err := kubelease.Decode(l)
	if err != nil {
		// Not one of ours, or an odd resourceVersion: show the spec alone.
		if l.Spec.HolderIdentity != nil {
			s.Holder = *l.Spec.HolderIdentity
		}
		return s
	}
	s.Holder = r.HolderIdentity
	s.Token = r.TermToken()
	s.LeaseDurationSec = int64(r.LeaseDuration / time.Second)
	s.Transitions = r.LeaseTransitions
	s.PreferredHolder = r.PreferredHolder
	s.Values = r.Values
	if !r.AcquireTime.IsZero() {
		t := r.AcquireTime
		s.AcquireTime = &t
		if s.Holder != "" {
			age := now.Sub(t).Seconds()
			s.AgeSeconds = &age
		}
	}
	if !r.RenewTime.IsZero() {
		t := r.RenewTime
		s.RenewTime = &t
		if s.Holder != "" {
			exp := t.Add(r.LeaseDuration).Sub(now).Seconds()
			s.ExpiresInSeconds = &exp
		}
	}
	return s
}

// printTable prints the table; wide adds the lease duration and the
// acquire and renew times, as kubectl's -o wide adds columns; namespaces
// adds a first NAMESPACE column, as kubectl's -A does.
func printTable(w io.Writer, list []leaseStatus, wide, namespaces bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "LEASE\tHOLDER\tTOKEN\tAGE\tEXPIRES IN\tTRANSITIONS\tSUCCESSOR"
	if namespaces {
		head = "NAMESPACE\t" + head
	}
	if wide {
		head += "\tDURATION\tACQUIRED\tRENEWED\tSTRATEGY"
	}
	fmt.Fprintln(tw, head)
	for _, s := range list {
		holder, token, age, exp := s.Holder, "-", "-", "-"
		if holder == "" {
			holder = "(released)"
		}
		if s.Token != 0 && s.Holder != "" {
			token = strconv.FormatUint(s.Token, 10)
		}
		if s.AgeSeconds != nil {
			age = human(*s.AgeSeconds)
		}
		if s.ExpiresInSeconds != nil {
			if *s.ExpiresInSeconds >= 0 {
				exp = human(*s.ExpiresInSeconds)
			} else {
				exp = "expired " + human(-*s.ExpiresInSeconds) + " ago"
			}
		}
		succ := s.PreferredHolder
		if succ == "" {
			succ = "-"
		} else if succ == "*" {
			succ = "* (anyone else)"
		}
		if namespaces {
			fmt.Fprintf(tw, "%s\t", s.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s", s.Name, holder, token, age, exp, s.Transitions, succ)
		if wide {
			strategy := s.Strategy
			if strategy == "" {
				strategy = "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", leaseDuration(s.LeaseDurationSec), timestamp(s.AcquireTime), timestamp(s.RenewTime), strategy)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// human prints seconds the way kubectl prints ages, with tenths below 10s.
func human(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func leaseDuration(sec int64) string {
	if sec <= 0 {
		return "-"
	}
	return (time.Duration(sec) * time.Second).String()
}

// timestamp prints a Lease time in UTC to the millisecond, as precise as
// the Lease keeps it.
func timestamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
