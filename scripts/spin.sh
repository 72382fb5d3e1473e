#!/usr/bin/env bash
# Model-checks the election protocol (model/election.pml) with spin:
#  - the model with every fix must verify: full state space, no error
#    (safety: never two electors working at once);
#  - and its liveness property too (once the faults stop, a leader exists
#    again and again), under weak fairness;
#  - the model with one fix reverted (each -D switch below) must fail, and
#    its counterexample is printed as a narration.
# Installs Debian's spin if it is missing (needs apt-get and gcc).
# Usage: scripts/spin.sh [all|safety|liveness|bugs|liveness-bugs|NAME...]   (default: all)
#   SPIN_TRAILS=1 prints each counterexample's narration in full;
#   SPIN_SHORTEST=1 searches them breadth-first (shortest trail, slower).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v spin >/dev/null; then
	echo "spin is missing: installing Debian's spin"
	if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq spin >/dev/null
fi
command -v gcc >/dev/null || { echo "gcc is needed to compile spin's verifier" >&2; exit 1; }

model=$PWD/model/election.pml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The checks: name | kind | spin -D flags | what it shows.
#   safety: the model with every fix, exhaustively: no assertion violated;
#   live:   the liveness property (ltl live) with weak fairness, exhaustively:
#           no acceptance cycle, no assertion violated;
#   fail / live-fail: a fix reverted (the switch, then the smallest bounds
#           that show it): must give a counterexample, printed as a narration
#           (breadth-first if the flags hold -DVNUM: quicker for that one).
# Writes are unbounded unless -DMAXW (model/README.md); SPIN_BIG=1 checks
# larger configurations by hand (not in CI: tens of minutes, GBs).
if [ "${SPIN_BIG:-0}" = 1 ]; then
	checks=(
		"safety|safety|-DOPS=3 -DDELS=2|the model with every fix, 3 operator actions, two of them may be deletions"
		"liveness|live|-DLIVENESS -DRESTORE -DOPS=2 -DDELS=1|a leader again and again once healed, 2 operator actions (edits, a deletion, restores)"
	)
else
	checks=(
		"safety|safety|-DOPS=2 -DDELS=2|the model with every fix, 2 operator actions (both may be deletions)"
		"liveness|live|-DLIVENESS -DRESTORE -DOPS=1 -DDELS=1|a leader again and again once healed (faults before: loss, late writes, one operator action: an edit, a deletion or a restore)"
	)
fi
checks+=(
	"edit-adopted|fail|-DBUG_ADOPT_EDIT -DBUG_SHORTER -DMAXW=3 -DOPS=1|fix 1: hand edit adopted by the leader, followers count the edited duration"
	"shorter-counted|fail|-DBUG_SHORTER -DMAXW=3 -DOPS=1|fix 1 (follower side alone): followers count the current record's duration"
	"empty-at-once|fail|-DBUG_EMPTY_AT_ONCE -DMAXW=3 -DOPS=1|fix 2: an empty holder without the release mark taken at once"
	"no-hold|fail|-DBUG_NO_HOLD -DMAXW=4 -DOPS=1|fix 3: the creator leads on its create at once (no hold; a read that finds nothing keeps the chain, as the code does)"
	"no-hold-v2|fail|-DBUG_NO_HOLD -DREAD_EXTENDS -DVNUM -DMAXW=4 -DOPS=2 -DDELS=2|fix 3 as first written: no hold, a read that finds nothing counts a lease from now; two deletions and a create in flight"
	"no-margin|fail|-DBUG_NO_MARGIN -DMAXW=2 -DOPS=0|fix 4: no end margin for timer lateness"
	"late-start|fail|-DBUG_LATE_START -DMAXW=3 -DOPS=0|work started on an acquisition answered after its validity ran out"
	"v2-empty-no-count|fail|-DHOLE_EMPTY_NO_COUNT -DMAXW=4 -DOPS=1|protocol-v2 as written: an unmarked empty holder does not restart the countdown"
	"v2-no-floor|fail|-DHOLE_NO_FLOOR -DMAXW=3 -DOPS=1|protocol-v2 as written: maxAnnounced starts from 0, not from the own lease duration"
	"backwards|live-fail|-DLIVENESS -DRESTORE -DBUG_BACKWARDS -DOPS=1 -DDELS=0|liveness: a read of a version older than one seen is dropped (etcd restored without --bump-revision): no leader ever again"
	"read-extends|live-fail|-DLIVENESS -DREAD_EXTENDS -DOPS=1 -DDELS=1|liveness: every read that finds nothing restarts the countdown: a deleted lock is never re-created"
)

