#!/usr/bin/env bash
# build.sh builds the release binaries (manager, peernode) into the folder
# given as $1. The Makefile (`make build`) and the Dockerfile both call this
# script, so a container image and a local build are compiled the same way:
# static (CGO_ENABLED=0), reproducible (-trimpath, no VCS stamping), with the
# version injected. hack/build_test.go checks the result.
set -euo pipefail

out=${1:?usage: hack/build.sh OUTPUT_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}

mkdir -p "$out"
cd "$root"
export CGO_ENABLED=0
for cmd in manager peernode; do
  echo "build: $cmd -> $out/$cmd (version $version)"
  go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X github.com/peermesh/peermesh/internal/version.Version=$version" \
    -o "$out/$cmd" "./cmd/$cmd"
done
