"""PyTorch's TTFT on the same GPU, the anchor of bench/gpu/run.sh: transformers' LlamaForCausalLM
built from a config with random weights (no downloads), bf16, SDPA attention, one prompt, logits of
the last position only. Prints one JSON line per event, in engine-bench.ts's format.

  python3 bench/gpu/pytorch_anchor.py --preset llama-7b --contexts 2048,4096 --warmup 1 --repeats 3
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# The shapes of worker/model/presets.ts.
PRESETS = {
    "llama-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, rope_theta=10000.0,
                     max_position_embeddings=65536),
    "llama3-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                      max_position_embeddings=131072),
}


def emit(event, **fields):
    print(json.dumps({"event": event, "engine": "pytorch", "atMs": time.time() * 1000, **fields}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--contexts", default="2048,4096,8192,16384,32768")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    model_ref = f"synthetic:{a.preset}"
    t0 = time.perf_counter()
    config = LlamaConfig(**PRESETS[a.preset], rms_norm_eps=1e-5, tie_word_embeddings=False,
                         attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    torch.cuda.synchronize()
    load_ms = (time.perf_counter() - t0) * 1000
    emit("load", model=model_ref, loadMs=load_ms, attention="sdpa", dtype="bfloat16")
    gen = torch.Generator(device="cpu").manual_seed(0)
    for context in [int(c) for c in a.contexts.split(",")]:
        ids = torch.randint(3, config.vocab_size, (1, context), generator=gen).cuda()
        start_ms = time.time() * 1000
        ttfts = []
        try:
            with torch.inference_mode():
                for i in range(a.warmup + a.repeats):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    logits = model(input_ids=ids, logits_to_keep=1, use_cache=False).logits
                    first = int(logits[0, -1].argmax())
                    torch.cuda.synchronize()
                    if i >= a.warmup:
                        ttfts.append((time.perf_counter() - t) * 1000)
            emit("context", model=model_ref, contextLength=context, startMs=start_ms, endMs=time.time() * 1000,
                 ttftMs=ttfts, firstToken=first, loadMs=load_ms)
        except torch.cuda.OutOfMemoryError as err:
            emit("context", model=model_ref, contextLength=context, startMs=start_ms, endMs=time.time() * 1000,
                 error=str(err).split("\n")[0], loadMs=load_ms)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
