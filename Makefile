# metrics-server-rs: the Kubernetes metrics-server in Rust.
#
#   make demo    local cluster with our server, some workloads, then `kubectl top`
#   make test    unit tests, then the end-to-end suite on a local cluster
#
# Variables: METRICS_SERVER=ours|upstream (default ours), NODES (default 3).

METRICS_SERVER ?= ours
NODES ?= 3
export METRICS_SERVER NODES

CARGO ?= cargo
KUBECONFIG_PATH = $(CURDIR)/.cluster/kwok/clusters/$(or $(CLUSTER_NAME),msrs)/kubeconfig.yaml
KUBECTL = $(CURDIR)/.cluster/bin/kubectl
# The older client, which reads metrics.k8s.io/v1beta1 only (kubectl 1.37 reads v1).
KUBECTL_OLD = $(CURDIR)/.cluster/bin/kubectl-1.36

.PHONY: all build release tools cluster-up cluster-down demo test unit e2e e2e-run diagnosis-run ha-run vpa-run doctor-run control-plane-run differential lint fmt clean

all: build

build:
	$(CARGO) build --workspace

# The server binary the cluster starts for METRICS_SERVER=ours.
release:
	@if [ "$(METRICS_SERVER)" = ours ] && [ -f crates/metrics-server/Cargo.toml ]; then \
		$(CARGO) build --release -p metrics-server; fi

tools:
	hack/build-tools.sh

cluster-up: release
	hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

demo: cluster-up
	hack/demo.sh

# The e2e crate's suites need a cluster; its library's unit tests do not.
unit:
	$(CARGO) test --workspace --exclude metrics-server-e2e
	$(CARGO) test -p metrics-server-e2e --lib

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Brings a cluster up, runs the suite against it and always tears it down.
# To run the suite against a cluster of your own: make e2e-run KUBECONFIG=/path/to/kubeconfig
# The control-plane fault cases run last: they kill and restart kube-apiserver, etcd and our server.
e2e: release
	@hack/cluster.sh up && \
	  status=0; $(MAKE) --no-print-directory e2e-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory diagnosis-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory ha-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory vpa-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory doctor-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory control-plane-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  hack/cluster.sh down; exit $$status

# The suites act only on a cluster named on purpose: E2E_KUBECONFIG, or KUBECONFIG given on make's
# command line (an inherited KUBECONFIG is ignored). E2E_REQUIRE=1 makes a missing cluster a failure.
E2E_KUBECONFIG := $(if $(filter command line,$(origin KUBECONFIG)),$(KUBECONFIG),$(E2E_KUBECONFIG))

e2e-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "e2e-run: name the cluster: make e2e-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 KUBECTL=$(KUBECTL) KUBECTL_OLD=$(KUBECTL_OLD) $(CARGO) test -p metrics-server-e2e --test e2e

# Suites that start more instances of our binary from the primary's command line with flags of our own
# (a TLS-verifying diagnosis server with the node-proxy fallback and Events; three sharded replicas): they need
# the admin identity of a cluster made by hack/cluster.sh, not the deploy test's ServiceAccount.
diagnosis-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "diagnosis-run: name the cluster: make diagnosis-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 $(CARGO) test -p metrics-server-e2e --test diagnosis

ha-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "ha-run: name the cluster: make ha-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 $(CARGO) test -p metrics-server-e2e --test ha

# The VPA recommender (k8s.io/autoscaler/vertical-pod-autoscaler, pkg/recommender) started beside the
# named cluster made by hack/cluster.sh, a VPA in Off mode, and its recommendation from our metrics.
vpa-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "vpa-run: name the cluster: make vpa-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	hack/cluster.sh vpa-up
	status=0; E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 KUBECTL=$(KUBECTL) \
	  VPA_RECOMMENDER_LOG=$(CURDIR)/.cluster/vpa-recommender-$(or $(CLUSTER_NAME),msrs).log \
	  $(CARGO) test -p metrics-server-e2e --test vpa || status=$$?; \
	  hack/cluster.sh vpa-down; exit $$status

# `metrics-server doctor` against injected faults (RBAC, APIService port, endpoints, hung server,
# front-proxy CA, HPA without requests); every fault is put back. Stops and restarts the server
# process: only for a cluster made by hack/cluster.sh.
doctor-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "doctor-run: name the cluster: make doctor-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 KUBECTL=$(KUBECTL) $(CARGO) test -p metrics-server-e2e --test doctor

