# syntax=docker/dockerfile:1
# The metrics-server-rs release image: the server alone on a distroless base, run as 65534:65534.
# It needs no shell, no capabilities and no writable root filesystem; with the shipped manifests it
# writes only to /tmp (an emptyDir), where --cert-dir=/tmp puts the self-signed serving certificate.
#
#   docker build -t ghcr.io/metrics-server-rs/metrics-server:v0.1.0 .
#
# Without a container engine, hack/image.sh (`make image`) assembles the same kind of image from
# target/release/metrics-server with crane.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p metrics-server && \
    install -m 0755 target/release/metrics-server /metrics-server

# glibc, libgcc_s and CA certificates, no shell. Same Debian release as the build stage, so the
# binary finds the glibc it was linked against.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /metrics-server /metrics-server
USER 65534:65534
ENTRYPOINT ["/metrics-server"]
