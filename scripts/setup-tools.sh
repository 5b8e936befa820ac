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
src="$repo/hack/tools"
cache="${RUNAHEAD_CACHE:-$repo/.cache}"

log() { printf 'setup-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

go="${GO:-}"
if [[ -z "$go" ]]; then
  if command -v go >/dev/null 2>&1; then go="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
  else die "Go not found (set GO=/path/to/go)"; fi
fi

# The version a go.mod requires of a module ("require M V" or a "M V" line of a require block).
required() { awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit } ($1 == m && $2 ~ /^v/) { print $2; exit }' "$1"; }
helm_version="$(required "$src/helm/go.mod" helm.sh/helm/v3)"
buildkit_version="$(required "$src/dockerfile-check/go.mod" github.com/moby/buildkit)"
[[ -n "$helm_version" && -n "$buildkit_version" ]] || die "cannot read pinned versions from $src/*/go.mod"

out="$cache/tools/helm-${helm_version#v}_buildkit-${buildkit_version#v}"
binaries=(helm dockerfile-check)

# Hash of the wrapper sources (names and contents) and of the Go version building them.
stamp_of() {
  {
    "$go" version
    (cd "$src" && find . -type f ! -name '*.swp' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  local b
  [[ "${TOOLS_FORCE:-}" != 1 && -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]] || return 1
  for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
}

stamp="$(stamp_of)"
if up_to_date; then
  log "up to date: Helm $helm_version, BuildKit $buildkit_version checks in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache/tools"
# One build at a time (parallel test runners may call this together).
exec 9>"$cache/tools/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  stamp="$(stamp_of)"
  if up_to_date; then echo "$out"; exit 0; fi
fi

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
tmp="$(mktemp -d "$cache/tools/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS

# build DIR WHAT LDFLAGS OUTPUT PACKAGE...: compiles with -v and reports every 10 s how many of the
# packages are done (the Go build cache makes a rebuild after a small change quick).
build() {
  local dir="$1" what="$2" ldflags="$3" output="$4"; shift 4
  local total n=0 last=$SECONDS line rc=
  log "$what: downloading modules (pinned by go.sum)..."
  total="$(cd "$dir" && "$go" list -deps "$@" | wc -l)" || die "$what: go list failed"
  log "$what: compiling (up to $total packages; a cold build takes minutes)..."
  while IFS= read -r line; do
    if [[ "$line" == rc=* ]]; then
      rc="${line#rc=}"
    elif [[ "$line" =~ ^[A-Za-z0-9_./~-]+$ ]]; then
      n=$((n + 1))
      if ((SECONDS - last >= 10)); then log "$what: $n/$total packages"; last=$SECONDS; fi
    else
      printf '%s\n' "$line" >&2
    fi
  done < <(cd "$dir" && "$go" build -v -trimpath -ldflags "$ldflags" -o "$output" "$@" 2>&1; echo "rc=$?")
  [[ "$rc" == 0 ]] || die "$what: build failed"
}

# The ldflags of Helm's own Makefile: its version, and the Kubernetes version of its client-go as
# the default .Capabilities.KubeVersion of `helm template` and `helm lint` (else 1.20).
client_go="$(required "$src/helm/go.mod" k8s.io/client-go)"
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
h=helm.sh/helm/v3
build "$src/helm" "helm $helm_version" \
  "-s -w -X $h/internal/version.version=$helm_version -X $h/internal/version.gitTreeState=clean
   -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor
   -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
  "$tmp/helm" $h/cmd/helm
build "$src/dockerfile-check" "dockerfile-check (BuildKit $buildkit_version)" "-s -w" "$tmp/dockerfile-check" .

mkdir -p "$out"
for b in "${binaries[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" >"$out/.stamp"
log "built in $((SECONDS - t0)) s: $(cd "$out" && du -ch "${binaries[@]}" | tail -n1 | cut -f1) in $out"
echo "$out"