# Kills and restarts the named cluster's kube-apiserver, etcd and metrics-server: only for a cluster
# made by hack/cluster.sh.
control-plane-run:
	@if [ -z "$(E2E_KUBECONFIG)" ]; then \
	  echo "control-plane-run: name the cluster: make control-plane-run KUBECONFIG=/path/to/kubeconfig"; exit 1; fi
	E2E_KUBECONFIG=$(E2E_KUBECONFIG) E2E_REQUIRE=1 $(CARGO) test -p metrics-server-e2e --test control_plane

# Ours behind the APIService, upstream started beside it on the same cluster; both must answer alike.
differential: release
	@METRICS_SERVER=ours hack/cluster.sh up && \
	  status=0; E2E_KUBECONFIG=$(KUBECONFIG_PATH) E2E_REQUIRE=1 DIFF_OTHER_BIN=$(CURDIR)/.cluster/bin/metrics-server-upstream \
	    MS_UPSTREAM_BIN=$(CURDIR)/.cluster/bin/metrics-server-upstream \
	    $(CARGO) test -p metrics-server-e2e -p metrics-server --test differential --test upstream_help || status=$$?; \
	  hack/cluster.sh down; exit $$status

# Unit tests, the install checks, the e2e suite with our server, and ours side by side with upstream.
test: lint unit deploy-test
	$(MAKE) --no-print-directory e2e METRICS_SERVER=ours
	$(MAKE) --no-print-directory differential
	$(MAKE) --no-print-directory bench-compare-smoke

clean: cluster-down
	$(CARGO) clean

# Micro-benchmarks: kubelet decoding, storage on upstream's storage-benchmark shapes, store
# memory per container, API list encoding. Figures and how to read them: BENCHMARKS.md.
.PHONY: bench
bench:
	$(CARGO) bench -p metrics-server-core -p metrics-server-api \
	  --bench exposition --bench store --bench store_memory --bench encode

# === Install artefacts: deploy/ manifests, charts/metrics-server-rs, the container image ===
.PHONY: manifests image deploy-test

DEPLOY_TEST_DIR = $(CURDIR)/.cluster/deploy-test
# The server that the RBAC-is-enough check runs with nothing but the ServiceAccount's token.
DEPLOY_TEST_SERVER = $(if $(filter upstream,$(METRICS_SERVER)),$(CURDIR)/.cluster/bin/metrics-server-upstream,$(or $(METRICS_SERVER_BIN),$(CURDIR)/target/release/metrics-server))
SERVER_LOG = $(CURDIR)/.cluster/kwok/clusters/$(or $(CLUSTER_NAME),msrs)/logs/metrics-server.log

# Regenerates deploy/components.yaml and deploy/high-availability.yaml from the kustomize tree.
manifests:
	@hack/build-tools.sh kubernetes >/dev/null
	deploy/render.sh components >deploy/components.yaml.tmp && mv deploy/components.yaml.tmp deploy/components.yaml
	deploy/render.sh high-availability >deploy/high-availability.yaml.tmp && mv deploy/high-availability.yaml.tmp deploy/high-availability.yaml
	deploy/render.sh sharded-high-availability >deploy/sharded-high-availability.yaml.tmp && mv deploy/sharded-high-availability.yaml.tmp deploy/sharded-high-availability.yaml

# The container image as an OCI layout and a loadable tarball in target/image/, without a container engine.
image:
	$(CARGO) build --release -p metrics-server
	@hack/build-tools.sh crane >/dev/null
	hack/image.sh

# Manifests (fresh, upstream parity, server-side dry runs), Helm chart (lint, upstream parity, dry runs),
# image, then the RBAC-is-enough run: components.yaml's RBAC and APIService on a cluster whose server holds
# only the ServiceAccount's token (crates/deploy-tests/scripts/sa-launcher.sh), the e2e suite against it,
# and no authorization failure in its log. Always tears the cluster down.
deploy-test: image
	hack/build-tools.sh kubernetes etcd kwok metrics-server helm
	@rm -rf $(DEPLOY_TEST_DIR) && mkdir -p $(DEPLOY_TEST_DIR) && echo '$(DEPLOY_TEST_SERVER)' >$(DEPLOY_TEST_DIR)/server-binary
	@METRICS_SERVER_BIN=$(CURDIR)/crates/deploy-tests/scripts/sa-launcher.sh hack/cluster.sh up && \
	  status=0; \
	  DEPLOY_TEST_KUBECONFIG=$(KUBECONFIG_PATH) KUBECTL=$(KUBECTL) DEPLOY_TEST_REQUIRE=1 DEPLOY_TEST_SA_DIR=$(DEPLOY_TEST_DIR) \
	    $(CARGO) test -p metrics-server-deploy-tests || status=$$?; \
	  if [ $$status -eq 0 ]; then \
	    $(MAKE) --no-print-directory e2e-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; fi; \
	  if [ $$status -eq 0 ] && grep -E 'serviceaccount:kube-system:metrics-server[\\"]* cannot' $(SERVER_LOG); then \
	    echo "deploy-test: the server was denied something with components.yaml's RBAC (see above)"; status=1; fi; \
	  hack/cluster.sh down; exit $$status

