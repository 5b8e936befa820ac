#!/usr/bin/env bash
# The CPU benchmark of the small preset for load balancing (issue 4): calibrate the cost model on one
# set of context lengths, tune balanced splits, then measure KV-Runahead even and balanced (and
# whatever else MODES names) side by side on other lengths, with the model's predictions.
# Ranks are processes pinned to PIN cores each (16 cores for 4 ranks of 4).
# Usage: bench/cpu-small.sh <output dir>
# Environment (defaults = the full run): MODEL, CAL_CONTEXTS, CAL_RANKS, CONTEXTS, RANKS, MODES, REPEATS, PIN.
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
run="node bin/runahead.js"
pin=${PIN:-4}
cal_contexts=${CAL_CONTEXTS:-1536,3072,6144}
cal_ranks=${CAL_RANKS:-2,4}
contexts=${CONTEXTS:-2048,4096,8192}
ranks=${RANKS:-2,4}
modes=${MODES:-single,tsp,runahead,balanced}
repeats=${REPEATS:-3}
common=(--model "${MODEL:-synthetic:small}" --threads "$pin" --pin-cores "$pin")
echo "calibration runs: contexts $cal_contexts, ranks $cal_ranks" >&2
$run bench "${common[@]}" --contexts "$cal_contexts" --ranks "$cal_ranks" --modes single,tsp,runahead --repeats 1 --warmup 1 \
  --json-out "$out/calibration-runs.json" --out "$out/calibration-runs.md" 2>"$out/calibration.log"
$run calibrate --runs "$out/calibration-runs.json" --out "$out/profile.json" > "$out/calibration-fit.md"
tables=()
for n in ${ranks//,/ }; do
  $run tune --ranks "$n" --profile "$out/profile.json" --out "$out/table-$n.json" > "$out/table-$n.md"
  tables+=("$out/table-$n.json")
done
echo "measured runs: contexts $contexts, ranks $ranks, modes $modes, $repeats repeats" >&2
$run bench "${common[@]}" --contexts "$contexts" --ranks "$ranks" --modes "$modes" --repeats "$repeats" --warmup 1 \
  --profile "$out/profile.json" --partition-table "$(IFS=,; echo "${tables[*]}")" \
  --json-out "$out/cpu-small.json" --out "$out/cpu-small.md" 2>"$out/bench.log"
