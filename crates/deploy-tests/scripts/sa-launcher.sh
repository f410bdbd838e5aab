#!/usr/bin/env bash
# The metrics-server "binary" of the RBAC-is-enough cluster (`make deploy-test` passes this script as
# METRICS_SERVER_BIN to hack/cluster.sh). kwokctl starts it with the cluster admin's kubeconfig; it waits
# until the deploy tests have applied components.yaml's ServiceAccount, RBAC and APIService and written
# a kubeconfig that holds only a token of that ServiceAccount, then runs the real server with that
# kubeconfig for --kubeconfig, --authentication-kubeconfig and --authorization-kubeconfig. Every other
# argument is passed through.
#
# Files in $DEPLOY_TEST_SA_DIR (default .cluster/deploy-test): server-binary (path of the real server,
# written by the Makefile), sa-kubeconfig.yaml (written by the tests), started (written here: the
# command line actually run, which the tests check).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
dir=${DEPLOY_TEST_SA_DIR:-$repo/.cluster/deploy-test}
real=$(cat "$dir/server-binary")
kubeconfig=$dir/sa-kubeconfig.yaml

# kwokctl first runs `<binary> --version` to learn which flags it may pass: answer that directly.
case " $* " in
  *" --kubeconfig"*) ;;
  *) exec "$real" "$@" ;;
esac

echo "sa-launcher: waiting for $kubeconfig" >&2
while [ ! -s "$kubeconfig" ]; do sleep 0.5; done

args=()
replace_next=false
for a in "$@"; do
  if $replace_next; then
    a=$kubeconfig
    replace_next=false
  else
    case "$a" in
      --kubeconfig=* | --authentication-kubeconfig=* | --authorization-kubeconfig=*) a="${a%%=*}=$kubeconfig" ;;
      --kubeconfig | --authentication-kubeconfig | --authorization-kubeconfig) replace_next=true ;;
    esac
  fi
  args+=("$a")
done

printf '%s\n' "$real" "${args[@]}" >"$dir/started.tmp" && mv "$dir/started.tmp" "$dir/started"
echo "sa-launcher: starting $real with the ServiceAccount's kubeconfig" >&2
exec -a metrics-server "$real" "${args[@]}"
