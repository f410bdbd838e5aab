#!/usr/bin/env bash
# Builds the third-party binaries the local cluster runs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kubectl-1.36, etcd, kwok, kwokctl, upstream metrics-server, helm, crane) from the Go modules
# pinned under hack/tools/<tool>/, with the machine's Go toolchain and the Go module proxy.
#
# Each tool module is built once into a per-user cache folder keyed by a hash of its go.mod, go.sum and
# sources plus the Go version, so a fresh clone on the same machine (as in CI) reuses the binaries and a
# changed pin rebuilds only that tool. Finally every binary is linked into $BIN_DIR (default .cluster/bin).
#
# Usage: hack/build-tools.sh [tool ...]   (default: the cluster's tools; helm, crane and vpa on request)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache_root=${METRICS_SERVER_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-server-rs}
bin_dir=${BIN_DIR:-$repo/.cluster/bin}
mkdir -p "$cache_root/tools" "$bin_dir"

# Versions stamped into binaries that report them (kwokctl reads `--version` to pick flags).
kube_pin() { awk '$1=="k8s.io/kubernetes"{print $2}' "$repo/hack/tools/$1/go.mod" | head -n1; }
kube_version=$(kube_pin kubernetes)
# The older kubectl (metrics.k8s.io/v1beta1 only) kept beside the control plane's own.
old_kubectl_version=$(kube_pin kubectl-1.36)
ms_version=$(awk '$1=="sigs.k8s.io/metrics-server"{print $2}' "$repo/hack/tools/metrics-server/go.mod" | head -n1)

# tool name -> "package[:output-name] ..." (paths are relative to the tool's module)
packages() {
  case "$1" in
    kubernetes) echo "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl" ;;
    kubectl-1.36) echo "k8s.io/kubernetes/cmd/kubectl:kubectl-1.36" ;;
    etcd) echo ".:etcd" ;;
    kwok) echo "sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl" ;;
    metrics-server) echo "sigs.k8s.io/metrics-server/cmd/metrics-server:metrics-server-upstream" ;;
    helm) echo "helm.sh/helm/v3/cmd/helm" ;;
    crane) echo "github.com/google/go-containerregistry/cmd/crane" ;;
    vpa) echo "./pkg/recommender:vpa-recommender" ;;
    *) echo "unknown tool module: $1" >&2; return 1 ;;
  esac
}

# -X flags stamping a Kubernetes version ($1, e.g. v1.37.2) into component-base and client-go.
kube_version_flags() {
  local v=$1 minor p=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  minor=$(echo "$v" | cut -d. -f2)
  echo "-X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean" \
    "-X $c.gitVersion=$v -X $c.gitMajor=1 -X $c.gitMinor=$minor"
}

ldflags() {
  local x="-s -w"
  case "$1" in
    kubernetes) x="$x $(kube_version_flags "$kube_version")" ;;
    kubectl-1.36) x="$x $(kube_version_flags "$old_kubectl_version")" ;;
    kwok) x="$x -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${kube_version#v}" ;;
    metrics-server) x="$x -X k8s.io/client-go/pkg/version.gitVersion=$ms_version -X k8s.io/client-go/pkg/version.gitTreeState=clean" ;;
  esac
  echo "$x"
}

cache_key() {
  local dir=$1
  { go version; ldflags "$(basename "$dir")"; cat "$dir"/go.mod "$dir"/go.sum; cat "$dir"/*.go 2>/dev/null || true; } | sha256sum | cut -c1-16
}

# Where a tool's packages are built: its pin module, except for the VPA, whose own go.mod (with an
# exclude block) must be the main module: its downloaded source, verified against the pin's go.sum.
source_dir() {
  local tool=$1 dir=$2 module version
  if [ "$tool" != vpa ]; then echo "$dir"; return; fi
  read -r module version < <(awk '$1=="require"{print $2, $3}' "$dir/go.mod")
  (cd "$dir" && go mod download -json "$module@$version") | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

build_tool() {
  local tool=$1 dir=$repo/hack/tools/$1 src
  local out="$cache_root/tools/$tool-$(cache_key "$dir")"
  if [ -f "$out/.complete" ]; then
    echo "==> $tool: cached in $out"
  else
    echo "==> $tool: building into $out (a cold build of all tools takes about 25 minutes on 2 cores)"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    local start=$SECONDS spec pkg name
    src=$(source_dir "$tool" "$dir")
    for spec in $(packages "$tool"); do
      pkg=${spec%%:*}; name=${spec#*:}
      [ "$name" = "$spec" ] && name=$(basename "$pkg")
      echo "    building $name ($pkg)"
      # -v lists each package as it is compiled; print a progress line every 100 packages so a
      # newcomer sees that the long first build is moving.
      (cd "$src" && go build -v -trimpath -ldflags "$(ldflags "$tool")" -o "$out.tmp/$name" "$pkg" 2>&1) |
        awk -v n="$name" '/^#|\.go:[0-9]+:|^go: / {print; next} {c++; if (c % 100 == 0) {printf "    %s: %d packages compiled\n", n, c; fflush()}}'
      [ -x "$out.tmp/$name" ] || { echo "build of $name failed" >&2; return 1; }
    done
    touch "$out.tmp/.complete"
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "    $tool built in $((SECONDS - start))s"
  fi
  local f
  for f in "$out"/*; do ln -sfn "$f" "$bin_dir/$(basename "$f")"; done
}

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then tools=(kubernetes kubectl-1.36 etcd kwok metrics-server); fi
for t in "${tools[@]}"; do build_tool "$t"; done
