#!/usr/bin/env bash
# Makes sure PostgreSQL's server programs are installed, from Debian's
# packages, and prints the directory that holds them (initdb, pg_ctl,
# postgres) on stdout; everything else goes to stderr. Idempotent: when
# PostgreSQL is there it installs nothing.
#
# The credentials e2e tests (e2e/credentials) start their own server from
# these programs: initdb into a temp dir, a free port on 127.0.0.1, run as
# the "postgres" user when the tests run as root (the server refuses root).
# They use nothing else: the cluster the Debian package may create and
# start on port 5432 is left alone.
#
#   ./scripts/postgres.sh                      # install if missing, print the bin dir
#   export LEADERSHIP_PG_BINDIR=$(./scripts/postgres.sh)
set -euo pipefail

bindir() {
	local d
	if [ -n "${LEADERSHIP_PG_BINDIR:-}" ] && [ -x "$LEADERSHIP_PG_BINDIR/initdb" ]; then
		echo "$LEADERSHIP_PG_BINDIR"
		return 0
	fi
	# Debian keeps each major version apart; take the newest.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return 0
	fi
	return 1
}

if ! dir=$(bindir); then
	echo "postgres.sh: PostgreSQL not found; installing Debian's package 'postgresql'" >&2
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "postgres.sh: need root (or sudo) to run apt-get install postgresql" >&2
			exit 1
		fi
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update >&2
	$sudo apt-get install -y --no-install-recommends postgresql >&2
	if ! dir=$(bindir); then
		echo "postgres.sh: installed 'postgresql' but found no initdb under /usr/lib/postgresql/*/bin" >&2
		exit 1
	fi
fi

# Tests run as root start the server as this user, which the package
# creates; make sure it exists even on an unusual install.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	echo "postgres.sh: creating the system user 'postgres'" >&2
	useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

echo "$dir"
