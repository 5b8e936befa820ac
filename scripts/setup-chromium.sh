#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard test (test/dashboard/, driven by playwright-core,
# which downloads no browser of its own). Idempotent: does nothing when /usr/bin/chromium exists.
# Needs root (or sudo) for apt-get; CI and the development machines run as root. The last line of
# stdout is the browser's path.
set -euo pipefail

chromium=/usr/bin/chromium
log() { printf 'setup-chromium: %s\n' "$*" >&2; }

if [[ ! -x "$chromium" ]]; then
  if [[ "$(id -u)" -eq 0 ]]; then sudo=()
  elif command -v sudo >/dev/null 2>&1; then sudo=(sudo)
  else log "error: $chromium is missing and installing it needs root: apt-get install chromium"; exit 1; fi
  log "installing chromium from Debian (apt-get; a few minutes, once)"
  # Wait for another apt-get to finish rather than fail on its lock.
  apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >&2
  # Without recommends: headless chromium under playwright-core needs none of them (sandbox helper,
  # udev, upower, mesa's DRI drivers, printing, notifications); fontconfig's own dependency brings a
  # font. On the development VM (Debian 12) that is 26 packages to install instead of 131.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends chromium >&2
  [[ -x "$chromium" ]] || { log "error: apt-get installed chromium but $chromium is not there"; exit 1; }
fi
log "$("$chromium" --version 2>/dev/null || echo "$chromium")"
echo "$chromium"
