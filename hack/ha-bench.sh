#!/usr/bin/env bash
# Kubelet load and per-replica cost of N replicas on a local cluster (BENCHMARKS.md, "High availability").
#
#   CLUSTER_NAME=ha hack/ha-bench.sh ours|upstream <replicas> [shard]
#
# Starts <replicas> extra server processes beside the cluster's own, with its flags and loopback ports
# (plus --shard-by-lease when "shard" is given, authenticated by a ServiceAccount token), lets them warm
# up, then over WINDOW seconds (default 120) prints per replica the kubelet requests per minute (its own
# metrics_server_kubelet_request_total), CPU in % of a core and RSS. Stops them and deletes their Leases.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cluster=${CLUSTER_NAME:-msrs}
dir=$repo/.cluster/kwok/clusters/$cluster
kc() { "$repo/.cluster/bin/kubectl" --kubeconfig "$dir/kubeconfig.yaml" "$@"; }
which=${1:?ours|upstream}; n=${2:?replicas}; shard=${3:-}
window=${WINDOW:-120}; warmup=${WARMUP:-60}
primary=$(cat "$dir/pids/metrics-server.pid")
case "$which" in
  ours) bin=$(readlink "/proc/$primary/exe") ;;
  upstream) bin=$repo/.cluster/bin/metrics-server-upstream ;;
  *) echo "ours or upstream" >&2; exit 2 ;;
esac
mapfile -d '' argv < "/proc/$primary/cmdline"
args=("${argv[@]:1}")
token=$dir/ha-bench-token
if [ "$shard" = shard ]; then
  kc -n kube-system create serviceaccount metrics-server-ha-bench >/dev/null 2>&1 || true
  kc -n kube-system create token metrics-server-ha-bench --duration=2h >"$token"
fi
pids=(); ports=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  kc -n kube-system delete lease -l metrics-server-rs.io/shard-group=ha-bench >/dev/null 2>&1 || true
  rm -f "$token"
}
trap cleanup EXIT
for i in $(seq 0 $((n - 1))); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  extra=()
  if [ "$shard" = shard ]; then
    extra=(--shard-by-lease --shard-group=ha-bench --shard-namespace=kube-system --shard-identity="bench-$i"
      --shard-peer-address="127.0.0.1:$port" --shard-peer-token-file="$token"
      --shard-peer-allowed-users=system:serviceaccount:kube-system:metrics-server-ha-bench)
  fi
  a=()
  for x in "${args[@]}"; do
    case "$x" in --secure-port=*) a+=("--secure-port=$port") ;; *) a+=("$x") ;; esac
  done
  "$bin" "${a[@]}" "${extra[@]}" >"$dir/logs/ha-bench-$i.log" 2>&1 &
  pids+=($!); ports+=("$port")
done
sleep "$warmup"
curl_metrics() {
  curl -sk --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" "https://127.0.0.1:$1/metrics" |
    awk -v f="${2:-metrics_server_kubelet_request_total}" '$1 ~ "^" f {s += $NF} END {printf "%d\n", s + 0}'
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -a r0 c0
declare -a b0
for i in "${!pids[@]}"; do
  r0[$i]=$(curl_metrics "${ports[$i]}"); c0[$i]=$(cpu "${pids[$i]}")
  b0[$i]=$(curl_metrics "${ports[$i]}" msrs_shard_exchange_received_bytes_total)
done
sleep "$window"
hz=$(getconf CLK_TCK)
echo "$which x$n ${shard:-full}: window ${window}s"
for i in "${!pids[@]}"; do
  r1=$(curl_metrics "${ports[$i]}"); c1=$(cpu "${pids[$i]}")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/${pids[$i]}/status")
  b1=$(curl_metrics "${ports[$i]}" msrs_shard_exchange_received_bytes_total)
  awk -v i="$i" -v r="$((r1 - r0[$i]))" -v c="$((c1 - c0[$i]))" -v hz="$hz" -v w="$window" -v rss="$rss" \
    -v b="$((b1 - b0[$i]))" \
    'BEGIN {printf "  replica %d: %.1f kubelet requests/min, %.2f %% CPU, RSS %.1f MiB, %.0f exchange bytes/min received\n", i, r * 60 / w, c * 100 / hz / w, rss / 1024, b * 60 / w}'
done
