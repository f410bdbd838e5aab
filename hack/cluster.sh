#!/usr/bin/env bash
# A local Kubernetes cluster for the demo and the end-to-end tests, on loopback only.
#
# Real: etcd, kube-apiserver (with the aggregation layer), kube-controller-manager (runs the HPA),
# kube-scheduler, kubectl (and kubectl-1.36, the older v1beta1-only client), and the metrics-server
# process (ours or upstream's), all built from their Go modules by hack/build-tools.sh and started by
# `kwokctl create cluster --runtime binary`.
# Simulated by KWOK: the nodes, their kubelets' /metrics/resource endpoints, and pod lifecycles.
#
# Usage: hack/cluster.sh up|down|status|vpa-up|vpa-down
#   vpa-up starts the Vertical Pod Autoscaler's recommender (built from its module by build-tools.sh) as a
#   local process with the admin kubeconfig, after installing its CRDs; down stops it too.
# Variables: METRICS_SERVER=ours|upstream (default ours), NODES (default 3), CLUSTER_NAME (default msrs),
#            METRICS_SERVER_BIN (overrides the binary), METRICS_SERVER_ARGS (extra flags, space separated),
#            METRICS_VERSIONS=both|v1beta1 (which APIServices route to the server; default both for ours,
#            v1beta1 for upstream v0.9.0, which serves no metrics.k8s.io/v1).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=$repo/.cluster
bin=$state/bin
cluster=${CLUSTER_NAME:-msrs}
nodes=${NODES:-3}
which_server=${METRICS_SERVER:-ours}
export KWOK_WORKDIR=$state/kwok
export PATH=$bin:$PATH
kubeconfig=$KWOK_WORKDIR/clusters/$cluster/kubeconfig.yaml

log() { echo "[cluster] $*"; }
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

server_binary() {
  if [ -n "${METRICS_SERVER_BIN:-}" ]; then echo "$METRICS_SERVER_BIN"; return; fi
  case "$which_server" in
    ours) echo "$repo/target/release/metrics-server" ;;
    upstream) echo "$bin/metrics-server-upstream" ;;
    *) echo "METRICS_SERVER must be 'ours' or 'upstream', not '$which_server'" >&2; exit 2 ;;
  esac
}

# kwokctl starts every component at once, and metrics-server exits if kube-apiserver is not serving yet
# (in a real cluster the kubelet would restart it). This launcher waits for kube-apiserver's /readyz and
# then execs the server, so the process kwokctl tracks (and kills) is the server itself.
write_launcher() {
  local real=$1 launcher=$state/metrics-server-$cluster
  cat >"$launcher" <<EOF
#!/usr/bin/env bash
real='$real'
kubeconfig=
for a in "\$@"; do case "\$a" in --kubeconfig=*) kubeconfig=\${a#--kubeconfig=} ;; esac; done
if [ -n "\$kubeconfig" ]; then
  for _ in \$(seq 1 120); do
    '$bin/kubectl' --kubeconfig "\$kubeconfig" get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
exec -a metrics-server "\$real" "\$@"
EOF
  chmod +x "$launcher"
  echo "$launcher"
}

# The kustomize folder of APIServices (and their Service) kwokctl applies for the server.
aggregation_dir() {
  local versions=${METRICS_VERSIONS:-}
  [ -n "$versions" ] || { [ "$which_server" = upstream ] && versions=v1beta1 || versions=both; }
  case "$versions" in
    both) echo "$repo/hack/cluster/aggregation" ;;
    v1beta1) echo "$repo/hack/cluster/aggregation/v1beta1" ;;
    *) echo "METRICS_VERSIONS must be 'both' or 'v1beta1', not '$versions'" >&2; exit 2 ;;
  esac
}

