"""LoRA training on the default model, checked against llama.cpp.

A short real run (20 steps, batch 8) on a slice of the name-match data must
lower the training loss; then llama.cpp (llama-cpp-python) loads the base model
plus our adapter.gguf and its label log-probabilities on the evaluation rows
must agree with the ones our trainer computed with the same adapter: the same
predicted label on at least 98% of the rows and small log-prob differences.
Also: llama.cpp's output with the adapter differs from the base model's (the
adapter is really applied), and `tasklm train` writes the files it promises."""
import csv
import json
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402

N_TRAIN, N_EVAL = 160, 50


def write_slice(path, rows, header):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def main():
    c = Checker("test_lora_peer")
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    with open(os.path.join(task_dir, "data", "raw.csv"), newline="") as f:
        rd = csv.reader(f)
        header = next(rd)
        rows = list(rd)
    tmp = tempfile.mkdtemp(prefix="tl-lora-")
    train, test, out = (os.path.join(tmp, n) for n in ("train.csv", "test.csv", "run"))
    write_slice(train, rows[:N_TRAIN], header)
    write_slice(test, rows[-N_EVAL:], header)
    r = run_tasklm(["train", "-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test, "--out", out,
                    "--lora-rank", "8", "--lora-alpha", "16", "--lora-targets", "q,k,v,o", "--batch", "8",
                    "--max-steps", "20", "--eval-every", "10", "--lr", "1e-3", "--warmup", "2", "--seed", "3",
                    "--threads", "2", "--json"], timeout=600)
    if not c.check(r.returncode == 0, "tasklm train runs", r.stderr[-500:]):
        return c.finish()
    summary = json.loads(r.stdout)
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    c.check([x["step"] for x in lines] == [10, 20], "metrics.jsonl has an entry at steps 10 and 20")
    c.check(lines[1]["train_loss"] < lines[0]["train_loss"],
            "mean training loss of steps 11-20 is below that of steps 1-10",
            f"{lines[0]['train_loss']:.4f} -> {lines[1]['train_loss']:.4f}")
    c.check(summary["last_loss"] < summary["first_loss"], "last step's loss is below the first's",
            f"{summary['first_loss']:.4f} -> {summary['last_loss']:.4f}")
    for n in ("adapter.gguf", "adapter-last.gguf", "checkpoint.bin", "predictions-last.jsonl"):
        c.check(os.path.isfile(os.path.join(out, n)), f"{n} written")
    ours = [json.loads(x) for x in open(os.path.join(out, "predictions-last.jsonl"))]
    c.check(len(ours) == N_EVAL and all(p["step"] == 20 for p in ours), "predictions of the last step for every row")

    base_out = os.path.join(tmp, "base")
    r0 = run_tasklm(["train", "-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test, "--out", base_out,
                     "--batch", "1", "--max-steps", "1", "--lr", "0", "--threads", "2"], timeout=600)
    c.check(r0.returncode == 0, "tasklm train with lr 0 (base-model scores) runs", r0.stderr[-300:])
    ours_base = [json.loads(x) for x in open(os.path.join(base_out, "predictions-last.jsonl"))]

    from llama_cpp import Llama
    labels = lines[1]["labels"]
    template = open(os.path.join(task_dir, "template.txt"), encoding="utf-8").read()
    kw = dict(n_ctx=512, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)
    adapter = os.path.join(out, "adapter-last.gguf")
    try:
        lm = Llama(model_path=MODEL, lora_path=adapter, **kw)
    except Exception as e:  # noqa: BLE001
        c.check(False, "llama.cpp loads base + our adapter", str(e)[:300])
        return c.finish()
    c.check(True, "llama.cpp loads base + our adapter")
    base = Llama(model_path=MODEL, **kw)
    lab_ids = [lm.tokenize((" " + l).encode(), add_bos=False, special=False) for l in labels]

    def logprobs(model, prompt_ids):
        """Sum of log p(label tokens | prompt) per label; the prompt is evaluated once."""
        def lsm(row):
            row = np.array(row, dtype=np.float64)
            m = row.max()
            return row - m - math.log(np.exp(row - m).sum())
        model.reset()
        model.eval(prompt_ids)
        last = lsm(model.scores[len(prompt_ids) - 1])
        out_lp = []
        for ids in lab_ids:
            lp = last[ids[0]]
            if len(ids) > 1:
                model.n_tokens = len(prompt_ids)
                model.eval(ids[:-1])
                for j in range(1, len(ids)):
                    lp += lsm(model.scores[len(prompt_ids) + j - 1])[ids[j]]
            out_lp.append(lp)
        return out_lp

    agree, diffs, base_diffs, delta_diffs, base_shift = 0, [], [], [], []
    for i, row in enumerate(rows[-N_EVAL:]):
        rec = dict(zip(header, row))
        prompt = template.replace("<elected_name>", rec["elected_name"]).replace("<partner_name>", rec["partner_name"])
        ids = lm.tokenize(prompt.encode(), add_bos=True, special=True)
        lp, lb = np.array(logprobs(lm, ids)), np.array(logprobs(base, ids))
        ref = np.array([ours[i]["logprobs"][l] for l in labels])
        ref_b = np.array([ours_base[i]["logprobs"][l] for l in labels])
        agree += labels[int(np.argmax(lp))] == ours[i]["pred"]
        diffs.append(np.abs(lp - ref).max())
        base_diffs.append(np.abs(lb - ref_b).max())
        delta_diffs.append(np.abs((lp - lb) - (ref - ref_b)).max())
        base_shift.append(np.abs(lp - lb).max())
    rate = agree / N_EVAL
    diffs, base_diffs, delta_diffs = np.array(diffs), np.array(base_diffs), np.array(delta_diffs)
    print(f"  label agreement {rate:.3f}; log-prob |diff| with adapter mean {diffs.mean():.4f} max {diffs.max():.4f}; "
          f"base model alone mean {base_diffs.mean():.4f}; adapter effect |diff| mean {delta_diffs.mean():.4f} "
          f"max {delta_diffs.max():.4f}; adapter shift (llama.cpp) mean {np.mean(base_shift):.3f}")
    c.check(rate >= 0.98, "llama.cpp with our adapter predicts the same label on >= 98% of rows", f"{rate:.3f}")
    # The base forward passes differ slightly (activation and KV-cache rounding); the
    # adapter's effect on the log-probs must be the same in both.
    c.check(delta_diffs.mean() < 0.2 * np.mean(base_shift),
            "the adapter's shift of the label log-probs agrees with llama.cpp's within 20%",
            f"mean {delta_diffs.mean():.4f} max {delta_diffs.max():.4f}")
    c.check(diffs.mean() < base_diffs.mean() + 0.1, "with the adapter, log-prob differences stay near the base model's",
            f"{diffs.mean():.4f} vs base {base_diffs.mean():.4f}")
    c.check(np.mean(base_shift) > 5 * delta_diffs.mean(),
            "the adapter changes llama.cpp's log-probs far more than our difference to it",
            f"shift {np.mean(base_shift):.4f} vs diff {delta_diffs.mean():.4f}")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
