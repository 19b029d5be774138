#!/usr/bin/env bash
# helm.sh builds helm from the Go module proxy into bin/ at the version pinned
# by the wrapper module hack/tools/helm (HELM_VERSION must match it), as
# bin/helm-<version>, and links bin/helm to it. The chart tests (test/chart,
# `make helm-test`) run that binary.
#
# It is idempotent: when the binary exists and was built from the current
# wrapper module and this script, it returns at once.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=${LOCALBIN:-"$root/bin"}
out="$bindir/helm-$HELM_VERSION"
stamp="$out.stamp"
mod="$root/hack/tools/helm"

# The wrapper module must pin the version asked for.
pinned=$(cd "$mod" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
if [[ "$pinned" != "$HELM_VERSION" ]]; then
  echo "helm: hack/tools/helm pins helm.sh/helm/v3 $pinned, not HELM_VERSION=$HELM_VERSION;" >&2
  echo "      run: (cd hack/tools/helm && go get -tool helm.sh/helm/v3/cmd/helm@$HELM_VERSION)" >&2
  exit 1
fi

want=$(cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  ln -sfn "$(basename "$out")" "$bindir/helm"
  echo "helm: $out is up to date"
  exit 0
fi

mkdir -p "$bindir"
rm -f "$stamp"
start=$SECONDS
step() { printf 'helm: [%4ss] %s\n' "$((SECONDS - start))" "$*"; }

# The same version stamps as helm's own Makefile: the version, and the
# Kubernetes version that `helm template` and `helm lint` assume (that of
# the client-go module helm is built with, v0.X.Y meaning 1.X).
kv=$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/client-go)
kminor=${kv#v0.}; kminor=${kminor%%.*}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
done

step "downloading modules for helm $HELM_VERSION"
(cd "$mod" && go mod download)
step "building helm $HELM_VERSION (a few minutes the first time on 2 cores)"
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out.tmp" "$out"
ln -sfn "$(basename "$out")" "$bindir/helm"
"$out" version
echo "$want" >"$stamp"
step "done: $out (bin/helm links to it)"
