"""tasklm classify: output columns, probabilities, metrics against the gold
column, bad rows reported with their line and skipped, usage errors."""
import csv, json, os, sys, tempfile
from tl_check import Checker, MODEL, ROOT, run_tasklm

c = Checker("test_classify")
tmp = tempfile.mkdtemp()
inp, out = os.path.join(tmp, "in.csv"), os.path.join(tmp, "out.csv")
with open(inp, "w") as f:
    f.write('elected_name,partner_name,labeled_result\nRavi Kumar,Rvi Kumar,yes\nAhmed Khan,Chen Li,no\n'
            ' ,Someone,no\nA,B,maybe\n"unterminated,x,yes\n')
r = run_tasklm(["classify", "-m", MODEL, "--in", inp, "--out", out, "--json"])
c.check(r.returncode == 0, "classify exits 0", r.stderr)
rows = list(csv.DictReader(open(out)))
c.check(list(rows[0].keys()) == ["elected_name", "partner_name", "predicted", "p_yes", "p_no", "p_partial", "gold"], "output columns", str(rows[:1]))
c.check(len(rows) == 2 and all(abs(sum(float(x["p_" + k]) for k in ("yes", "no", "partial")) - 1) < 1e-5 for x in rows), "two rows, probabilities sum to 1")
c.check(all(x["predicted"] == max(("yes", "no", "partial"), key=lambda k: float(x["p_" + k])) for x in rows), "predicted is the argmax")
j = json.loads(r.stdout)
acc = sum(x["predicted"] == x["gold"] for x in rows) / 2
c.check(j["rows"] == 2 and j["skipped"] == 3 and abs(j["metrics"]["accuracy"] - acc) < 1e-9, "JSON summary and accuracy", r.stdout)
c.check(":4: elected_name is empty" in r.stderr and ":5: labeled_result 'maybe'" in r.stderr, "bad rows reported with lines", r.stderr)
r = run_tasklm(["classify", "-m", MODEL, "--in", inp])
c.check(r.returncode == 2 and "--out is required" in r.stderr, "missing --out is a usage error")
r = run_tasklm(["classify", "-m", MODEL, "--in", os.path.join(tmp, "none.csv"), "--out", out])
c.check(r.returncode == 1 and "none.csv" in r.stderr, "unreadable input names the file", r.stderr)
sys.exit(c.finish())
