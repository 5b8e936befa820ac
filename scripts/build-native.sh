#!/usr/bin/env bash
# Builds the ort_io addon (worker/native/ort_io.c) into build/native/ort_io.node: plain C against
# Node-API (headers from the npm package node-api-headers) and onnxruntime's C API header (vendored in
# worker/native/third_party), no node-gyp (it would download Node's headers, which this network
# cannot reach). The addon loads onnxruntime at run time (dlopen), so nothing else is linked.
# Rebuilds only when the source is newer than the addon. Prints the addon's path.
set -euo pipefail
cd "$(dirname "$0")/.."
src=worker/native/ort_io.c
out=build/native/ort_io.node
if [[ ! -f $out || $src -nt $out || $0 -nt $out ]]; then
  mkdir -p "$(dirname "$out")"
  ${CC:-cc} -O2 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -shared -fPIC -fvisibility=hidden \
    -I node_modules/node-api-headers/include -I worker/native/third_party/onnxruntime \
    "$src" -o "$out.tmp" -ldl -lpthread
  mv "$out.tmp" "$out"
fi
echo "$PWD/$out"
