"""Samples the GPU's used memory every 50 ms: one line 'epoch_ms MiB' per sample, on stdout.
bench/gpu/run.sh runs it beside the engines; report.ts takes each context's peak from it."""

import subprocess
import sys
import time

proc = subprocess.Popen(
    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "50"],
    stdout=subprocess.PIPE, text=True)
for line in proc.stdout:
    sys.stdout.write(f"{time.time() * 1000:.0f} {line.strip()}\n")
    sys.stdout.flush()
