# mtls-gate: `make test` runs every test of the project (Rust and Helm chart).
CARGO ?= cargo

.PHONY: test test-rust test-chart lint fmt crd deploy bench e2e e2e-scale build release

test: lint test-rust test-chart

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

# Unit, integration and webhook-over-TLS tests (cargo-nextest when available).
test-rust:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked --no-fail-fast; \
	else \
		$(CARGO) test --locked --no-fail-fast; \
	fi
	$(CARGO) test --locked --doc

# Renders and lints the Helm chart with the real Helm engine (helm-python-sdk in .venv).
test-chart:
	scripts/test-chart.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Regenerates the CRD (top level and chart copy) and the plain manifests in deploy/.
crd:
	$(CARGO) run --locked --quiet -- crd > crds/apiproviderprofiles.yaml
	scripts/sync-crds.sh

deploy: crd
	scripts/test-chart.sh --update

bench:
	$(CARGO) bench --locked --bench engine

# End-to-end suite against a real API server. Without MTLS_GATE_E2E_KUBECONFIG it builds
# (once, cached) and starts kube-apiserver v1.20.2 on loopback with two out-of-cluster
# replicas, runs the suite and tears everything down (scripts/e2e-cluster.sh suite). With
# it, the suite runs against that cluster, where the chart must be installed (README).
e2e:
	@if [ -n "$$MTLS_GATE_E2E_KUBECONFIG" ]; then \
		$(CARGO) test --locked --test e2e -- --nocapture --test-threads=1; \
	else \
		scripts/e2e-cluster.sh suite; \
	fi

# 10,000 Ingresses through the API: RSS per replica and dry-run CREATE latency (release build).
e2e-scale:
	$(CARGO) build --locked --release --bin mtls-gate
	MTLS_GATE_BIN=$(CURDIR)/target/release/mtls-gate MTLS_GATE_E2E_SCALE=$${MTLS_GATE_E2E_SCALE:-10000} \
		scripts/e2e-cluster.sh suite scale_
