"""tasklm eval (model) and tasklm baseline: report shape, predictions file, label
probabilities against llama.cpp (llama-cpp-python) on a few rows, errors."""
import csv
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402

c = Checker("test_eval")
tmp = tempfile.mkdtemp(prefix="tl_eval_")
LABELS = ["yes", "no", "partial"]
KEYS = {"macro_f1", "accuracy", "per_class", "confusion", "labels", "n", "mean_loss"}
TEMPLATE = ("Decide if the two names belong to the same person.\nReturn one word: yes, no, or partial.\n\n"
            "Name 1: {a}\nName 2: {b}\nAnswer:")

rows = [
    ("Ravi Kumar", "Rvi Kumar", "yes", "typo"),
    ("Ramesh Gupta", "Renuka Gupta", "partial", "surname"),
    ("Ahmed Khan", "Chen Li", "no", "different"),
    ("José García", "Jose Garcia", "yes", "accents"),
    ("Smith, John", "John Smith", "yes", "reorder"),
    ("Anna Lee", "Bob Ray", "no", "different"),
]
data = os.path.join(tmp, "test.csv")
with open(data, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["elected_name", "partner_name", "labeled_result", "category"])
    w.writerows(rows)

# ---- baseline: fit on a prepared split, evaluate, same JSON keys as eval ----
raw = os.path.join(ROOT, "tasks", "namematch", "data", "raw.csv")
if os.path.exists(raw):
    out = os.path.join(tmp, "split")
    r = run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out, "--seed", "42", "--quiet"])
    c.check(r.returncode == 0, "prepare raw.csv", r.stderr[-300:])
    settings = os.path.join(tmp, "baseline.json")
    r = run_tasklm(["baseline", "--task", "namematch", "--train", os.path.join(out, "train.csv"), "--save", settings, "--json"])
    c.check(r.returncode == 0 and os.path.exists(settings), "baseline fits and saves", r.stderr[-300:])
    r = run_tasklm(["baseline", "--task", "namematch", "--data", os.path.join(out, "test.csv"), "--settings", settings, "--json",
                    "--predictions-out", os.path.join(tmp, "bl_pred.csv")])
    c.check(r.returncode == 0, "baseline evaluates", r.stderr[-300:])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    c.check(KEYS <= set(j) and j.get("labels") == LABELS, "baseline JSON has the eval keys", str(sorted(j)))
    c.check(j.get("macro_f1", 0) > 0.6, "baseline beats chance clearly on the held-out split", str(j.get("macro_f1")))
    # its predictions file gives the same metrics through eval --predictions
    r2 = run_tasklm(["eval", "--predictions", os.path.join(tmp, "bl_pred.csv"), "--json"])
    j2 = json.loads(r2.stdout) if r2.returncode == 0 else {}
    c.check(j2.get("confusion") == j.get("confusion") and j2.get("per_category") == j.get("per_category"),
            "baseline predictions file reproduces its report", r2.stderr)
    r = run_tasklm(["baseline", "--data", os.path.join(out, "test.csv"), "--settings", os.path.join(tmp, "none.json")])
    c.check(r.returncode == 1 and "none.json" in r.stderr, "missing settings file is a runtime error naming it")

# ---- usage errors ----
r = run_tasklm(["eval", "-m", MODEL, "--data", data, "--lora", "no-such-adapter.gguf"])
c.check(r.returncode == 1 and "no-such-adapter.gguf" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
        "a missing --lora adapter is a one-line runtime error naming the file", r.stderr)
r = run_tasklm(["eval", "--data", data])
c.check(r.returncode == 2 and "--model" in r.stderr, "missing model is a usage error")
r = run_tasklm(["eval", "-m", MODEL, "--data", data, "--limit", "0"])
c.check(r.returncode == 2, "--limit 0 is a usage error")
r = run_tasklm(["eval", "-m", MODEL, "--task", "nosuchtask", "--data", data])
c.check(r.returncode == 1 and "nosuchtask" in r.stderr, "unknown task names its folder", r.stderr)

