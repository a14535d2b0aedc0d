# prescient: predictive admission-control daemon (gRPC + admin HTTP).
#
#   docker build -t prescient:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9090:9090 prescient:0.1.0
#
# Linted by scripts/lint-deploy (hadolint). Deployment notes, probes and
# Kubernetes manifests: docs/deployment.md and deploy/kubernetes/.

# ---- build ------------------------------------------------------------------
# Same toolchain as the project (rustc 1.95; Cargo.toml needs >= 1.88).
# Debian bookworm, so the binary links against the glibc of the runtime stage.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what `cargo build --release` reads: the manifest and lockfile, the build
# script and the protos it compiles (protox: no system protoc), the embedded
# config/ (include_str!), the sources, benches/ (Cargo.toml declares the
# bench targets, so their files must exist for the manifest to load), and
# client/ (a workspace member: its manifest must load; it is not built).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto/ proto/
COPY config/ config/
COPY src/ src/
COPY benches/ benches/
COPY client/ client/
# The README's build of the daemon, pinned to Cargo.lock.
RUN cargo build --release --locked -p prescient

# ---- runtime ----------------------------------------------------------------
# glibc + libgcc only (the binary needs no OpenSSL: its TLS is rustls), no
# shell, no package manager. Runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="prescient" \
      org.opencontainers.image.description="Predictive admission-control daemon: per-tenant token buckets with forecast-sized reserve pools, over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/prescient /usr/local/bin/prescient
# The binary embeds config/prescient.yaml (settings) and config/policies.yaml
# (example policy) and runs on them by default; these copies are for reference
# and as a starting point for overrides (--config FILE, --policy FILE).
COPY config/ /etc/prescient/
USER 65532:65532
# gRPC: prescient.v1.Admission, grpc.health.v1.Health, server reflection.
# Plaintext and unauthenticated unless configured: TLS or mutual TLS with
# tls.*, bearer tokens with auth.tokens_file (docs/deployment.md "Security").
# Until then publish it only on a trusted network.
EXPOSE 50051
# Admin HTTP: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).
EXPOSE 9090
# prescient drains and writes its last history snapshot on SIGTERM.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the image has no shell or HTTP client to run one; use the
# orchestrator's HTTP probes on :9090 (/healthz, /readyz) instead.
ENTRYPOINT ["/usr/local/bin/prescient"]
# The defaults bind loopback only; in a container, listen on all interfaces.
# Forecast history persists only with --state-dir (or PRESCIENT_STATE_DIR)
# on a writable volume.
CMD ["serve", "--listen", "0.0.0.0:50051", "--admin-listen", "0.0.0.0:9090"]
