#!/usr/bin/env bash
# Runs after `hack/cluster.sh up`: creates a few workloads with different simulated usage, waits until the
# metrics API serves them through kube-apiserver's aggregation layer, and prints `kubectl top`.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
kubeconfig=$("$repo/hack/cluster.sh" kubeconfig)
kc() { "$repo/.cluster/bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

workload() { # name replicas cpu memory
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: demo}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata:
      labels: {app: $1}
      annotations: {kwok.x-k8s.io/usage-cpu: "$3", kwok.x-k8s.io/usage-memory: "$4"}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: metrics-server-skip, operator: DoesNotExist}]
      containers:
      - name: app
        image: registry.k8s.io/e2e-test-images/resource-consumer:1.9
        resources: {requests: {cpu: 100m, memory: 128Mi}}
---
EOF
}

kc create namespace demo --dry-run=client -o yaml | kc apply -f - >/dev/null
{ workload web 3 120m 96Mi; workload api 2 350m 256Mi; workload batch 1 900m 1Gi; } | kc apply -f - >/dev/null
kc -n demo wait --for=condition=Available deployment --all --timeout=120s >/dev/null

echo "Waiting for the metrics API to serve every demo pod (two scrapes, about 30 s)..."
deadline=$((SECONDS + 180))
until [ "$(kc top pods -n demo --no-headers 2>/dev/null | wc -l)" -ge 6 ]; do
  if [ $SECONDS -ge $deadline ]; then
    echo "metrics did not appear within 180 s; APIService status:" >&2
    kc get apiservice v1beta1.metrics.k8s.io -o wide >&2
    exit 1
  fi
  sleep 3
done

echo
echo "\$ kubectl top nodes"
kc top nodes
echo
echo "\$ kubectl top pods -A"
kc top pods -A
echo
echo "The cluster keeps running: export KUBECONFIG=$kubeconfig (kubectl: $repo/.cluster/bin/kubectl)."
echo "Tear it down with: make cluster-down"
