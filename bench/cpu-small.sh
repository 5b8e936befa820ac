#!/usr/bin/env bash
# The CPU benchmark of the small preset, as run for bench/results/cpu-small.md: calibrate the cost
# model on one set of context lengths, tune balanced splits for 2 and 4 ranks, then measure single,
# TSP, KV-Runahead even and balanced side by side on other lengths, with predictions.
# Ranks are processes pinned to 4 cores each (16 cores for 4 ranks).
# Usage: bench/cpu-small.sh <output dir>
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
run="node bin/runahead.js"
common=(--model synthetic:small --threads 4 --pin-cores 4)
$run bench "${common[@]}" --contexts 1536,3072,6144 --ranks 2,4 --modes single,tsp,runahead --repeats 1 --warmup 1 \
  --json-out "$out/calibration-runs.json" --out "$out/calibration-runs.md" 2>"$out/calibration.log"
$run calibrate --runs "$out/calibration-runs.json" --out "$out/profile.json" > "$out/calibration-fit.md"
for n in 2 4; do
  $run tune --ranks "$n" --profile "$out/profile.json" --out "$out/table-$n.json" > "$out/table-$n.md"
done
$run bench "${common[@]}" --contexts 2048,4096,8192 --ranks 2,4 --modes single,tsp,runahead,balanced --repeats 3 --warmup 1 \
  --profile "$out/profile.json" --partition-table "$out/table-2.json,$out/table-4.json" \
  --json-out "$out/cpu-small.json" --out "$out/cpu-small.md" 2>"$out/bench.log"
