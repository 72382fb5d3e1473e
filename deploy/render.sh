#!/usr/bin/env bash
# Renders the Helm chart with its default values into plain manifests, for
# clusters without Helm: deploy/manifests/leadership.yaml. Helm is pinned as
# a Go module tool in tools/go.mod, so this needs only Go. The e2e test
# TestManifestsUpToDate fails when the committed output is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/manifests/leadership.yaml
{
	echo "# Rendered from deploy/helm/leadership with its default values by deploy/render.sh."
	echo "# Do not edit: change the chart and run deploy/render.sh."
	go -C tools tool helm template leadership ../deploy/helm/leadership --namespace default
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
