"""tasklm data prepare: clean, dedupe, split first, oversample train only, folds."""
import collections
import csv
import json
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, ROOT, run_tasklm  # noqa: E402

c = Checker("test_data_prepare")
tmp = tempfile.mkdtemp(prefix="tl_prep_")
LABELS = ["yes", "no", "partial"]


def make_raw(path, n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lab = rng.choices(LABELS, weights=[60, 27, 13])[0]
        rows.append([f"Person {i} Alpha", f"Persn {i} Alfa, Jr", rng.choice([lab, lab.upper(), f" {lab} "]), "cat" + str(i % 3)])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["elected_name", "partner_name", "labeled_result", "category"])
        w.writerows(rows)
        # bad rows, each on its own known line (header is line 1)
        f.write("Solo,,yes,x\r\n")                 # n+2: empty partner_name
        f.write("A B,C D,maybe,x\r\n")             # n+3: bad label
        f.write("Person 0 Alpha,\"Persn 0 Alfa, Jr\",no,x\r\n")  # n+4: duplicate pair (label may conflict)
        f.write("E,F,yes\r\n")                     # n+5: missing column
    return rows


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


raw = os.path.join(tmp, "raw.csv")
rows = make_raw(raw, 400, 1)
out = os.path.join(tmp, "out")
r = run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out, "--split", "0.9", "--seed", "42", "--json"])
c.check(r.returncode == 0, "prepare exits 0", r.stderr[-400:])
summary = json.loads(r.stdout) if r.returncode == 0 else {}
train, test = read(os.path.join(out, "train.csv")), read(os.path.join(out, "test.csv"))
with open(os.path.join(out, "summary.json")) as f:
    c.check(json.load(f) == summary, "summary.json equals --json output")

key = lambda d: (d["elected_name"], d["partner_name"])  # noqa: E731
c.check(not (set(map(key, train)) & set(map(key, test))), "no pair in both train and test")
c.check(len(set(map(key, test))) == len(test), "test has no repeated pair (never oversampled)")
tc = collections.Counter(d["labeled_result"] for d in train)
c.check(len(set(tc.values())) == 1, "train classes balanced", str(tc))
c.check(set(tc) == set(LABELS), "train labels normalised to the task labels", str(tc))
c.check(list(train[0].keys()) == ["elected_name", "partner_name", "labeled_result", "category"], "seed schema plus category kept")

n = len(rows)
lines = {d["line"]: d["reason"] for d in summary.get("dropped", [])}
c.check("empty partner_name" in lines.get(n + 2, ""), "empty name reported with its line", str(lines))
c.check("maybe" in lines.get(n + 3, ""), "bad label reported with its line")
c.check("expected 4 fields, found 3" in lines.get(n + 5, ""), "column count error reported with its line")
c.check(n + 4 in lines and ("duplicate" in lines[n + 4] or "different label" in lines[n + 4]), "duplicate pair reported")
c.check(f":{n + 3}: dropped:" in r.stderr, "drops listed on stderr with line numbers")

# clean counts: stratified test is round(10%) of each clean class
clean = summary.get("clean", {})
te_counts = collections.Counter(d["labeled_result"] for d in test)
ok = all(te_counts[l] == int(clean[l] * 0.1 + 0.5) for l in LABELS)
c.check(ok, "test split is stratified per class", f"{te_counts} vs {clean}")
c.check(summary["files"][0]["before"]["total"] + len(test) == clean["total"], "train before oversampling + test == clean rows")
c.check(summary["input_hash"].startswith("fnv1a64:") and summary["seed"] == 42, "summary records hash and seed")

# deterministic for a seed, different for another
out2 = os.path.join(tmp, "out2")
run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out2, "--seed", "42", "--quiet"])
same = open(os.path.join(out, "train.csv")).read() == open(os.path.join(out2, "train.csv")).read()
c.check(same, "same seed gives the same files")
out3 = os.path.join(tmp, "out3")
run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out3, "--seed", "7", "--quiet"])
c.check(open(os.path.join(out, "test.csv")).read() != open(os.path.join(out3, "test.csv")).read(), "another seed gives another split")

