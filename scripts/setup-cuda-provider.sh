#!/usr/bin/env bash
# Installs onnxruntime's CUDA execution provider into node_modules/onnxruntime-node, so that
# `--ep cuda` runs on NVIDIA GPUs. Not part of `make test` (CI has no GPU); `make cuda` runs it, and
# the worker image runs it at build time.
#
# onnxruntime-node's own install script downloads the provider from a NuGet feed that is not always
# reachable; the npm package com.github.asus4.onnxruntime.linux-x64-gpu ships the same two libraries
# (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so) of onnxruntime 1.29.0,
# built for CUDA 13, cuBLAS 13 and cuDNN 9. A provider loads only into the onnxruntime release it was
# built with, so this refuses any onnxruntime-node but 1.29.0 (package.json pins it).
#
# At run time the CUDA 13 runtime, cuBLAS and cuDNN 9 libraries must be on the loader's path (a
# CUDA 13 cuDNN runtime image has them; on a host with PyTorch's wheels, their nvidia/*/lib folders).
#
# Usage: scripts/setup-cuda-provider.sh [project root]   (after npm ci; needs the npm registry once,
# then the package is cached in .cache/)
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
want=1.29.0
pkg=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
log() { printf 'setup-cuda-provider: %s\n' "$*" >&2; }

ort="$root/node_modules/onnxruntime-node"
have=$(node -p "require('$ort/package.json').version" 2>/dev/null || echo none)
[[ "$have" == "$want" ]] || { log "onnxruntime-node is $have in $root; the provider is built for $want"; exit 1; }
dest="$ort/bin/napi-v6/linux/x64"
[[ -f "$dest/libonnxruntime.so.1" ]] || { log "no $dest/libonnxruntime.so.1 (run npm ci first)"; exit 1; }

cache="$root/.cache/cuda-provider/$pkg"
if [[ ! -f "$cache/libonnxruntime_providers_cuda.so" ]]; then
  log "fetching $pkg from the npm registry (about 100 MB)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$cache"
  cp "$tmp"/package/Plugins/Linux/x64/libonnxruntime_providers_{cuda,shared}.so "$cache/"
fi
cp "$cache"/libonnxruntime_providers_{cuda,shared}.so "$dest/"
log "installed the CUDA provider of onnxruntime $want in $dest"