# libFuzzer on every cargo-fuzz target (stable toolchain, see hack/fuzz.sh); FUZZ_SECONDS per target.
.PHONY: fuzz
fuzz:
	hack/fuzz.sh

# One hour (SOAK_SECONDS) on a fresh local cluster with node and pod churn and API load; memory and
# descriptor samples in .cluster/soak/samples.csv. Stops by itself; not part of `make test`.
.PHONY: soak
soak: release
	@hack/cluster.sh up && \
	  status=0; E2E_KUBECONFIG=$(KUBECONFIG_PATH) E2E_REQUIRE=1 SOAK_OUT=$(CURDIR)/.cluster/soak \
	    $(CARGO) test -p metrics-server-e2e --test soak || status=$$?; \
	  hack/cluster.sh down; exit $$status

# Ours and upstream v0.9.0 side by side against the same misbehaving kubelets (one simulated node per
# fault on its own loopback address); the table lands in .cluster/fault-compare.md (RELIABILITY.md).
.PHONY: fault-compare
fault-compare: release
	@METRICS_SERVER=ours hack/cluster.sh up && \
	  status=0; E2E_KUBECONFIG=$(KUBECONFIG_PATH) E2E_REQUIRE=1 DIFF_OTHER_BIN=$(CURDIR)/.cluster/bin/metrics-server-upstream \
	    COMPARE_OUT=$(CURDIR)/.cluster/fault-compare.md $(CARGO) test -p metrics-server-e2e --test fault_compare || status=$$?; \
	  hack/cluster.sh down; exit $$status

# Ours and upstream v0.9.0 side by side at SCALE=<nodes>x<pods-per-node> (two containers a pod): a
# kubelet fleet in the harness serves every simulated node over TLS on its own loopback address, the
# same load goes to both servers for BENCH_SECONDS, and one table comes out (BENCH_ARGS=--json for
# JSON, BENCH_JSON=<file> to keep it). OTHER_BIN=none runs ours alone (sizes where upstream does not
# fit beside it); OTHER_BIN=<binary> OTHER_NAME=<label> compares another build instead of upstream.
# Not part of `make test`, except the 10x5 smoke run below.
SCALE ?= 100x30
OTHER_BIN ?= $(CURDIR)/.cluster/bin/metrics-server-upstream
OTHER_NAME ?= upstream v0.9.0
BENCH_SECONDS ?= 300
BENCH_CLUSTER = $(or $(CLUSTER_NAME),bench)
BENCH_KUBECONFIG = $(CURDIR)/.cluster/kwok/clusters/$(BENCH_CLUSTER)/kubeconfig.yaml
BENCH_TARGET_DIR = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
.PHONY: bench-compare bench-compare-smoke
bench-compare:
	$(CARGO) build --release -p metrics-server
	$(CARGO) test --release -p metrics-server-e2e --test bench_compare --no-run
	@CLUSTER_NAME=$(BENCH_CLUSTER) METRICS_SERVER=ours NODES=1 \
	  METRICS_SERVER_BIN=$(BENCH_TARGET_DIR)/release/metrics-server hack/cluster.sh up && \
	  status=0; E2E_KUBECONFIG=$(BENCH_KUBECONFIG) E2E_REQUIRE=1 DIFF_OTHER_BIN="$(OTHER_BIN)" BENCH_OTHER_NAME="$(OTHER_NAME)" \
	    BENCH_SCALE=$(SCALE) BENCH_SECONDS=$(BENCH_SECONDS) \
	    $(CARGO) test --release -p metrics-server-e2e --test bench_compare -- $(BENCH_ARGS) || status=$$?; \
	  CLUSTER_NAME=$(BENCH_CLUSTER) hack/cluster.sh down; exit $$status

# The smoke run `make test` includes: 10 nodes x 5 pods, one minute of load.
bench-compare-smoke:
	$(MAKE) --no-print-directory bench-compare SCALE=10x5 BENCH_SECONDS=60
