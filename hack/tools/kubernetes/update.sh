#!/usr/bin/env bash
# Re-pins the Kubernetes tools module to KUBE_VERSION (e.g. v1.36.3): k8s.io/kubernetes requires its staging
# modules at v0.0.0, so a `replace` is generated for every k8s.io module its go.mod requires at v0.0.0,
# pointing at the matching v0.X.Y release.
set -euo pipefail
cd "$(dirname "$0")"
kube=${1:?usage: update.sh v1.36.3}
staging=v0.${kube#v1.}
modfile=$(go mod download -json "k8s.io/kubernetes@$kube" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go mod edit -require="k8s.io/kubernetes@$kube"
for m in $(awk '$2=="v0.0.0"{print $1}' "$modfile" | sort -u); do
  go mod edit -replace="$m=$m@$staging"
done
go mod tidy
