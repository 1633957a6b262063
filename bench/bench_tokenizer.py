"""Tokenizer throughput: `tasklm tokenize --file` against llama.cpp
(llama-cpp-python, vocab_only) on the same text, measured in one run.
Prints the ratio; not part of the pass/fail suite.

usage: .venv/bin/python bench/bench_tokenizer.py [MODEL] [--repeat N]
The text is the tokenizer peer-test corpus, joined with newlines and repeated."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "peer"))
import test_tokenizer_peer as peer  # noqa: E402
import llama_cpp  # noqa: E402


def best_of(n, fn):
    best = None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=peer.MODEL)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasklm", default=os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm")))
    a = ap.parse_args()
    text = "\n".join(peer.build_corpus()) * a.repeat
    data = text.encode("utf-8")
    with tempfile.TemporaryDirectory() as d:
        big, tiny = os.path.join(d, "big.txt"), os.path.join(d, "tiny.txt")
        with open(big, "wb") as fh:
            fh.write(data)
        with open(tiny, "w") as fh:
            fh.write("a")

        def ours(path):
            return subprocess.run([a.tasklm, "tokenize", a.model, "--file", path], capture_output=True, text=True)
        t_load, _ = best_of(3, lambda: ours(tiny))
        t_ours, r = best_of(3, lambda: ours(big))
    llm = llama_cpp.Llama(model_path=a.model, vocab_only=True, verbose=False)
    t_ref, ref = best_of(3, lambda: llm.tokenize(data, add_bos=False, special=False))
    same = [int(x) for x in r.stdout.split()] == ref
    t_enc = max(t_ours - t_load, 1e-9)
    print(f"text: {len(data)} bytes, {len(ref)} tokens; ids identical: {same}")
    print(f"llama.cpp tokenize: {t_ref:.3f} s ({len(data) / t_ref / 1e6:.2f} MB/s)")
    print(f"tasklm tokenize:    {t_enc:.3f} s ({len(data) / t_enc / 1e6:.2f} MB/s) "
          f"[process {t_ours:.3f} s minus start-up and load {t_load:.3f} s]")
    print(f"ratio tasklm/llama.cpp time: {t_enc / t_ref:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
