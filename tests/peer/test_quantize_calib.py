#!/usr/bin/env python3
"""tasklm quantize --calib: a calibrated iq4_nl file that llama.cpp loads and
runs with its next token among the source's top 5; statistics reach every block weight; the
already-quantized input is reported; bad calibration input fails cleanly."""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from tl_check import MODEL, TASKLM, Checker, run_tasklm  # noqa: E402,F401

import llama_cpp  # noqa: E402

c = Checker("peer/test_quantize_calib")
RAW = "tasks/namematch/data/raw.csv"
TEMPLATE = open("tasks/namematch/template.txt", encoding="utf-8").read()
LABELS = [" yes", " no", " partial"]


def next_logits(path, text):
    """llama.cpp's next-token logits after a short prompt."""
    llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    for t in ids:  # one token per decode: this build of llama.cpp dies (SIGILL) on multi-token batches
        llm.eval([t])
    row = [float(v) for v in llm.scores[len(ids) - 1]]
    del llm
    return row


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "cal.gguf")
    r = run_tasklm(["quantize", MODEL, out, "--type", "iq4_nl", "--calib", RAW, "--calib-rows", "6",
                    "--threads", "2", "--json"])
    ok = c.check(r.returncode == 0, "quantize --calib exits 0", r.stderr[-300:])
    if ok:
        js = json.loads(r.stdout)
        blk = [t for t in js["tensors"] if t["name"].startswith("blk.") and t["type_out"] == "iq4_nl"]
        c.check(js["calibrated"] and blk and all(t["importance"] for t in blk),
                f"all {len(blk)} iq4_nl block weights quantized with activation statistics")
        c.check("6 prompts" in r.stderr, "one line reports the calibration prompts", r.stderr[:300])
        c.check("already quantized" in r.stderr and "dequantized first" in r.stderr,
                "one line says the Q4_1 input was dequantized first", r.stderr[:300])
        c.check(sum("already quantized" in ln for ln in r.stderr.splitlines()) == 1, "exactly one such line")

        text = "The capital of France is"
        ls, lc = next_logits(MODEL, text), next_logits(out, text)
        top = sorted(range(len(ls)), key=lambda i: -ls[i])[:5]
        c.check(all(math.isfinite(v) for v in lc) and lc.index(max(lc)) in top,
                "llama.cpp loads and runs the calibrated file; its next token is among the source's top 5",
                f"{lc.index(max(lc))} vs {top}")

    # the calibration prompts are the task's: --task-dir picks the template and fields; the token
    # count reported is llama.cpp's count over the prompts `tasklm data render` prints for those rows
    vocab = llama_cpp.Llama(model_path=MODEL, vocab_only=True, verbose=False)
    for tdir in ("tasks/namematch", "tasks/namematch-letters"):
        rr = run_tasklm(["data", "render", "--in", RAW, "--task-dir", tdir, "--limit", "6"])
        prompts = [json.loads(ln)["prompt"] for ln in rr.stdout.splitlines()]
        want = sum(len(vocab.tokenize(p.encode("utf-8"), add_bos=True, special=True)) for p in prompts)
        r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "t.gguf"), "--type", "q4_k", "--calib", RAW,
                        "--calib-rows", "6", "--task-dir", tdir, "--threads", "2"])
        c.check(r.returncode == 0 and len(prompts) == 6 and f"6 prompts, {want} tokens" in r.stderr,
                f"--task-dir {tdir}: calibration over its 6 rendered prompts, {want} tokens as llama.cpp counts them",
                r.stderr[-300:])
    r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "x.gguf"), "--type", "iq4_nl", "--calib", RAW,
                    "--task-dir", os.path.join(tmp, "no-task")])
    c.check(r.returncode == 1 and "no-task/task.json" in r.stderr and r.stderr.count("\n") == 1,
            "missing task folder: exit 1 naming its task.json", r.stderr)
    r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "x.gguf"), "--type", "q8_0", "--task", "namematch"])
    c.check(r.returncode == 2 and "--task only matters with --calib" in r.stderr, "--task without --calib: usage error",
            r.stderr)
    r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "x.gguf"), "--type", "iq4_nl", "--calib",
                    os.path.join(tmp, "missing.csv")])
    c.check(r.returncode == 1 and "missing.csv" in r.stderr and r.stderr.count("\n") <= 2,
            "missing calibration CSV: exit 1 naming it", r.stderr)
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("a,b\n1,2\n")
    r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "x.gguf"), "--type", "iq4_nl", "--calib", bad])
    c.check(r.returncode == 1 and "elected_name" in r.stderr, "CSV without the task columns: exit 1 naming the column",
            r.stderr)
    r = run_tasklm(["quantize", MODEL, os.path.join(tmp, "x.gguf"), "--type", "iq4_nl", "--calib", RAW,
                    "--calib-rows", "0"])
    c.check(r.returncode == 2 and "--calib-rows" in r.stderr, "--calib-rows 0: usage error", r.stderr)
    c.check(not os.path.exists(os.path.join(tmp, "x.gguf")), "no output file after a failure")

sys.exit(c.finish())
