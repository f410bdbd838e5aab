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

.PHONY: all build release tools cluster-up cluster-down demo test unit e2e e2e-run differential lint fmt clean

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

unit:
	$(CARGO) test --workspace --exclude metrics-server-e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Brings a cluster up, runs the suite against it and always tears it down.
# To run the suite against a cluster of your own: make e2e-run KUBECONFIG=/path/to/kubeconfig
e2e: release
	@hack/cluster.sh up && \
	  status=0; $(MAKE) --no-print-directory e2e-run KUBECONFIG=$(KUBECONFIG_PATH) || status=$$?; \
	  hack/cluster.sh down; exit $$status

e2e-run:
	KUBECONFIG=$(KUBECONFIG) KUBECTL=$(KUBECTL) $(CARGO) test -p metrics-server-e2e --test e2e

# Ours behind the APIService, upstream started beside it on the same cluster; both must answer alike.
differential: release
	@METRICS_SERVER=ours hack/cluster.sh up && \
	  status=0; KUBECONFIG=$(KUBECONFIG_PATH) DIFF_OTHER_BIN=$(CURDIR)/.cluster/bin/metrics-server-upstream \
	    $(CARGO) test -p metrics-server-e2e --test differential || status=$$?; \
	  hack/cluster.sh down; exit $$status

# Until our server passes the e2e suite, the suite runs against upstream metrics-server.
test: lint unit
	$(MAKE) --no-print-directory e2e METRICS_SERVER=upstream

clean: cluster-down
	$(CARGO) clean

# Micro-benchmarks: kubelet decoding, storage on upstream's storage-benchmark shapes, store
# memory per container, API list encoding. Figures and how to read them: BENCHMARKS.md.
.PHONY: bench
bench:
	$(CARGO) bench -p metrics-server-core -p metrics-server-api \
	  --bench exposition --bench store --bench store_memory --bench encode
