# syntax=docker/dockerfile:1
# The Janus sandbox service (Sandy API) on :8300.
# Build from the repository root:
#   docker build -f deploy/docker/sandbox.Dockerfile -t janus/sandbox .
# The build stage runs the same `cargo build --release --locked -p janus-sandbox` as CI, so the image
# carries exactly the binary the tests exercised.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p janus-sandbox --bin janus-sandbox \
 && cp target/release/janus-sandbox /usr/local/bin/janus-sandbox

# A slim Debian runtime rather than scratch/distroless: the binaries link glibc dynamically
# (no musl target is built), and bash gives the HEALTHCHECK a TCP client without curl.
FROM debian:bookworm-slim
# The isolation tools the service drives: unshare/nsenter/setpriv (util-linux, already in
# the base) and ip (iproute2) for the sandbox network namespaces.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2=6.1.0-3 \
 && rm -rf /var/lib/apt/lists/*
# A fixed, non-root uid so Kubernetes' runAsNonRoot can verify it from the image alone.
RUN groupadd --system --gid 10001 janus \
 && useradd --system --uid 10001 --gid janus --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin janus
COPY --from=build /usr/local/bin/janus-sandbox /usr/local/bin/janus-sandbox
USER 10001:10001
EXPOSE 8300
# No curl in the image (one package less to patch): bash's /dev/tcp sends GET /health and
# the check passes only on a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8300 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
# Full isolation (namespaces, cgroups) needs root and privileges the orchestrator grants
# explicitly (see deploy/docker-compose.yml); as the default non-root user it runs with
# `--isolation none`, which is only for trying the API.
ENV JANUS_SANDBOX_LISTEN=0.0.0.0:8300 \
    JANUS_SANDBOX_ROOT=/var/lib/janus-sandbox \
    JANUS_SANDBOX_LOG_FORMAT=json
RUN mkdir -p /var/lib/janus-sandbox && chown 10001:10001 /var/lib/janus-sandbox
ENTRYPOINT ["/usr/local/bin/janus-sandbox"]
