# Multi-stage build: a small runtime image running sse-logs as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
# The workspace's other member (the bench tool) must be present for Cargo to load the workspace;
# it is not built.
COPY bench/Cargo.toml bench/Cargo.toml
COPY bench/src bench/src
COPY src src
COPY migrations migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 sse-logs
COPY --from=build /src/target/release/sse-logs /usr/local/bin/sse-logs
USER sse-logs
ENV SSE_LOGS__HTTP__BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["sse-logs"]
CMD ["serve"]
