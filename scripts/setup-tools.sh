#!/usr/bin/env bash
# Builds the command-line tools the chart and image tests use, from the Go module proxy at the
# versions pinned by hack/tools/*/go.mod (+ go.sum):
#   helm              helm.sh/helm/v3/cmd/helm (lint, template, schema validation of values)
#   dockerfile-check  BuildKit's Dockerfile build checks (hack/tools/dockerfile-check: hadolint is
#                     not packaged by Debian, and no registry reachable here ships it)
# kubectl comes with the control plane (scripts/setup-envtest.sh). Idempotent: rebuilds only when a
# binary is missing or hack/tools changed (stamp file with a hash of it). Progress goes to stderr;
# the last line of stdout is the directory holding the binaries:
#
#   export RUNAHEAD_TOOLS="$(scripts/setup-tools.sh | tail -n1)"
#
# Tests look for $HELM_BIN, then $RUNAHEAD_TOOLS/helm (the same for DOCKERFILE_CHECK_BIN).
# Environment: RUNAHEAD_CACHE (default <repo>/.cache), GO (default: go on PATH, else
# /usr/local/go/bin/go), TOOLS_FORCE=1 to rebuild anyway.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${RUNAHEAD_CACHE:-$repo/.cache}"
NAME=setup-tools SRC="$repo/hack/tools"
# shellcheck source=lib/cached-go-build.sh
source "$repo/scripts/lib/cached-go-build.sh"

helm_version="$(required "$SRC/helm/go.mod" helm.sh/helm/v3)"
buildkit_version="$(required "$SRC/dockerfile-check/go.mod" github.com/moby/buildkit)"
[[ -n "$helm_version" && -n "$buildkit_version" ]] || die "cannot read pinned versions from $SRC/*/go.mod"

cached_build_begin "$cache/tools/helm-${helm_version#v}_buildkit-${buildkit_version#v}" "${TOOLS_FORCE:-}" \
  helm dockerfile-check
# The ldflags of Helm's own Makefile: its version, and the Kubernetes version of its client-go as
# the default .Capabilities.KubeVersion of `helm template` and `helm lint` (else 1.20).
client_go="$(required "$SRC/helm/go.mod" k8s.io/client-go)"
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
h=helm.sh/helm/v3
build "$SRC/helm" "helm $helm_version" \
  "-s -w -X $h/internal/version.version=$helm_version -X $h/internal/version.gitTreeState=clean
   -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor
   -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
  "$tmp/helm" $h/cmd/helm
build "$SRC/dockerfile-check" "dockerfile-check (BuildKit $buildkit_version)" "-s -w" "$tmp/dockerfile-check" .
cached_build_finish
