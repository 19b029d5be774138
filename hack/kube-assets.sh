#!/usr/bin/env bash
# kube-assets.sh builds the test control plane (kube-apiserver, kubectl, etcd)
# from the Go module proxy into bin/k8s/<version>/, the folder that envtest
# reads through KUBEBUILDER_ASSETS. There is no container runtime on our CI
# machines, so these binaries are what "a real API server" means in tests.
#
# It is idempotent: when every binary exists and was built from the current
# wrapper modules (hack/tools/kube, hack/tools/etcd), it returns at once.
set -euo pipefail

K8S_VERSION=1.37.2
ETCD_VERSION=3.6.16
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${KUBE_ASSETS_OUT:-"$root/bin/k8s/$K8S_VERSION"}
stamp="$out/.stamp"

# The stamp records what the binaries were built from; a change to a wrapper
# module or to this script forces a rebuild.
want=$(cat "$root/hack/tools/kube/go.mod" "$root/hack/tools/kube/go.sum" \
  "$root/hack/tools/etcd/go.mod" "$root/hack/tools/etcd/go.sum" "${BASH_SOURCE[0]}" |
  sha256sum | cut -d' ' -f1)

if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "kube-assets: $out is up to date (Kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION)"
  exit 0
fi

mkdir -p "$out"
rm -f "$stamp"
start=$SECONDS
step() { printf 'kube-assets: [%4ss] %s\n' "$((SECONDS - start))" "$*"; }

# kubectl refuses a server version it cannot parse, and an unstamped build
# reports v0.0.0-master: inject the release version like the upstream build.
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=${K8S_VERSION%%.*}"
minor=${K8S_VERSION#*.}; minor=${minor%%.*}
ldflags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

export CGO_ENABLED=0

step "downloading modules for Kubernetes v$K8S_VERSION and etcd v$ETCD_VERSION"
(cd "$root/hack/tools/kube" && go mod download)
(cd "$root/hack/tools/etcd" && go mod download)

step "building kube-apiserver v$K8S_VERSION (the longest step: several minutes on 2 cores)"
(cd "$root/hack/tools/kube" && go build -ldflags "$ldflags" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
step "building kubectl v$K8S_VERSION"
(cd "$root/hack/tools/kube" && go build -ldflags "$ldflags" -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl)
step "building etcd v$ETCD_VERSION"
(cd "$root/hack/tools/etcd" && go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)

"$out/kube-apiserver" --version
"$out/etcd" --version | head -n 1
echo "$want" >"$stamp"
step "done: $out"
