# syntax=docker/dockerfile:1
# The hello example competitor (an SDK competitor) on :8080.
# Build from the repository root:
#   docker build -f deploy/docker/hello.Dockerfile -t janus/hello .
# The build stage runs the same `cargo build --release --locked -p hello` as CI, so the image
# carries exactly the binary the tests exercised.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hello --bin hello \
 && cp target/release/hello /usr/local/bin/hello

# A slim Debian runtime rather than scratch/distroless: the binaries link glibc dynamically
# (no musl target is built), and bash gives the HEALTHCHECK a TCP client without curl.
FROM debian:bookworm-slim
# A fixed, non-root uid so Kubernetes' runAsNonRoot can verify it from the image alone.
RUN groupadd --system --gid 10001 janus \
 && useradd --system --uid 10001 --gid janus --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin janus
COPY --from=build /usr/local/bin/hello /usr/local/bin/hello
USER 10001:10001
EXPOSE 8080
# No curl in the image (one package less to patch): bash's /dev/tcp sends GET /health and
# the check passes only on a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENV PORT=8080
ENTRYPOINT ["/usr/local/bin/hello"]