# folds
out4 = os.path.join(tmp, "folds")
r = run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out4, "--folds", "5", "--quiet"])
c.check(r.returncode == 0, "folds run exits 0", r.stderr[-300:])
all_test = []
for k in range(1, 6):
    ftr, fte = read(os.path.join(out4, f"fold-{k}-train.csv")), read(os.path.join(out4, f"fold-{k}-test.csv"))
    all_test += list(map(key, fte))
    c.check(not (set(map(key, ftr)) & set(map(key, fte))), f"fold {k}: train and test disjoint")
    c.check(len(set(collections.Counter(d["labeled_result"] for d in ftr).values())) == 1, f"fold {k}: train balanced")
c.check(len(all_test) == len(set(all_test)) == clean.get("total"), "fold tests partition the clean rows")

# bad usage and errors
r = run_tasklm(["data", "prepare", "--in", raw, "--out-dir", out, "--split", "1.5"])
c.check(r.returncode == 2 and "--split" in r.stderr, "bad --split is a usage error (2)", r.stderr)
r = run_tasklm(["data", "prepare", "--out-dir", out])
c.check(r.returncode == 2 and "--in is required" in r.stderr, "missing --in is a usage error")
r = run_tasklm(["data", "prepare", "--in", os.path.join(tmp, "nope.csv"), "--out-dir", out])
c.check(r.returncode == 1 and "nope.csv" in r.stderr, "missing input file is a runtime error naming the file")
r = run_tasklm(["data", "prepare", "--help"])
c.check(r.returncode == 0 and "--folds" in r.stdout, "--help")

# render: each usable row's prompt, as the model sees it (the namematch template, and a task that also
# spells the names out letter by letter)
r = run_tasklm(["data", "render", "--in", raw, "--limit", "3"])
c.check(r.returncode == 0, "render exits 0", r.stderr[-300:])
lines = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
tmpl = open(os.path.join(ROOT, "tasks", "namematch", "template.txt"), encoding="utf-8").read()
c.check(len(lines) == 3 and [x["line"] for x in lines] == [2, 3, 4], "render --limit 3: three rows, their line numbers")
c.check(lines and lines[0]["prompt"] == tmpl.replace("<elected_name>", rows[0][0]).replace("<partner_name>", rows[0][1])
        and lines[0]["label"] == rows[0][2].strip().lower(), "render: the template with the row's fields, and its label")
r = run_tasklm(["data", "render", "--in", raw])
c.check(r.returncode == 0 and "skipped" in r.stderr and len(r.stdout.splitlines()) == len(rows) + 1,
        "render: every clean row (a duplicate pair too), dropped rows named on stderr", r.stderr[-300:])
tdir = os.path.join(tmp, "letters-task")
os.makedirs(tdir)
with open(os.path.join(ROOT, "tasks", "namematch", "task.json")) as f:
    tj = json.load(f)
tj["fields"][0]["letters"] = "<l1>"
tj["fields"][1] = {"column": "partner_name", "letters": "<l2>"}
with open(os.path.join(tdir, "task.json"), "w") as f:
    json.dump(tj, f)
with open(os.path.join(tdir, "template.txt"), "w") as f:
    f.write("A: <elected_name> = <l1>\nB: <l2>\nAnswer:")
r = run_tasklm(["data", "render", "--in", raw, "--limit", "1", "--task-dir", tdir])
c.check(r.returncode == 0 and json.loads(r.stdout)["prompt"] ==
        "A: Person 0 Alpha = p e r s o n / 0 / a l p h a\nB: p e r s n / 0 / a l f a , / j r\nAnswer:",
        "render: letters placeholders spell the names out", r.stdout + r.stderr[-300:])
r = run_tasklm(["data", "render", "--in", raw, "--limit", "0"])
c.check(r.returncode == 2 and "--limit" in r.stderr, "render: bad --limit is a usage error (2)", r.stderr)
r = run_tasklm(["data", "render"])
c.check(r.returncode == 2 and "--in is required" in r.stderr, "render: missing --in is a usage error")

sys.exit(c.finish())
