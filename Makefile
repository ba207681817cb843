# mtls-gate: `make test` runs every test of the project (Rust and Helm chart).
CARGO ?= cargo

.PHONY: test test-rust test-chart lint fmt crd deploy bench e2e e2e-scale build release proxies differential

test: lint test-rust test-chart

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

# Unit, integration and webhook-over-TLS tests (cargo-nextest when available). The real-proxy
# tests (probe, nginx and HAProxy differential) must run here, not skip: proxies are installed first.
test-rust: export MTLS_GATE_REQUIRE_PROXIES = 1
test-rust: proxies
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

# Debian's nginx and HAProxy for the real-proxy tests (idempotent; apt-get when missing).
proxies:
	scripts/install-proxies.sh

# The nginx and HAProxy differential tests with many generated cases (make test runs a
# bounded number).
DIFFERENTIAL_CASES ?= 2000
differential: proxies
	MTLS_GATE_REQUIRE_PROXIES=1 MTLS_GATE_DIFFERENTIAL_CASES=$(DIFFERENTIAL_CASES) \
		$(CARGO) test --locked --test nginx_differential --test haproxy_differential -- --nocapture
.PHONY: attack fuzz

# Attack load test (issue 11): the release webhook binary under each attack of the
# adversarial test at its size, loopback only, while good clients measure; prints the
# figures against the targets. ATTACK_SECONDS per phase (default 20), ATTACK_ONLY=a,b.
attack:
	$(CARGO) bench --locked --bench attack

# Fuzz targets (cargo-fuzz on nightly; fuzz/README.md): each runs FUZZ_SECONDS (default 60).
# New corpus entries go to target/fuzz-corpus/, crashes to fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = admission_review manifest_load path_matching
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$t && \
		$(CARGO) +nightly fuzz run $$t target/fuzz-corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=2048 || exit 1; \
	done
