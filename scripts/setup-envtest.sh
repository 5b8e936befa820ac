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
src="$repo/hack/envtest"
cache="${RUNAHEAD_CACHE:-$repo/.cache}"

log() { printf 'setup-envtest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

go="${GO:-}"
if [[ -z "$go" ]]; then
  if command -v go >/dev/null 2>&1; then go="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
  else die "Go not found (set GO=/path/to/go)"; fi
fi

# The version a go.mod requires of a module ("require M V" or a "M V" line of a require block).
required() { awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit } ($1 == m && $2 ~ /^v/) { print $2; exit }' "$1"; }
k8s_version="$(required "$src/k8s/go.mod" k8s.io/kubernetes)"
etcd_version="$(required "$src/etcd/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || die "cannot read pinned versions from $src/*/go.mod"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"

out="$cache/envtest/k8s-${k8s_version#v}"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

# Hash of the wrapper sources (names and contents) and of the Go version building them.
stamp_of() {
  {
    "$go" version
    (cd "$src" && find . -type f ! -name '*.swp' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  local b
  [[ "${ENVTEST_FORCE:-}" != 1 && -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]] || return 1
  for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || return 1; done
}

stamp="$(stamp_of)"
if up_to_date; then
  log "up to date: Kubernetes $k8s_version, etcd $etcd_version in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache/envtest"
# One build at a time (parallel test runners may call this together).
exec 9>"$cache/envtest/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  stamp="$(stamp_of)"
  if up_to_date; then echo "$out"; exit 0; fi
fi

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
tmp="$(mktemp -d "$cache/envtest/.build.XXXXXX")"
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

ver=k8s.io/component-base/version
build "$src/k8s" "kube-apiserver, kube-controller-manager, kubectl $k8s_version" \
  "-s -w -X $ver.gitVersion=$k8s_version -X $ver.gitMajor=$major -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean" \
  "$tmp/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kubectl
build "$src/etcd" "etcd $etcd_version" "-s -w" "$tmp/etcd" .

mkdir -p "$out"
for b in "${binaries[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" >"$out/.stamp"
log "built in $((SECONDS - t0)) s: $(cd "$out" && du -ch "${binaries[@]}" | tail -n1 | cut -f1) in $out"
echo "$out"