write_config() {
  local ms_bin cfg=$state/kwokctl-$cluster.yaml extra="" manifests
  ms_bin=$(write_launcher "$1")
  manifests=$(aggregation_dir)
  for a in ${METRICS_SERVER_ARGS:-}; do
    a=${a#--}
    extra="$extra
  - key: ${a%%=*}
    value: \"${a#*=}\""
  done
  cat >"$cfg" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kubectlBinary: $bin/kubectl
  etcdBinary: $bin/etcd
  kwokControllerBinary: $bin/kwok
  metricsServerBinary: $ms_bin
  metricsServerManifests:
  - $manifests
  enableMetricsServer: true
  enableCRDs:
  - ResourceUsage
  - ClusterResourceUsage
  quietPull: true
componentsPatches:
# A separate front-proxy CA and client certificate, as kubeadm sets up: the aggregator then authenticates
# to metrics-server with the request-header scheme (X-Remote-User/X-Remote-Group) instead of kwokctl's
# default of reusing the admin certificate, so the real delegation path is exercised.
- name: kube-apiserver
  extraArgs:
  - {key: requestheader-client-ca-file, value: "$state/pki/front-proxy-ca.crt"}
  - {key: requestheader-allowed-names, value: front-proxy-client}
  - {key: requestheader-username-headers, value: X-Remote-User}
  - {key: requestheader-group-headers, value: X-Remote-Group}
  - {key: requestheader-extra-headers-prefix, value: X-Remote-Extra-}
  - {key: proxy-client-cert-file, value: "$state/pki/front-proxy-client.crt", override: true}
  - {key: proxy-client-key-file, value: "$state/pki/front-proxy-client.key", override: true}
- name: metrics-server
  extraArgs:
  - key: node-selector
    value: metrics-server-skip!=true$extra
- name: kube-controller-manager
  extraArgs:
  # The HPA e2e case should not wait for the default 15s sync and 5m downscale stabilization.
  - key: horizontal-pod-autoscaler-sync-period
    value: "5s"
---
$(cat "$repo/hack/cluster/kubelet-resource-metrics.yaml")
EOF
  echo "$cfg"
}

front_proxy_pki() {
  local d=$state/pki
  [ -f "$d/front-proxy-client.crt" ] && return
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=front-proxy-ca" \
    -keyout "$d/front-proxy-ca.key" -out "$d/front-proxy-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=front-proxy-client" \
    -keyout "$d/front-proxy-client.key" -out "$d/front-proxy-client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >"$d/client.ext"
  openssl x509 -req -in "$d/front-proxy-client.csr" -CA "$d/front-proxy-ca.crt" -CAkey "$d/front-proxy-ca.key" \
    -CAcreateserial -days 3650 -extfile "$d/client.ext" -out "$d/front-proxy-client.crt" 2>/dev/null
}

# Fake nodes: loopback addresses, the KWOK-served resource-metrics path, and one node that metrics-server
# must skip (labelled metrics-server-skip=true), as in upstream's e2e setup.
apply_nodes() {
  local i name skip
  for i in $(seq 1 "$nodes"); do
    name=kwok-node-$i
    skip=false
    [ "$i" -eq "$nodes" ] && [ "$nodes" -gt 1 ] && skip=true
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/$name/metrics/resource
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
$( [ "$skip" = true ] && echo "    metrics-server-skip: \"true\"" )
status:
  allocatable: {cpu: "4", memory: 16Gi, pods: "110"}
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: localhost}
---
EOF
  done
}

up() {
  local ms_bin cfg
  "$repo/hack/build-tools.sh" kubernetes kubectl-1.36 etcd kwok metrics-server
  ms_bin=$(server_binary)
  [ -x "$ms_bin" ] || { echo "metrics-server binary $ms_bin not found (for METRICS_SERVER=ours run: cargo build --release -p metrics-server)" >&2; exit 1; }
  if kwokctl get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "cluster $cluster exists; deleting it first"
    down
  fi
  front_proxy_pki
  cfg=$(write_config "$ms_bin")
  log "creating cluster $cluster with $nodes nodes, metrics-server=$which_server ($ms_bin)"
  kwokctl create cluster --name "$cluster" --config "$cfg" --wait 3m
  route_v1
  kc apply -f "$repo/hack/cluster/default-usage.yaml" >/dev/null
  apply_nodes | kc apply -f - >/dev/null
  # Every node runs one baseline pod (as kube-proxy would in a real cluster): a node with no pods reports
  # zero usage, which metrics-server rightly drops.
  kc apply -f "$repo/hack/cluster/node-baseline.yaml" >/dev/null
  kc wait --for=condition=Ready node --all --timeout=120s >/dev/null
  wait_default_service_account
  log "cluster $cluster is up; KUBECONFIG=$kubeconfig"
}

