#!/usr/bin/env bash
# Renders the Helm chart with the example values of ci/run-values.yaml (mode
# run, a busybox loop as the application) into plain manifests, for clusters
# without Helm: deploy/manifests/leadership.yaml. Replace the application's
# image and command in the output with yours. Helm is pinned as
# a Go module tool in tools/go.mod, so this needs only Go. The e2e test
# TestManifestsUpToDate fails when the committed output is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/manifests/leadership.yaml
{
	echo "# Rendered from deploy/helm/leadership with ci/run-values.yaml by deploy/render.sh."
	echo "# Do not edit: change the chart and run deploy/render.sh."
	go -C tools tool helm template leadership ../deploy/helm/leadership --namespace default \
		--values ../deploy/helm/leadership/ci/run-values.yaml
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
