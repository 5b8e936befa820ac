#!/usr/bin/env bash
# Builds the binaries of a real Kubernetes control plane for the integration tests, the envtest way:
# etcd, kube-apiserver, kube-controller-manager and kubectl, from the Go module proxy at the versions
# pinned by hack/envtest/*/go.mod (+ go.sum). Idempotent: rebuilds only when a binary is missing or
# hack/envtest changed (stamp file with a hash of it). Progress goes to stderr; the last line of
# stdout is the directory to use as KUBEBUILDER_ASSETS:
#
#   export KUBEBUILDER_ASSETS="$(scripts/setup-envtest.sh | tail -n1)"
#
# Environment: RUNAHEAD_CACHE (default <repo>/.cache), GO (default: go on PATH, else /usr/local/go/bin/go),
# ENVTEST_FORCE=1 to rebuild anyway.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${RUNAHEAD_CACHE:-$repo/.cache}"
NAME=setup-envtest SRC="$repo/hack/envtest"
# shellcheck source=lib/cached-go-build.sh
source "$repo/scripts/lib/cached-go-build.sh"

k8s_version="$(required "$SRC/k8s/go.mod" k8s.io/kubernetes)"
etcd_version="$(required "$SRC/etcd/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || die "cannot read pinned versions from $SRC/*/go.mod"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"

cached_build_begin "$cache/envtest/k8s-${k8s_version#v}" "${ENVTEST_FORCE:-}" \
  etcd kube-apiserver kube-controller-manager kubectl
ver=k8s.io/component-base/version
build "$SRC/k8s" "kube-apiserver, kube-controller-manager, kubectl $k8s_version" \
  "-s -w -X $ver.gitVersion=$k8s_version -X $ver.gitMajor=$major -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean" \
  "$tmp/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kubectl
build "$SRC/etcd" "etcd $etcd_version" "-s -w" "$tmp/etcd" .
cached_build_finish
