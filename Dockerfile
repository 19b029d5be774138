# syntax=docker/dockerfile:1
# Builds both binaries (manager and peernode) with hack/build.sh, the same
# script `make build` runs, so images and local builds cannot drift apart
# (hack/build_test.go checks that this file keeps calling it).

FROM golang:1.26.8-bookworm AS builder
ARG VERSION=dev
WORKDIR /src
# Cache modules in their own layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN VERSION=${VERSION} hack/build.sh /out

# distroless static: no shell, no package manager, runs as nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /
COPY --from=builder /out/manager /manager
COPY --from=builder /out/peernode /peernode
USER 65532:65532
ENTRYPOINT ["/manager"]
