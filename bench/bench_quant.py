"""Quantized forward speed and memory, ours vs llama.cpp (llama-cpp-python) on
the same GGUF files, same thread count, measured in the same run.

For each type (default q8_0, q4_0, q4_k, iq4_nl) the file is made from the base
model with `tasklm quantize --type T`. Each repetition runs, one after the other:
  ours:      `tasklm generate FILE PROMPT -n N --json` (prompt_tok_s, gen_tok_s)
  llama.cpp: a child Python process that loads FILE, evals the same prompt ids
             in one batch (prompt tokens/s), then N-1 greedy single-token evals
             (decode tokens/s).
Each process's peak resident memory (ru_maxrss, via /usr/bin/time) is recorded; the
llama.cpp figure includes its Python interpreter, so the peak of a child that
imports llama_cpp and loads nothing is printed beside it. Prints medians and
ratios ours / llama.cpp; not a pass/fail test.

usage: bench_quant.py [--threads N] [--reps R] [--n-gen N] [--types q8_0,q4_0,...]
                      [--model BASE.gguf] [--tasklm PATH] [--dir DIR]"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
        "combined movable metal type, oil-based inks and a wooden press adapted from those used for wine. "
        "Within a few decades printing shops had spread to more than two hundred cities across Europe, and "
        "the number of books in circulation grew from thousands to millions, changing how knowledge moved.")


def child(model, threads, n_prompt, n_gen):
    """Runs inside the llama.cpp child process; prints one JSON line."""
    import numpy as np
    import llama_cpp
    if model == "-":
        print(json.dumps({}))
        return
    llm = llama_cpp.Llama(model_path=model, n_ctx=512, verbose=False, n_threads=threads,
                          n_threads_batch=threads, n_batch=512)
    nv = llm.n_vocab()
    ids = llm.tokenize(TEXT.encode(), add_bos=True, special=False)[:n_prompt]
    prompt = llm.detokenize(ids).decode("utf-8")
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    llm.eval(ids[:8])  # warm-up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    pp = len(ids) / (time.perf_counter() - t0)
    tok = int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(nv,)).argmax())
    t0 = time.perf_counter()
    for _ in range(n_gen - 1):
        llm.eval([tok])
        tok = int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(nv,)).argmax())
    tg = (n_gen - 1) / (time.perf_counter() - t0)
    print(json.dumps({"pp": pp, "tg": tg, "prompt": prompt, "n_prompt": len(ids)}))


def run_measured(cmd):
    """(stdout, peak RSS in MiB) of a child process, via /usr/bin/time's %M (ru_maxrss)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as f:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench_quant: {' '.join(cmd[:3])} failed: {p.stderr.strip()}")
        return p.stdout, int(f.read().split()[-1]) / 1024.0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--n-prompt", type=int, default=64)
    ap.add_argument("--types", default="q8_0,q4_0,q4_k,iq4_nl")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--tasklm", default=os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm")))
    ap.add_argument("--dir", default=None, help="where the quantized files go (default: a temporary folder)")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="tl-bench-quant-")
    py = sys.executable
    me = os.path.abspath(__file__)

    _, py_base = run_measured([py, me, "--child", "-", "1", "0", "0"])
    print(f"threads {a.threads}, reps {a.reps}, prompt {a.n_prompt} tokens, decode {a.n_gen - 1} passes; "
          f"llama.cpp RSS includes Python (bare child: {py_base:.0f} MiB)")
    print(f"{'type':8}{'MiB':>7}{'pp ours':>9}{'pp llama':>10}{'ratio':>7}{'tg ours':>9}{'tg llama':>10}{'ratio':>7}"
          f"{'RSS ours':>10}{'RSS llama':>11}")
    for t in a.types.split(","):
        path = os.path.join(d, f"model-{t}.gguf")
        if not os.path.exists(path):
            q = subprocess.run([a.tasklm, "quantize", a.model, path, "--type", t, "-t", str(a.threads)],
                               capture_output=True, text=True)
            if q.returncode != 0:
                sys.exit(f"bench_quant: quantize {t} failed: {q.stderr.strip()}")
        o_pp, o_tg, r_pp, r_tg, o_rss, r_rss = [], [], [], [], [], []
        for _ in range(a.reps):
            out, rss = run_measured([py, me, "--child", path, str(a.threads), str(a.n_prompt), str(a.n_gen)])
            r = json.loads(out)
            r_pp.append(r["pp"])
            r_tg.append(r["tg"])
            r_rss.append(rss)
            out, rss = run_measured([a.tasklm, "generate", path, r["prompt"], "-n", str(a.n_gen), "--json",
                                     "--threads", str(a.threads), "--ctx", "512"])
            j = json.loads(out)
            o_pp.append(j["prompt_tok_s"])
            o_tg.append(j["gen_tok_s"])
            o_rss.append(rss)
        m = statistics.median
        print(f"{t:8}{os.path.getsize(path) / 2**20:7.1f}{m(o_pp):9.1f}{m(r_pp):10.1f}{m(o_pp) / m(r_pp):7.2f}"
              f"{m(o_tg):9.1f}{m(r_tg):10.1f}{m(o_tg) / m(r_tg):7.2f}{m(o_rss):10.0f}{m(r_rss):11.0f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
