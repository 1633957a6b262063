"""End-to-end tests of `tasklm data generate` (the name-matching corpus):
determinism, label mix, Indian share, category coverage, data quality, the
committed corpora against a fresh run of the documented commands, and CLI errors."""
import csv
import io
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peer"))
from tl_check import ROOT, Checker, run_tasklm  # noqa: E402

TASK = os.path.join(ROOT, "tasks", "namematch")
c = Checker("test_namegen")
tmp = tempfile.mkdtemp(prefix="tl_namegen_")

# Every category the generator knows (src/task/namegen.c builders; LABELS.md).
CATEGORIES = {
    "yes": ["case_space", "honorific", "typo_sub", "typo_del", "typo_ins", "typo_transpose", "translit",
            "initial_given", "initial_middle", "drop_middle", "reorder", "concat", "nickname", "name_variant",
            "native_script", "combo"],
    "partial": ["same_surname_diff_given", "same_surname_similar_given", "same_given_diff_surname",
                "typo_diff_given", "given_only", "extra_surname", "diff_middle"],
    "no": ["unrelated", "same_region", "similar_letters", "typo_unrelated", "shared_middle"],
}
HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "prof", "shri", "sri", "shree", "smt", "kumari", "km",
              "janab", "sardar", "sardarni", "chief"}


def gen(out, rows, seed, mix="0.60,0.27,0.13", extra=()):
    return run_tasklm(["data", "generate", "--task-dir", TASK, "--rows", str(rows), "--seed", str(seed),
                       "--mix", mix, "--out", out] + list(extra))


