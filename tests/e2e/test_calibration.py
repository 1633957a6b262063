"""Label-prior calibration end to end: `tasklm train` fits the bias on its eval
rows and writes it into the adapters (tasklm.label_bias) and metrics.jsonl;
`tasklm merge` carries the adapter's bias into the merged model or sets one
given with --label-bias; `tasklm eval` applies a model's bias (probabilities
proportional to p_raw * exp(bias), predictions their argmax, the same as an
explicit --label-bias), an adapter's bias with --lora, none with
--label-bias none; `tasklm classify` (the serving engine) predicts as eval on
a model that carries a bias, and with --lora as eval --lora; bad specs and
missing adapters are one-line errors."""
import csv
import json
import math
import os
import sys
import tempfile

import gguf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402

LABELS = ["yes", "no", "partial"]


def key_of(path):
    f = gguf.GGUFReader(path).fields.get("tasklm.label_bias")
    return None if f is None else bytes(f.parts[f.data[0]]).decode()


def parse(spec):
    d = dict(kv.split("=") for kv in spec.split(",")) if spec and spec != "none" else {}
    return [float(d.get(l, 0.0)) for l in LABELS]


def read_pred(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def compare(got, want):
    """(same predicted labels, largest probability difference) of two predictions files' rows."""
    same = [a["predicted"] for a in got] == [b["predicted"] for b in want]
    d = max(abs(float(a["p_" + l]) - float(b["p_" + l])) for a, b in zip(got, want) for l in LABELS)
    return same, d


def main():
    c = Checker("test_calibration")
    tmp = tempfile.mkdtemp(prefix="tl-calib-")
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    with open(os.path.join(task_dir, "data", "raw.csv"), newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    by = {l: [r for r in body if r[2] == l] for l in LABELS}
    train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
    with open(train, "w", newline="") as f:  # balanced training rows
        csv.writer(f).writerows([head] + by["yes"][:3] + by["no"][:3] + by["partial"][:3])
    with open(test, "w", newline="") as f:   # natural-looking mix 6:3:1 on other rows
        csv.writer(f).writerows([head] + by["yes"][10:16] + by["no"][10:13] + by["partial"][10:11])

    run = os.path.join(tmp, "run")
    r = run_tasklm(["train", "-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test, "--out", run,
                    "--max-steps", "2", "--batch", "3", "--lora-rank", "4", "--lora-alpha", "8",
                    "--lora-targets", "q,v", "--lr", "5e-3", "--warmup", "0", "--eval-every", "0", "--threads", "2"])
    if not c.check(r.returncode == 0, "train runs", r.stderr[-400:]):
        return c.finish()
    with open(os.path.join(run, "metrics.jsonl")) as f:
        last = [json.loads(x) for x in f if x.strip()][-1]
    cal = last.get("calibration", {})
    ad = os.path.join(run, "adapter.gguf")
    k = key_of(ad)
    c.check(k is not None and k == cal.get("label_bias"), "the adapter carries the bias of its metrics line",
            f"{k!r} vs {cal!r}")
    c.check(0.0 <= cal.get("lambda", -1) <= 1.0 and cal.get("macro_f1", -1) >= last["macro_f1"],
            "calibration: lambda in [0, 1], calibrated macro-F1 at least the raw one", json.dumps(cal))
    # the bias is lambda * log(eval share / train share): shares 6/10 vs 3/9, 3/10 vs 3/9, 1/10 vs 3/9
    lam = cal.get("lambda", 0.0)
    want = [lam * math.log(a / (1 / 3)) for a in (0.6, 0.3, 0.1)]
    c.check(k is not None and all(abs(a - b) < 1e-5 for a, b in zip(parse(k), want)),
            "bias = lambda * log(natural share / training share) per label", f"{k} vs {want}")
    r = run_tasklm(["train", "-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test, "--out",
                    os.path.join(tmp, "run-nocal"), "--max-steps", "1", "--batch", "3", "--lora-rank", "4",
                    "--lora-targets", "q", "--eval-every", "0", "--no-calibrate", "--threads", "2"])
    c.check(r.returncode == 0 and key_of(os.path.join(tmp, "run-nocal", "adapter.gguf")) is None,
            "--no-calibrate: no bias in the adapter", r.stderr[-300:])

    # merge: the adapter's bias by default, an explicit one with --label-bias, none with none
    merged = os.path.join(tmp, "merged.gguf")
    r = run_tasklm(["merge", "-m", MODEL, "--lora", ad, "--out", merged])  # f32, as eval --lora folds it
    c.check(r.returncode == 0 and key_of(merged) == k, "merge carries the adapter's bias", r.stderr)
    spec = "yes=1.5,partial=-0.7"
    biased = os.path.join(tmp, "biased.gguf")
    r = run_tasklm(["merge", "-m", MODEL, "--lora", ad, "--out", biased, "--requantize", "same", "--label-bias", spec])
    c.check(r.returncode == 0 and key_of(biased) == spec, "merge --label-bias sets the key", r.stderr)
    nob = os.path.join(tmp, "nobias.gguf")
    r = run_tasklm(["merge", "-m", MODEL, "--lora", ad, "--out", nob, "--requantize", "same", "--label-bias", "none"])
    c.check(r.returncode == 0 and key_of(nob) is None, "merge --label-bias none drops the key", r.stderr)
    r = run_tasklm(["merge", "-m", MODEL, "--lora", ad, "--out", os.path.join(tmp, "x.gguf"), "--label-bias", "yes"])
    c.check(r.returncode == 2 and "expected label=value" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
            "merge: a malformed --label-bias is a one-line usage error", r.stderr)

    # eval applies the model's bias; probabilities are the raw ones reweighted by exp(bias)
    def ev(model, *extra):
        p = os.path.join(tmp, f"pred-{len(os.listdir(tmp))}.csv")
        r = run_tasklm(["eval", "-m", model, "--task-dir", task_dir, "--data", test, "--predictions-out", p,
                        "--json", "--threads", "2"] + list(extra))
        return r, (read_pred(p) if r.returncode == 0 else []), (json.loads(r.stdout) if r.returncode == 0 else {})
    r1, biased_rows, j1 = ev(biased)
    r0, raw_rows, j0 = ev(biased, "--label-bias", "none")
    if c.check(r1.returncode == 0 and r0.returncode == 0, "eval runs with and without the bias", r1.stderr + r0.stderr):
        b = parse(spec)
        worst = 0.0
        argmax_ok = True
        for a, z in zip(biased_rows, raw_rows):
            w = [float(z["p_" + l]) * math.exp(bb) for l, bb in zip(LABELS, b)]
            s = sum(w)
            worst = max(worst, max(abs(float(a["p_" + l]) - x / s) for l, x in zip(LABELS, w)))
            argmax_ok &= a["predicted"] == LABELS[max(range(3), key=lambda i: w[i])]
        c.check(worst < 2e-6, "biased probabilities = raw * exp(bias), renormalised", f"worst {worst:.2g}")
        c.check(argmax_ok, "predictions are the argmax of the biased probabilities")
        c.check(j1.get("label_bias") == "yes=1.5,no=0,partial=-0.7" and "label_bias" not in j0,
                "eval --json names the bias it applied", f"{j1.get('label_bias')!r} / {j0.get('label_bias')!r}")
        r2, expl_rows, _ = ev(nob, "--label-bias", spec)
        c.check(r2.returncode == 0 and expl_rows == biased_rows,
                "an explicit --label-bias equals the same bias carried by the model", r2.stderr[-200:])
    r3, _, _ = ev(biased, "--label-bias", "maybe=1")
    c.check(r3.returncode != 0 and "'maybe' is not a label of task namematch" in r3.stderr
            and len(r3.stderr.strip().splitlines()) == 1, "eval: an unknown label in --label-bias is a one-line error",
            r3.stderr)
    # --lora: the adapter's bias, as the model merged from it
    r4, lora_rows, j4 = ev(MODEL, "--lora", ad)
    r5, merged_rows, j5 = ev(merged)
    c.check(r4.returncode == 0 and r5.returncode == 0 and j4.get("label_bias") == j5.get("label_bias")
            and [x["predicted"] for x in lora_rows] == [x["predicted"] for x in merged_rows],
            "eval --lora applies the adapter's bias like the merged model", f"{j4.get('label_bias')} {j5.get('label_bias')}")

    # classify (the serving engine) on a model that carries a bias predicts as eval
    out = os.path.join(tmp, "classified.csv")
    r = run_tasklm(["classify", "-m", biased, "--task-dir", task_dir, "--in", test, "--out", out, "--threads", "2"])
    if c.check(r.returncode == 0, "classify runs on the biased model", r.stderr[-300:]):
        same, d = compare(read_pred(out), biased_rows)
        c.check(same and d < 1e-3, "classify applies the model's bias like eval (labels equal, probabilities 1e-3)",
                f"same={same} max diff {d:.2g}")
    # classify --lora: the adapter folded at load, its bias applied, as eval --lora
    out = os.path.join(tmp, "classified-lora.csv")
    r = run_tasklm(["classify", "-m", MODEL, "--lora", ad, "--task-dir", task_dir, "--in", test, "--out", out,
                    "--threads", "2"])
    if c.check(r.returncode == 0, "classify --lora runs", r.stderr[-300:]) and lora_rows:
        same, d = compare(read_pred(out), lora_rows)
        c.check(same and d < 1e-3, "classify --lora predicts as eval --lora (labels equal, probabilities 1e-3)",
                f"same={same} max diff {d:.2g}")
    out = os.path.join(tmp, "classified-raw.csv")
    r = run_tasklm(["classify", "-m", biased, "--label-bias", "none", "--task-dir", task_dir, "--in", test,
                    "--out", out, "--threads", "2"])
    if c.check(r.returncode == 0, "classify --label-bias none runs", r.stderr[-300:]) and raw_rows:
        d = max(abs(float(a["p_" + l]) - float(b_["p_" + l])) for a, b_ in zip(read_pred(out), raw_rows) for l in LABELS)
        c.check(d < 1e-3, "classify --label-bias none scores raw, as eval --label-bias none", f"max diff {d:.2g}")
    r = run_tasklm(["classify", "-m", MODEL, "--lora", os.path.join(tmp, "missing.gguf"), "--task-dir", task_dir,
                    "--in", test, "--out", os.path.join(tmp, "x.csv")])
    c.check(r.returncode == 1 and "missing.gguf" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
            "classify --lora with a missing adapter is a one-line error naming it", r.stderr[-300:])
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