# ---- the model ----
pred = os.path.join(tmp, "pred.csv")
r = run_tasklm(["eval", "-m", MODEL, "--task", "namematch", "--data", data, "--json", "--predictions-out", pred, "--threads", "2"])
c.check(r.returncode == 0, "eval with the model exits 0", r.stderr[-400:])
if r.returncode == 0:
    j = json.loads(r.stdout)
    c.check(KEYS <= set(j) and j["n"] == len(rows) and j["labels"] == LABELS, "eval JSON keys, n and labels")
    c.check(sum(map(sum, j["confusion"])) == len(rows), "confusion counts every row")
    c.check(set(j.get("per_category", {})) == {r_[3] for r_ in rows}, "per-category accuracy present")
    with open(pred, newline="", encoding="utf-8") as f:
        preds = list(csv.DictReader(f))
    c.check(len(preds) == len(rows) and [p["elected_name"] for p in preds] == [r_[0] for r_ in rows], "predictions file rows")
    ok = all(abs(sum(float(p["p_" + l]) for l in LABELS) - 1) < 1e-4 for p in preds)
    c.check(ok, "per-label probabilities sum to 1")
    ok = all(p["predicted"] == max(LABELS, key=lambda l: float(p["p_" + l])) for p in preds)
    c.check(ok, "prediction is the most probable label")
    # eval text mode prints the table layout
    r = run_tasklm(["eval", "-m", MODEL, "--data", data, "--limit", "2"])
    c.check(r.returncode == 0 and "Macro F1" in r.stdout and "confusion" in r.stdout and "n = 2" in r.stdout,
            "text report with --limit", r.stdout[-300:])

    # ---- peer: llama.cpp label probabilities on the same prompts ----
    try:
        from llama_cpp import Llama
        import numpy as np
        llm = Llama(model_path=MODEL, n_ctx=256, logits_all=True, verbose=False, n_threads=2)
        # llama.cpp token by token (its single-row kernels): its own spread bounds the loss tolerance
        llm1 = Llama(model_path=MODEL, n_ctx=256, n_batch=1, n_ubatch=1, logits_all=True, verbose=False, n_threads=1)

        def label_logprob(model, prompt, ids):
            model.reset()
            model.eval(prompt + ids)
            logits = np.array(model.scores[: len(prompt) + len(ids)], dtype=np.float64)
            lp = 0.0
            for k, t in enumerate(ids):
                row = logits[len(prompt) - 1 + k]
                m = row.max()
                lp += row[t] - m - math.log(np.exp(row - m).sum())
            return lp

        worst = 0.0
        lp_sum = lp1_sum = 0.0
        argmax_bad = []
        for (a, b, gold, _), p in zip(rows, preds):
            prompt = llm.tokenize(TEMPLATE.format(a=a, b=b).encode(), add_bos=True, special=False)
            scores = []
            for lab in LABELS:
                ids = llm.tokenize((" " + lab).encode(), add_bos=False, special=False)
                scores.append(label_logprob(llm, prompt, ids))
                if lab == gold:
                    lp1_sum -= label_logprob(llm1, prompt, ids)
            m = max(scores)
            probs = [math.exp(s - m) for s in scores]
            probs = [q / sum(probs) for q in probs]
            for l, q in zip(LABELS, probs):
                worst = max(worst, abs(q - float(p["p_" + l])))
            top = sorted(probs, reverse=True)
            if top[0] - top[1] > 0.1 and p["predicted"] != LABELS[probs.index(top[0])]:
                argmax_bad.append((a, b, probs, p["predicted"]))
            lp_sum += -scores[LABELS.index(gold)]
        # quantized kernels round activations differently from llama.cpp's; the
        # forward-pass peer test bounds logits, this bounds the label probabilities
        c.check(worst < 0.08, "label probabilities match llama.cpp within 0.08", f"max diff {worst:.4f}")
        c.check(not argmax_bad, "predicted label equals llama.cpp's where its margin exceeds 0.1", str(argmax_bad))
        # within 0.05, or twice the distance between llama.cpp's own two modes if that is larger
        # (two implementations each within d of the exact loss differ by at most 2d)
        spread = abs(lp_sum - lp1_sum) / len(rows)
        tol = max(0.05, 2 * spread)
        c.check(abs(lp_sum / len(rows) - j["mean_loss"]) < tol,
                f"mean answer loss matches llama.cpp within {tol:.3f} (its batched and token-by-token passes "
                f"differ by {spread:.3f})", f"{lp_sum / len(rows):.4f} vs {j['mean_loss']:.4f}")
    except ImportError as e:
        c.check(False, "llama_cpp importable for the peer check", str(e))

sys.exit(c.finish())
