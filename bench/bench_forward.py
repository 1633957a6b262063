"""Forward-pass speed, ours vs llama.cpp (llama-cpp-python) on the same GGUF,
same thread count, measured in the same run, alternating the two each
repetition so that machine load affects both alike.

  prompt processing: one batched pass over a 64-token prompt (tokens/s)
  decode: greedy single-token passes after it (tokens/s)

Ours comes from `tasklm generate --json` (prompt_tok_s, gen_tok_s); llama.cpp's
from timing eval() calls (prompt: one eval of the ids; decode: eval of each
argmax token). Prints the medians and the ratios ours / llama.cpp.

usage: bench_forward.py [--threads N] [--reps R] [--n-gen N] [--model PATH] [--tasklm PATH]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
        "combined movable metal type, oil-based inks and a wooden press adapted from those used for wine. "
        "Within a few decades printing shops had spread to more than two hundred cities across Europe, and "
        "the number of books in circulation grew from thousands to millions, changing how knowledge moved.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--n-prompt", type=int, default=64)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--tasklm", default=os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm")))
    a = ap.parse_args()

    llm = llama_cpp.Llama(model_path=a.model, n_ctx=512, logits_all=False, verbose=False, n_threads=a.threads,
                          n_threads_batch=a.threads, n_batch=512)
    n_vocab = llm.n_vocab()
    ids = llm.tokenize(TEXT.encode(), add_bos=True, special=False)[:a.n_prompt]
    prompt = llm.detokenize(ids).decode("utf-8")
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)

    ours_pp, ours_tg, ref_pp, ref_tg, n_prompt_ours = [], [], [], [], None
    for rep in range(a.reps):
        r = subprocess.run([a.tasklm, "generate", a.model, prompt, "-n", str(a.n_gen), "--json",
                            "--threads", str(a.threads), "--ctx", "512"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench_forward: tasklm failed: {r.stderr.strip()}")
        j = json.loads(r.stdout)
        n_prompt_ours = j["n_prompt"]
        ours_pp.append(j["prompt_tok_s"])
        ours_tg.append(j["gen_tok_s"])

        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        ref_pp.append(len(ids) / (t1 - t0))
        tok = int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).argmax())
        t0 = time.perf_counter()
        for _ in range(a.n_gen - 1):
            llm.eval([tok])
            tok = int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).argmax())
        ref_tg.append((a.n_gen - 1) / (time.perf_counter() - t0))

    med = statistics.median
    print(f"model {os.path.basename(a.model)}, threads {a.threads}, reps {a.reps}, "
          f"prompt {len(ids)} tokens (ours {n_prompt_ours}), decode {a.n_gen - 1} passes")
    print(f"{'':24}{'tasklm':>12}{'llama.cpp':>12}{'ratio':>8}")
    print(f"{'prompt tokens/s':24}{med(ours_pp):12.1f}{med(ref_pp):12.1f}{med(ours_pp) / med(ref_pp):8.2f}")
    print(f"{'decode tokens/s':24}{med(ours_tg):12.1f}{med(ref_tg):12.1f}{med(ours_tg) / med(ref_tg):8.2f}")


if __name__ == "__main__":
    main()