# Admission refuses every pod of a namespace until the controller manager has created its `default`
# ServiceAccount, which can come a while after kwokctl reports the cluster ready; the suites create pods in
# `default` at once.
wait_default_service_account() {
  for _ in $(seq 1 120); do
    kc -n default get serviceaccount default >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the ServiceAccount default/default did not appear within 120s (see the kube-controller-manager log in $state/kwok/clusters/$cluster/logs)" >&2
  exit 1
}

vpa_pidfile=$state/vpa-recommender-$cluster.pid

vpa_up() {
  local src crds
  "$repo/hack/build-tools.sh" vpa
  [ -f "$kubeconfig" ] || { echo "no cluster $cluster (hack/cluster.sh up first)" >&2; exit 1; }
  vpa_down
  src=$(cd "$repo/hack/tools/vpa" && go mod download -json "$(awk '$1=="require"{print $2"@"$3}' go.mod)" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  crds=$src/deploy/vpa-v1-crd-gen.yaml
  kc apply --server-side -f "$crds" >/dev/null
  kc wait --for=condition=Established crd/verticalpodautoscalers.autoscaling.k8s.io --timeout=60s >/dev/null
  # A short interval so the e2e case sees recommendations within a minute, yet longer than the server's
  # 15s resolution, so every fetch must see a newer timestamp (the recommender drops one that did not
  # advance, and logs it); metrics on loopback.
  nohup "$bin/vpa-recommender" --kubeconfig="$kubeconfig" --recommender-interval=20s \
    --address=127.0.0.1:0 --v=2 >"$state/vpa-recommender-$cluster.log" 2>&1 &
  echo $! >"$vpa_pidfile"
  log "VPA recommender running (pid $(cat "$vpa_pidfile"), log $state/vpa-recommender-$cluster.log)"
}

vpa_down() {
  [ -f "$vpa_pidfile" ] || return 0
  local pid
  pid=$(cat "$vpa_pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q vpa-recommender "/proc/$pid/cmdline" 2>/dev/null; then
    log "stopping the VPA recommender (pid $pid)"
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$vpa_pidfile"
}

# kwokctl keeps only the first APIService of the server's manifests (seen with kwok v0.8.0: its rendered
# config lists v1beta1 alone). Route v1 to the same process port as v1beta1, when both are wanted.
route_v1() {
  [ "$(aggregation_dir)" = "$repo/hack/cluster/aggregation" ] || return 0
  local port
  port=$(kc get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.spec.service.port}')
  kc apply -f "$repo/hack/cluster/aggregation/apiservice-v1.yaml" >/dev/null
  kc patch apiservice v1.metrics.k8s.io --type=merge -p "{\"spec\":{\"service\":{\"port\":$port}}}" >/dev/null
}

down() {
  vpa_down
  if kwokctl get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "deleting cluster $cluster"
    kwokctl delete cluster --name "$cluster"
  else
    log "no cluster $cluster"
  fi
  # kwokctl kills the processes it started; anything still running from the cluster's folder (a
  # component that forked, a launcher still waiting) is a leak that must not survive cluster-down.
  local leftover
  # Match only the cluster's own programs (their command lines start with the cluster's bin folder, or are
  # the launcher or the server it exec'd), never a shell or test whose arguments merely mention the path.
  local dir=$KWOK_WORKDIR/clusters/$cluster
  leftover=$(pgrep -f "^($dir/bin/|[^ ]*bash $state/metrics-server-$cluster |metrics-server .*--kubeconfig=$dir/)" || true)
  if [ -n "$leftover" ]; then
    log "killing leftover processes: $leftover"
    kill -9 $leftover 2>/dev/null || true
  fi
}

status() {
  kwokctl get clusters
  [ -f "$kubeconfig" ] && kc get nodes -o wide && kc get apiservice v1.metrics.k8s.io v1beta1.metrics.k8s.io
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  kubeconfig) echo "$kubeconfig" ;;
  vpa-up) vpa_up ;;
  vpa-down) vpa_down ;;
  *) echo "usage: $0 up|down|status|kubeconfig|vpa-up|vpa-down" >&2; exit 2 ;;
esac
