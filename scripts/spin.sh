#!/usr/bin/env bash
# Model-checks the election protocol (model/election.pml) with spin:
#  - the model with every fix must verify: full state space, no error;
#  - the model with one fix reverted (each -D switch below) must fail, and
#    its shortest counterexample is printed as a narration.
# Installs Debian's spin if it is missing (needs apt-get and gcc).
# Usage: scripts/spin.sh [all|safety|bugs|NAME...]   (default: all)
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

# Bounds of the checked configuration (see model/README.md).
bounds=(-DMAXV=4 -DOPS=2 -DDELS=1)

# name | spin -D flags (the switch, then the smallest bounds that show the
# counterexample) | what it reverts
bugs=(
	"edit-adopted|-DBUG_ADOPT_EDIT -DBUG_SHORTER -DMAXV=4 -DOPS=1|fix 1: hand edit adopted by the leader, followers count the edited duration"
	"shorter-counted|-DBUG_SHORTER -DMAXV=4 -DOPS=1|fix 1 (follower side alone): followers count the current record's duration"
	"empty-at-once|-DBUG_EMPTY_AT_ONCE -DMAXV=4 -DOPS=1|fix 2: an empty holder without the release mark taken at once"
	"stale-delete|-DBUG_STALE_DELETE -DMAXV=5 -DOPS=1|fix 3: a deletion learned by a read counted from the stale observation"
	"reown|-DBUG_REOWN -DMAXV=5 -DOPS=1|fix 3: re-create at once when the deleted record was ours"
	"no-margin|-DBUG_NO_MARGIN -DMAXV=3 -DOPS=0|fix 4: no end margin for timer lateness"
	"late-start|-DBUG_LATE_START -DMAXV=4 -DOPS=0|work started on an acquisition answered after its validity ran out"
	"v2-empty-no-count|-DHOLE_EMPTY_NO_COUNT -DMAXV=5 -DOPS=1|protocol-v2 as written: an unmarked empty holder does not restart the countdown"
	"v2-no-floor|-DHOLE_NO_FLOOR -DMAXV=4 -DOPS=1|protocol-v2 as written: maxAnnounced starts from 0, not from the own lease duration"
)

# verify NAME EXPECT FLAGS... : EXPECT is "pass" or "fail". Writes its
# report to $work/NAME/report and its status to $work/NAME/status.
verify() {
	local name=$1 expect=$2
	shift 2
	local dir=$work/$name
	mkdir -p "$dir"
	cp "$model" "$dir/election.pml"
	(
		set -e
		cd "$dir"
		spin "$@" -a election.pml >/dev/null
		local cflags=(-O2 -w -DSAFETY -DCOLLAPSE)
		# SPIN_SHORTEST=1: search counterexamples breadth-first, so that the
		# trail is the shortest (slower: model/README.md shows those trails).
		[ "$expect" = fail ] && [ "${SPIN_SHORTEST:-0}" = 1 ] && cflags+=(-DBFS)
		cflags+=(-DVECTORSZ=256)
		gcc "${cflags[@]}" -o pan pan.c
		local start=$SECONDS
		./pan -m1000000 >pan.out 2>&1 || true
		local errs states
		errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
		states=$(sed -n 's/^ *\([0-9][0-9e.+]*\) states, stored.*/\1/p' pan.out | head -1)
		printf '%-18s %-4s states stored %-10s pan time %s, wall %ss, errors %s\n' \
			"$name" "$expect" "$states" "$(sed -n 's/^pan: elapsed time \(.*\)/\1/p' pan.out)" \
			"$((SECONDS - start))" "${errs:-?}"
		if grep -q "search not completed\|max search depth too small" pan.out; then
			echo "  incomplete search:"; grep -i "depth\|not completed" pan.out | sed 's/^/  /'
			exit 1
		fi
		case $expect in
		pass) [ "$errs" = 0 ] || { sed 's/^/  /' pan.out; exit 1; } ;;
		fail)
			[ -n "$errs" ] && [ "$errs" != 0 ] || { echo "  expected a counterexample, found none"; exit 1; }
			spin "$@" -t election.pml 2>&1 | awk '
				/^ *---- tick/ { T++; next }
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
if [ "$what" = all ] || [[ " $what " = *" safety "* ]]; then
	run correct "the model with every fix: must verify (${bounds[*]})" pass "${bounds[@]}"
fi
for b in "${bugs[@]}"; do
	IFS='|' read -r name flags why <<<"$b"
	if [ "$what" = all ] || [[ " $what " = *" bugs "* ]] || [[ " $what " = *" $name "* ]]; then
		# shellcheck disable=SC2086
		run "$name" "$name ($why): must fail" fail $flags
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