def read_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def rows_of(p):
    with open(p, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def tokens(name):
    """Lower-case tokens without punctuation and without a leading honorific."""
    t = [x.strip(".,").lower() for x in name.split()]
    t = [x for x in t if x]
    return t[1:] if len(t) > 1 and t[0] in HONORIFICS else t


a, b, d = (os.path.join(tmp, n) for n in ("a.csv", "b.csv", "d.csv"))
r1, r2, r3 = gen(a, 3000, 7), gen(b, 3000, 7), gen(d, 3000, 8)
c.check(r1.returncode == 0 and r2.returncode == 0 and r3.returncode == 0, "generate exits 0",
        r1.stderr + r3.stderr)
if r1.returncode == 0 and r2.returncode == 0 and r3.returncode == 0:
    A, B, D = read_bytes(a), read_bytes(b), read_bytes(d)
    c.check(A == B, "same seed -> identical bytes")
    c.check(A != D, "different seed -> different corpus")
    c.check(b"\r" not in A and A.endswith(b"\n"), "LF line endings")
    A.decode("utf-8")
    c.check(not os.path.exists(a + ".tmp"), "no temporary file left behind")

    rows = rows_of(a)
    c.check(len(rows) == 3000, "row count", str(len(rows)))
    c.check(list(rows[0].keys()) == ["elected_name", "partner_name", "labeled_result", "category", "region"],
            "header", str(list(rows[0].keys())))
    n = len(rows)
    for lab, share in (("yes", 0.60), ("no", 0.27), ("partial", 0.13)):
        got = sum(r["labeled_result"] == lab for r in rows) / n
        c.check(abs(got - share) <= 0.01, f"label share {lab} within 1% of {share}", f"{got:.4f}")
    indian = sum(r["region"].startswith("in_") for r in rows) / n
    c.check(indian >= 0.50, "Indian names are at least half the pairs", f"{indian:.3f}")
    regions = {r["region"] for r in rows}
    for reg in ("in_north", "in_south", "in_east", "in_west", "in_muslim", "in_sikh", "in_christian",
                "arabic", "western", "african", "east_asian", "se_asian"):
        c.check(reg in regions, f"region {reg} present")
    cats = {r["category"] for r in rows}
    for lab, names in CATEGORIES.items():
        for nm in names:
            c.check(f"{lab}:{nm}" in cats, f"category {lab}:{nm} present")
    c.check(all(r["category"].split(":")[0] == r["labeled_result"] for r in rows), "category prefix = label")
    c.check(cats <= {f"{lab}:{nm}" for lab, v in CATEGORIES.items() for nm in v}, "no unknown category",
            str(sorted(cats)))
    c.check(all(r["elected_name"] != r["partner_name"] for r in rows), "no byte-identical pair")
    c.check(all(r["elected_name"].strip() and r["partner_name"].strip() for r in rows), "no empty name")
    c.check(all(len(r[k].encode()) <= 128 for r in rows for k in ("elected_name", "partner_name")),
            "names at most 128 bytes")
    keys = [(r["elected_name"], r["partner_name"]) for r in rows]
    c.check(len(set(keys)) == len(keys), "no duplicate pair")
    c.check(any("," in r["elected_name"] or "," in r["partner_name"] for r in rows) and
            b'"' in A, "names with commas are quoted (RFC 4180)")

    def cat(name):
        return [r for r in rows if r["category"] == name]

    # spot checks of what each category means, from the strings themselves
    ok = True
    for r in cat("yes:typo_transpose"):
        ta, tb = tokens(r["elected_name"]), tokens(r["partner_name"])
        diffs = [(x, y) for x, y in zip(ta, tb) if x != y]
        ok &= len(ta) == len(tb) and len(diffs) == 1 and sorted(diffs[0][0]) == sorted(diffs[0][1])
    c.check(ok, "typo_transpose: one token differs by a permutation of its letters")
    ok = True
    for r in cat("yes:initial_given"):
        ta, tb = tokens(r["elected_name"]), tokens(r["partner_name"])
        ok &= any(len(t) == 1 for t in ta + tb)
    c.check(ok, "initial_given: one side has a one-letter initial")
    ok = all(re.search(r"[\u0900-\u097f]", r["elected_name"] + r["partner_name"]) for r in cat("yes:native_script"))
    c.check(ok, "native_script: one side is in Devanagari")
    ok = True
    for r in cat("yes:honorific"):
        ok &= tokens(r["elected_name"]) == tokens(r["partner_name"]) and \
            r["elected_name"].lower() != r["partner_name"].lower()
    c.check(ok, "honorific: same tokens once honorifics are removed")
    ok = True
    for r in cat("partial:same_surname_diff_given"):
        if r["region"] == "east_asian":  # may be written surname first
            continue
        ta, tb = tokens(r["elected_name"]), tokens(r["partner_name"])
        ok &= ta[-1] == tb[-1] and ta[0] != tb[0]
    c.check(ok, "same_surname_diff_given: last tokens equal, first differ")
    ok = True
    for r in cat("no:unrelated") + cat("no:same_region"):
        ta, tb = tokens(r["elected_name"]), tokens(r["partner_name"])
        ok &= ta[0] != tb[0] and ta[-1] != tb[-1] and ta[0] != tb[-1] and ta[-1] != tb[0]
    c.check(ok, "unrelated/same_region: neither first nor last token shared")

# the committed corpora equal a fresh run of the commands in docs/DATA.md
doc = open(os.path.join(ROOT, "docs", "DATA.md"), encoding="utf-8").read()
for fname in ("raw.csv", "raw-large.csv"):
    m = re.search(r"tasklm data generate ([^\n`]*--out tasks/namematch/data/" + re.escape(fname) + r")", doc)
    c.check(m is not None, f"docs/DATA.md documents the command for {fname}")
    if not m:
        continue
    args = m.group(1).split()
    fresh = os.path.join(tmp, fname)
    args[args.index("--out") + 1] = fresh
    if "--task-dir" in args:
        args[args.index("--task-dir") + 1] = TASK
    r = run_tasklm(["data", "generate"] + args)
    c.check(r.returncode == 0, f"documented command for {fname} runs", r.stderr)
    if r.returncode == 0:
        same = read_bytes(fresh) == read_bytes(os.path.join(TASK, "data", fname))
        c.check(same, f"committed {fname} equals a fresh generation")

# stdout output and --json
r = run_tasklm(["data", "generate", "--task-dir", TASK, "--rows", "50", "--seed", "3", "--out", "-"])
c.check(r.returncode == 0 and r.stdout.count("\n") == 51, "--out - writes 50 rows + header to stdout")
r = gen(os.path.join(tmp, "j.csv"), 100, 3, extra=["--json"])
c.check(r.returncode == 0 and '"yes":60' in r.stdout and '"no":27' in r.stdout and '"partial":13' in r.stdout,
        "--json reports the class counts", r.stdout)

# usage errors: exit 2 with one line on stderr
for args, what in ((["--rows", "abc", "--out", "x.csv"], "--rows"),
                   (["--rows", "0", "--out", "x.csv"], "--rows"),
                   (["--mix", "0.5,0.5", "--out", "x.csv"], "--mix"),
                   (["--mix", "0.5,0.3,0.3", "--out", "x.csv"], "--mix"),
                   (["--seed", "-1", "--out", "x.csv"], "--seed"),
                   (["--rows", "10"], "--out"),
                   (["--bogus"], "unknown option"),
                   (["--rows"], "needs a value")):
    r = run_tasklm(["data", "generate"] + args)
    c.check(r.returncode == 2 and what in r.stderr and r.stderr.count("\n") == 1,
            f"bad usage {args} -> exit 2 naming {what}", f"rc={r.returncode} {r.stderr!r}")
r = run_tasklm(["data", "generate", "--help"])
c.check(r.returncode == 0 and "--task-dir" in r.stdout and "--mix" in r.stdout, "--help")

# unreadable or malformed lists: exit 1, message names the file
empty = os.path.join(tmp, "emptytask")
os.makedirs(empty)
r = run_tasklm(["data", "generate", "--task-dir", empty, "--out", os.path.join(tmp, "e.csv")])
c.check(r.returncode == 1 and "lists/names.tsv" in r.stderr, "missing lists -> exit 1 naming the file", r.stderr)
bad = os.path.join(tmp, "badtask")
shutil.copytree(os.path.join(TASK, "lists"), os.path.join(bad, "lists"))
with open(os.path.join(bad, "lists", "names.tsv"), "a", encoding="utf-8") as f:
    f.write("given\tin_north\tx\tRavi\tcurated\n")
r = run_tasklm(["data", "generate", "--task-dir", bad, "--out", os.path.join(tmp, "e.csv")])
c.check(r.returncode == 1 and "names.tsv:" in r.stderr and "gender" in r.stderr,
        "malformed row -> exit 1 naming file:row and field", r.stderr)
c.check(not os.path.exists(os.path.join(tmp, "e.csv")), "failed run leaves no output file")

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(c.finish())
