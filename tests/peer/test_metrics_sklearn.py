"""Metrics (tasklm eval --predictions) against scikit-learn on random label vectors."""
import csv
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from tl_check import Checker, run_tasklm  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support  # noqa: E402

c = Checker("test_metrics_sklearn")
LABELS = ["yes", "no", "partial"]
tmp = tempfile.mkdtemp(prefix="tl_metrics_")
rng = random.Random(12345)
bad = []
N_CASES = 300
for case in range(N_CASES):
    n = rng.choice([1, 2, 3, 5, 10, 50, 200, 1000])
    # skewed and degenerate distributions: a class may be missing from gold, pred or both
    wg = [rng.random() for _ in LABELS]
    wp = [rng.random() for _ in LABELS]
    if case % 5 == 0:
        wg[rng.randrange(3)] = 0
    if case % 7 == 0:
        wp[rng.randrange(3)] = 0
    if sum(wg) == 0:
        wg[0] = 1
    if sum(wp) == 0:
        wp[1] = 1
    gold = rng.choices(LABELS, weights=wg, k=n)
    pred = [g if rng.random() < 0.5 else rng.choices(LABELS, weights=wp)[0] for g in gold]
    path = os.path.join(tmp, f"p{case}.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gold", "predicted"])
        # mixed case and spaces: eval normalises labels like data prepare does
        w.writerows([[g.upper() if i % 3 == 0 else g, f" {p} "] for i, (g, p) in enumerate(zip(gold, pred))])
    r = run_tasklm(["eval", "--predictions", path, "--json"])
    if r.returncode != 0:
        bad.append((case, "rc", r.stderr))
        continue
    got = json.loads(r.stdout)
    exp_macro = f1_score(gold, pred, labels=LABELS, average="macro", zero_division=0)
    p, rc_, f1, sup = precision_recall_fscore_support(gold, pred, labels=LABELS, zero_division=0)
    cm = confusion_matrix(gold, pred, labels=LABELS).tolist()
    errs = []
    if abs(got["macro_f1"] - exp_macro) > 1e-9:
        errs.append(f"macro_f1 {got['macro_f1']} vs {exp_macro}")
    if abs(got["accuracy"] - accuracy_score(gold, pred)) > 1e-12:
        errs.append("accuracy")
    for i, lab in enumerate(LABELS):
        pc = got["per_class"][lab]
        for key, val in (("precision", p[i]), ("recall", rc_[i]), ("f1", f1[i]), ("support", sup[i])):
            if abs(pc[key] - float(val)) > 1e-9:
                errs.append(f"{lab}.{key} {pc[key]} vs {val}")
    if got["confusion"] != cm:
        errs.append(f"confusion {got['confusion']} vs {cm}")
    if got["n"] != n or got["labels"] != LABELS:
        errs.append("n/labels")
    if errs:
        bad.append((case, errs))
c.check(not bad, f"{N_CASES} random label vectors match sklearn (macro-F1, accuracy, P/R/F1/support, confusion)", str(bad[:3]))

# a bad label in the predictions file is an error naming the row
path = os.path.join(tmp, "bad.csv")
with open(path, "w") as f:
    f.write("gold,predicted\nyes,no\nyes,maybe\n")
r = run_tasklm(["eval", "--predictions", path, "--json"])
c.check(r.returncode == 1 and "bad.csv:3" in r.stderr and "maybe" in r.stderr, "unknown label names file and line", r.stderr)
sys.exit(c.finish())