# verify NAME KIND FLAGS... : KIND as above. Writes its report to
# $work/NAME/report and its status to $work/NAME/status.
verify() {
	local name=$1 kind=$2
	shift 2
	local dir=$work/$name
	mkdir -p "$dir"
	cp "$model" "$dir/election.pml"
	(
		set -e
		cd "$dir"
		local spinflags=("$@")
		# breadth-first: no hidden variables (the narration's version numbers)
		[ "$kind" = fail ] && [ "${SPIN_SHORTEST:-0}" = 1 ] && spinflags+=(-DVNUM)
		spin "${spinflags[@]}" -a election.pml >/dev/null
		# SPIN_MEMLIM_MB: pan stops (and the check fails) rather than swap.
		local cflags=(-O2 -w -DCOLLAPSE -DVECTORSZ=256 "-DMEMLIM=${SPIN_MEMLIM_MB:-8000}") runflags=(-m1000000)
		case $kind in
		safety | fail)
			cflags+=(-DSAFETY)
			# SPIN_SHORTEST=1: search counterexamples breadth-first, so that
			# the trail is the shortest (slower: model/README.md shows those
			# trails).
			[ "$kind" = fail ] && { [ "${SPIN_SHORTEST:-0}" = 1 ] || [[ " $* " = *" -DVNUM "* ]]; } && cflags+=(-DBFS)
			;;
		live | live-fail)
			# acceptance cycles of the never claim (ltl live), weak fairness
			runflags+=(-a -f)
			;;
		esac
		gcc "${cflags[@]}" -o pan pan.c
		local start=$SECONDS
		./pan "${runflags[@]}" >pan.out 2>&1 || true
		local errs states
		errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
		states=$(sed -n 's/^ *\([0-9][0-9e.+]*\) states, stored.*/\1/p' pan.out | head -1)
		printf '%-18s %-9s states stored %-10s pan time %s, wall %ss, memory %s MB, errors %s\n' \
			"$name" "$kind" "$states" "$(sed -n 's/^pan: elapsed time \(.*\)/\1/p' pan.out)" \
			"$((SECONDS - start))" "$(sed -n 's/^ *\([0-9.]*\)[[:space:]]*total actual memory usage.*/\1/p' pan.out)" "${errs:-?}"
		# A check that must verify must have searched everything (a search
		# that stops at its counterexample is "not completed" too).
		if [ "$kind" = safety ] || [ "$kind" = live ] &&
			grep -qi "search not completed\|max search depth too small\|out of memory\|MEMLIM" pan.out; then
			echo "  incomplete search:"; grep -i "depth reached\|too small\|not completed\|memory\|MEMLIM" pan.out | sed 's/^/  /'
			exit 1
		fi
		case $kind in
		safety | live) [ "$errs" = 0 ] || { sed 's/^/  /' pan.out; exit 1; } ;;
		fail | live-fail)
			[ -n "$errs" ] && [ "$errs" != 0 ] || { echo "  expected a counterexample, found none"; exit 1; }
			if [ "$kind" = live-fail ] && ! grep -q "acceptance cycle" pan.out; then
				echo "  expected an acceptance cycle (a liveness counterexample), found:"; grep "pan:" pan.out | sed 's/^/  /'
				exit 1
			fi
			spin "${spinflags[@]}" -t election.pml 2>&1 | awk '
				/^ *---- tick/ { T++; next }
				/START OF CYCLE/ { print "  T=" T+0 "  <<<<< the cycle starts: it repeats forever >>>>>"; next }
				/^ *Never claim/ { next }
				/^ *[a-zA-Z]/ { sub(/^ +/, ""); if ($0 ~ /^spin: (trail ends|text of failed)/ || $0 !~ /^spin:/) print "  T=" T+0 "  " $0 }
			' >trail.txt
			if [ "${SPIN_TRAILS:-0}" = 1 ]; then cat trail.txt; else tail -n 8 trail.txt; fi
			;;
		esac
	) >"$dir/report" 2>&1 && echo ok >"$dir/status" || echo failed >"$dir/status"
}

# Runs go two at a time (CI has two cores); reports print in order.
jobs_max=${SPIN_JOBS:-2}
names=()
run() {
	local name=$1 title=$2
	shift 2
	names+=("$name")
	mkdir -p "$work/$name"
	echo "== $title" >"$work/$name/title"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
	verify "$name" "$@" &
}

what=${*:-all}
for c in "${checks[@]}"; do
	IFS='|' read -r name kind flags why <<<"$c"
	case $kind in
	safety) group=safety must="must verify" ;;
	live) group=liveness must="must verify" ;;
	fail) group=bugs must="must fail" ;;
	live-fail) group="bugs liveness-bugs" must="must fail (a cycle)" ;;
	esac
	sel=0
	[ "$what" = all ] && sel=1
	for g in $group $name; do [[ " $what " = *" $g "* ]] && sel=1; done
	if [ "$sel" = 1 ]; then
		# shellcheck disable=SC2086
		run "$name" "$name ($why; $flags): $must" "$kind" $flags
	fi
done
wait
failed=0
for name in "${names[@]}"; do
	cat "$work/$name/title" "$work/$name/report"
	[ "$(cat "$work/$name/status" 2>/dev/null)" = ok ] || failed=1
done
if [ "$failed" != 0 ]; then
	echo "spin: FAILED"
	exit 1
fi
echo "spin: all checks as expected"
