#!/usr/bin/env bash
# The serving benchmark (issue 15) on one machine, from scratch: calibrate the cost model of the
# group on this machine (bench runs of one rank and of the split group), then load the serving
# front with a prompt-length mix for each routing policy (one rank, always split, length-aware).
# Usage: bench/serve.sh <output dir>
# Environment (defaults = the CPU run of bench/results/serve-cpu-*/tiny): MODEL, EP, DTYPE, RANKS,
# THREADS, PIN (cores per rank; empty: no pinning), CAL_CONTEXTS, MIX, REQUESTS, WARMUP, RUNS
# (how many times the whole load is repeated, each to serve-<i>.{md,json}).
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
run="node bin/runahead.js"
common=(--model "${MODEL:-synthetic:tiny}" --ep "${EP:-cpu}" --dtype "${DTYPE:-float32}" --ranks "${RANKS:-2}"
  --threads "${THREADS:-1}")
[[ -n "${PIN-1}" ]] && common+=(--pin-cores "${PIN:-1}")
echo "calibration runs: contexts ${CAL_CONTEXTS:-128,1024,4096,8192,16384}" >&2
$run bench "${common[@]}" --contexts "${CAL_CONTEXTS:-128,1024,4096,8192,16384}" --modes single,runahead \
  --repeats 3 --warmup 1 --out "$out/calibration-runs.md" --json-out "$out/calibration-runs.json" 2>"$out/calibration.log"
$run calibrate --runs "$out/calibration-runs.json" --out "$out/profile.json" > "$out/calibration-fit.md"
for i in $(seq 1 "${RUNS:-1}"); do
  echo "serving load $i of ${RUNS:-1}" >&2
  $run bench serve "${common[@]}" --mix "${MIX:-70:16-512,30:4096-12288}" --requests "${REQUESTS:-100}" \
    --warmup "${WARMUP:-3}" --profile "$out/profile.json" --out "$out/serve-$i.md" --json-out "$out/serve-$i.json" \
    2>"$out/serve-$i.log"
done
