#!/usr/bin/env bash
# The whole test suite: formatting, staticcheck, vet, the unit tests and the
# e2e tests against a real kube-apiserver + etcd that the tests start
# themselves (and a PostgreSQL that scripts/postgres.sh installs if missing).
# Needs only Go and Debian's apt (modules come from the Go module proxy).
# Measured cold (empty caches, fresh clone, 2 cores): 990 s; warm ~5 min.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

step "the library's module graph: no k8s.io/kubernetes (e2e's), no PostgreSQL driver (examples/credentials')"
modules=$(go list -m all)
if heavy=$(grep -E '^(k8s\.io/kubernetes|github\.com/jackc/[^ ]+) ' <<<"$modules"); then
	echo "the library's go.mod must not pull these into its users' version selection; they belong in e2e/ or examples/credentials/:"
	echo "$heavy"; exit 1
fi

step "staticcheck (pinned in tools/go.mod)"
go -C tools build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
./bin/staticcheck ./...
(cd e2e && ../bin/staticcheck ./...)
(cd tools && ../bin/staticcheck ./...)
(cd examples/credentials && ../../bin/staticcheck ./...)

step "go vet (library)"
go vet ./...
step "go vet (e2e)"
(cd e2e && go vet ./...)
step "go vet (tools)"
go -C tools vet ./...
step "go vet (reference workload, examples/credentials)"
go -C examples/credentials vet ./...

step "helm lint (pinned in tools/go.mod), both modes of the chart"
for values in deploy/helm/leadership/ci/*-values.yaml; do
	go -C tools tool helm lint --strict ../deploy/helm/leadership --values "../$values"
done

step "unit tests with -race (library)"
go test -race -count=1 ./...
step "unit tests with -race (reference workload, examples/credentials: its own module)"
go -C examples/credentials test -race -count=1 ./...

step "model check of the election protocol (spin; installs Debian's spin if missing)"
./scripts/spin.sh

step "release build (tools module): image for amd64+arm64 built twice and compared, run under chroot (needs root)"
go -C tools test -race -count=1 -timeout 30m ./...

step "PostgreSQL for the credentials e2e tests (installs Debian's postgresql if missing)"
pgbin=$(./scripts/postgres.sh)
export LEADERSHIP_PG_BINDIR="$pgbin"

step "integration tests with -race (real kube-apiserver + etcd)"
(cd e2e && go test -race -count=1 -timeout 40m ./...)

step "all tests passed"
