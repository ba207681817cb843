# syntax=docker/dockerfile:1
#
# mtls-gate image: a static (musl) binary on distroless, running as UID/GID 65532.
#
#   docker build -t ghcr.io/mtls-gate/mtls-gate:0.1.0 .
#
# The chart runs /usr/local/bin/mtls-gate with a read-only root filesystem, no
# capabilities and a RuntimeDefault seccomp profile; the image needs none of them.
# For reproducible releases, pin both base images by digest (FROM image:tag@sha256:...).

ARG RUST_VERSION=1.95

############################################################################ builder
FROM rust:${RUST_VERSION}-bookworm AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# musl-gcc for the C parts of dependencies (ring); binutils' readelf checks the result.
# The package version follows the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*

# Native build for the image's own platform (amd64 -> x86_64, arm64 -> aarch64).
RUN rustup target add "$(uname -m)-unknown-linux-musl"

WORKDIR /src

# The context is filtered by .dockerignore (no target/, .git, charts, ...).
COPY . .

# Static, stripped release binary. Cache mounts keep the registry and target/ between builds,
# so the binary is copied out in the same step.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    cargo build --release --locked --target "$target" --bin mtls-gate; \
    install -D -m 0755 "target/$target/release/mtls-gate" /out/mtls-gate; \
    if readelf -d /out/mtls-gate | grep NEEDED; then \
      echo "mtls-gate is dynamically linked" >&2; exit 1; \
    fi; \
    /out/mtls-gate --help >/dev/null

############################################################################ final
# No shell, no package manager; CA certificates and /etc/passwd (nonroot = 65532) only.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mtls-gate" \
      org.opencontainers.image.description="Kubernetes operator enforcing per-endpoint MTLS/TLS client-certificate requirements" \
      org.opencontainers.image.source="https://github.com/mtls-gate/mtls-gate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=builder --chown=0:0 --chmod=0555 /out/mtls-gate /usr/local/bin/mtls-gate

# Numeric, so that runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 8443: HTTPS (admission webhooks, /verify gate); 8080: /healthz, /readyz, /metrics.
EXPOSE 8443 8080

ENTRYPOINT ["/usr/local/bin/mtls-gate"]
CMD ["run"]
