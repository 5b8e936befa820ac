# Shared by scripts/setup-envtest.sh and scripts/setup-tools.sh: build Go binaries from wrapper
# modules in hack/ (versions pinned by their go.mod + go.sum) into a cache directory, once.
# A build is current when every binary exists and the stamp (a hash of the wrapper sources and of
# the Go version) matches; builds are serialised with a lock, since parallel test runners may call
# the scripts together. Progress goes to stderr; the caller prints the directory on stdout.
#
# The caller sets, before sourcing: NAME (for log lines), SRC (the wrapper modules' folder), and
# then calls: cached_build_begin OUT FORCE BINARY... ; build ... ; cached_build_finish.

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

go="${GO:-}"
if [[ -z "$go" ]]; then
  if command -v go >/dev/null 2>&1; then go="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
  else die "Go not found (set GO=/path/to/go)"; fi
fi

# The version a go.mod requires of a module ("require M V" or a "M V" line of a require block).
required() { awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit } ($1 == m && $2 ~ /^v/) { print $2; exit }' "$1"; }

# Hash of the wrapper sources (names and contents) and of the Go version building them.
stamp_of() {
  {
    "$go" version
    (cd "$SRC" && find . -type f ! -name '*.swp' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

_up_to_date() {
  local b
  [[ "$_force" != 1 && -f "$_out/.stamp" && "$(cat "$_out/.stamp")" == "$_stamp" ]] || return 1
  for b in "${_binaries[@]}"; do [[ -x "$_out/$b" ]] || return 1; done
}

# cached_build_begin OUT FORCE BINARY...: exits (printing OUT) when OUT is current; otherwise takes
# the lock and sets $tmp, where the builds put the binaries.
cached_build_begin() {
  _out="$1" _force="$2"; shift 2
  _binaries=("$@")
  _stamp="$(stamp_of)"
  if _up_to_date; then log "up to date: $_out"; echo "$_out"; exit 0; fi
  local parent; parent="$(dirname "$_out")"
  mkdir -p "$parent"
  exec 9>"$parent/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
    _stamp="$(stamp_of)"
    if _up_to_date; then echo "$_out"; exit 0; fi
  fi
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  tmp="$(mktemp -d "$parent/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  _t0=$SECONDS
}

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

# Moves the built binaries into OUT, records the stamp and prints OUT.
cached_build_finish() {
  local b
  mkdir -p "$_out"
  for b in "${_binaries[@]}"; do mv -f "$tmp/$b" "$_out/$b"; done
  echo "$_stamp" >"$_out/.stamp"
  log "built in $((SECONDS - _t0)) s: $(cd "$_out" && du -ch "${_binaries[@]}" | tail -n1 | cut -f1) in $_out"
  echo "$_out"
}
