#!/usr/bin/env bash
# The GPU benchmark and checks, on the device (one H200), from the repository root after
# `source .device/setup.sh` (DEVICE.md: Node.js, production node_modules, onnxruntime's CUDA
# provider). Writes into OUT_DIR:
#   check.md       bench/gpu/check.ts: the CUDA engine against transformers and the CPU engine
#   runs.jsonl     one line per load and per context: runahead (engine-bench.ts) and PyTorch
#                  (pytorch_anchor.py), same prompts' lengths, same GPU, one after the other
#   gpu-mem.log    the GPU's used memory every 50 ms (gpu-mem.py), for each context's peak
#   profile.txt    where the time of one runahead prefill goes (ncu, kernel durations by name)
#   experiments.jsonl  labelled engine-bench runs (steps memory, groups)
#   egress.md      host ↔ GPU copy speed by tensor size (step egress, bench/gpu/egress.ts)
#   native-egress.md  the same through the ort_io addon into reused (pinned) buffers (step native)
#   *.log          stderr of each step
# Then, here: node bench/gpu/report.ts OUT_DIR → bench/results/h200-cuda.{md,json}.
#
# Usage: bench/gpu/run.sh OUT_DIR [steps: smoke check bench anchor loadprofile optlevels memory groups
#        egress native io chain transport link profile] [MODELS=llama-7b,llama3-8b]
set -uo pipefail
out=${1:?usage: bench/gpu/run.sh OUT_DIR [steps...]}
shift
steps=${*:-smoke bench anchor check loadprofile profile}
models=${MODELS:-llama-7b llama3-8b}
contexts=${CONTEXTS:-2048,4096,8192,16384,32768}
repeats=${REPEATS:-3}
mkdir -p "$out"
# The settings every GPU report so far was measured with (32 MiB); the workers' default is 4 MiB since
# the CPU memory sweep (cpu-small-memory.md) — the next device run should measure both.
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  node --version
  node -p "'onnxruntime-node ' + require('onnxruntime-node/package.json').version"
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  nproc
  df -h /dev/shm /tmp | awk 'NR > 1 { print $6, $4, "free" }'
} > "$out/machine.txt" 2>&1
python3 bench/gpu/gpu-mem.py > "$out/gpu-mem.log" &
poller=$!
trap 'kill $poller 2>/dev/null' EXIT
step() { echo "== $1 ($(date +%T))"; }
for s in $steps; do
  case $s in
    smoke)
      step smoke
      timeout 120 node bin/runahead.js prefill --model synthetic:small --ep cuda --dtype float16 --prompt-tokens 512 \
        --max-new-tokens 4 2>&1 | tail -n 5 ;;
    check)
      step check
      timeout 200 node bench/gpu/check.ts > "$out/check.md" 2> "$out/check.log"; echo "check exit $?"
      tail -n 20 "$out/check.md" ;;
    bench)
      for m in $models; do
        step "runahead $m"
        timeout -k 5 300 node bench/gpu/engine-bench.ts --model "synthetic:$m" --contexts "$contexts" --repeats "$repeats" \
          >> "$out/runs.jsonl" 2>> "$out/bench.log"; echo "exit $?"
      done ;;
    anchor)
      for m in $models; do
        step "pytorch $m"
        timeout 300 python3 bench/gpu/pytorch_anchor.py --preset "$m" --contexts "$contexts" --repeats "$repeats" \
          >> "$out/runs.jsonl" 2>> "$out/anchor.log"; echo "exit $?"
      done ;;
    loadprofile)
      step "load profile runahead llama-7b"
      RUNAHEAD_ORT_PROFILE="$out/ort-load" timeout 120 node bench/gpu/engine-bench.ts --model synthetic:llama-7b \
        --contexts 2048 --warmup 0 --repeats 1 > "$out/load-run.jsonl" 2>> "$out/profile.log"; echo "exit $?"
      head -c 400 "$out/load-run.jsonl"; echo
      # the largest profile is the model's session (the first is the provider probe's)
      node -e 'const e=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const x of e.filter(x=>x.cat==="Session").sort((a,b)=>b.dur-a.dur).slice(0,12))console.log(x.name,(x.dur/1000).toFixed(0),"ms")' \
        "$(ls -S "$out"/ort-load*.json | head -1)" > "$out/load-profile.txt" 2>&1
      cat "$out/load-profile.txt"
      rm -f "$out"/ort-load*.json ;;
    optlevels)
      for level in disabled basic extended all; do
        step "load at opt level $level"
        timeout 150 node bench/gpu/engine-bench.ts --model synthetic:llama-7b --contexts 8192 --warmup 1 --repeats 2 \
          --opt-level "$level" > "$out/opt-$level.jsonl" 2>> "$out/opt.log"
        cut -c1-330 "$out/opt-$level.jsonl"
      done ;;
    memory)
      # Peak GPU memory of one 32k prefill in a fresh process, onnxruntime's memory pattern on and off
      # (with it on, each prompt length gets its own block of intermediates in the arena).
      for pattern in on off; do
        step "memory llama-7b @32768, memory pattern $pattern"
        timeout -k 5 150 node bench/gpu/engine-bench.ts --model synthetic:llama-7b --contexts 32768 --warmup 1 --repeats 2 \
          --mem-pattern "$pattern" --label "memory, fresh process" >> "$out/experiments.jsonl" 2>> "$out/experiments.log"
        echo "exit $?"
      done ;;
    groups)
      # What a chain rank pays for K/V leaving the GPU, by layers per graph: the first token without
      # K/V, then every layer's K/V to the host (fill).
      # (one layer per graph: 64 sessions, more than the GPU holds at 8k)
      for k in 0 16 8 4; do
        step "groups llama-7b @8192, $k layers per graph"
        timeout -k 5 120 node bench/gpu/engine-bench.ts --model synthetic:llama-7b --contexts 8192 --warmup 1 --repeats 3 \
          --layers-per-graph "$k" --fill --label "layers per graph" >> "$out/experiments.jsonl" 2>> "$out/experiments.log"
        echo "exit $?"
      done ;;
    egress)
      # Host ↔ GPU through onnxruntime-node by tensor size (bench/gpu/egress.ts), under three
      # allocator settings: glibc's defaults, large blocks kept in the heap (MALLOC_MMAP_MAX_=0), and
      # what the worker processes get (MALLOC_TUNING_ENV, exported above); then pinned outputs.
      clean="env -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_TRIM_THRESHOLD_ -u MALLOC_TOP_PAD_"
      for variant in "glibc defaults|$clean" "MALLOC_MMAP_MAX_=0|$clean MALLOC_MMAP_MAX_=0" "worker settings|env"; do
        step "egress: ${variant%%|*}"
        ${variant#*|} timeout -k 5 100 node bench/gpu/egress.ts --sizes-mib "${EGRESS_MIB:-8,64,512,2048}" --repeats 3 --dtype float32 \
          --label "${variant%%|*}" >> "$out/egress.jsonl" 2>> "$out/egress.md"; echo "exit $?"
      done
      step "egress: pinned outputs"
      timeout -k 5 100 node bench/gpu/egress.ts --sizes-mib "${EGRESS_MIB:-8,64,512,2048}" --repeats 3 --dtype float32 \
        --label "worker settings" --output-location cpu-pinned >> "$out/egress.jsonl" 2>> "$out/egress.md"
      echo "exit $?"
      cat "$out/egress.md" ;;
    native)
      # The same copies through the ort_io addon (IO binding into reused host buffers, pinned or not),
      # beside onnxruntime-node's (step egress); build/native/ort_io.node travels with the call.
      step "egress through the ort_io addon"
      timeout -k 5 200 node bench/gpu/native-egress.ts --sizes-mib "${NATIVE_MIB:-2,8,32,128,512,2048}" --repeats 5 \
        >> "$out/native-egress.jsonl" 2>> "$out/native-egress.md"; echo "exit $?"
      cat "$out/native-egress.md" ;;
    io)
      # The engine's K/V leaving the GPU on each IO path (graph-session.ts): llama-7b @8192, graphs of
      # 8 layers, the first token and then every layer's K/V to the host (fill), one process per path.
      for io in onnxruntime-node native; do
        step "io $io llama-7b @8192"
        timeout -k 5 150 node bench/gpu/engine-bench.ts --model synthetic:llama-7b --contexts 8192 --warmup 1 --repeats 3 \
          --layers-per-graph 8 --fill --io "$io" --label "io $io" >> "$out/experiments.jsonl" 2>> "$out/experiments.log"
        echo "exit $?"
      done ;;
    chain)
      # Two ranks on ONE GPU (they share it: not a speedup figure), warm (bench's warm-up run first):
      # what sending K/V costs a rank on each IO path, beside one rank alone.
      for io in onnxruntime-node native; do
        step "chain llama3-8b, 2 ranks on one GPU, io $io"
        timeout -k 5 200 node bin/runahead.js bench --model synthetic:llama3-8b --ep cuda --dtype float16 --io "$io" \
          --contexts "${CHAIN_CONTEXTS:-8192}" --ranks 2 --modes single,runahead --warmup 1 --repeats 3 \
          --json-out "$out/chain-$io.json" --out "$out/chain-$io.md" 2>> "$out/chain.log"
        echo "exit $?"; cat "$out/chain-$io.md"
      done ;;
    transport)
      # Two ranks on ONE GPU, native IO, K/V on the K/V socket and on gRPC StreamKv, each with the
      # allocator's mmap threshold at 32 MiB (the GPU reports so far) and at 4 MiB (the workers' default).
      for mmap in 33554432 4194304; do
        for t in socket grpc; do
          step "chain llama3-8b, 2 ranks on one GPU, kv-transport $t, mmap threshold $mmap"
          MALLOC_MMAP_THRESHOLD_=$mmap timeout -k 5 200 node bin/runahead.js bench --model synthetic:llama3-8b --ep cuda \
            --dtype float16 --io native --kv-transport "$t" --contexts "${CHAIN_CONTEXTS:-8192}" --ranks 2 \
            --modes single,runahead --warmup 1 --repeats 3 --json-out "$out/transport-$t-$mmap.json" \
            --out "$out/transport-$t-$mmap.md" 2>> "$out/transport.log"
          echo "exit $?"; cat "$out/transport-$t-$mmap.md"
        done
      done ;;
    link)
      # The chain's gRPC link between two rank processes on this host (loopback), beside raw TCP and memcpy.
      step "link llama3-8b K/V @4096"
      timeout -k 5 300 node bin/runahead.js bench link --repeats 5 --out "$out/link.md" --json-out "$out/link.json" \
        2>> "$out/link.log"; echo "exit $?"
      cat "$out/link.md" ;;
    profile)
      step "profile runahead llama-7b @8192"
      ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
      # One measured prefill after one warm-up, every kernel timed (ncu serialises them).
      timeout 150 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$out/ncu.csv" \
        node bench/gpu/engine-bench.ts --model synthetic:llama-7b --contexts 8192 --warmup 1 --repeats 1 \
        > "$out/profile-run.jsonl" 2> "$out/profile.log"; echo "exit $?"
      node bench/gpu/ncu-summary.ts "$out/ncu.csv" > "$out/profile.txt" 2>> "$out/profile.log"
      head -n 30 "$out/profile.txt" ;;
  esac
done
grep -h '"event":"context"' "$out/runs.jsonl" 2>/dev/null | cut -c1-220
