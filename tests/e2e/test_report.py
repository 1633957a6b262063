"""tasklm report on a synthetic run folder (fixture JSON written here, shapes of
the real stage outputs): tables carry the fixture's numbers (accuracy per
variant, CV folds, latency/QPS, instances and monthly cost at the price given),
missing stages render as "not run", a malformed file is a one-line error naming
it, and headless Chromium loads index.html with every image rendered and every
link target present."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, run_tasklm  # noqa: E402

c = Checker("test_report")
tmp = tempfile.mkdtemp(prefix="tl_report_")
run = os.path.join(tmp, "run")
LABELS = ["yes", "no", "partial"]


def write(rel, obj, raw=None):
    p = os.path.join(run, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(raw if raw is not None else json.dumps(obj))


def manifest(stage, kind, seconds):
    return {"stage": stage, "kind": kind, "inputs": [], "settings": {}, "version": "test", "status": "done",
            "started": "2026-12-01T10:00:00Z", "finished": "2026-12-01T10:01:00Z", "seconds": seconds, "outputs": []}


def evalj(variant, f1, acc, per, conf, size):
    return {"macro_f1": f1, "accuracy": acc, "n": sum(map(sum, conf)), "mean_loss": 0.5, "labels": LABELS,
            "per_class": {l: {"precision": p, "recall": p, "f1": p, "support": sum(conf[i])} for i, (l, p) in
                          enumerate(zip(LABELS, per))},
            "confusion": conf, "variant": variant, "model_path": f"/m/{variant}.gguf", "model_bytes": size}


def bench(model, levels):
    return {"model": model, "task": "namematch", "mode": "engine", "threads": 2, "cores": 2, "levels": [
        {"concurrency": cc, "requests": 100, "errors": 0, "qps": q, "qps_per_core": q / 2, "latency_ms_mean": p50,
         "latency_ms_p50": p50, "latency_ms_p90": p99, "latency_ms_p99": p99, "mean_batch": 1, "rss_mib_start": 90,
         "rss_mib_end": rss} for cc, q, p50, p99, rss in levels]}


write("run.json", {"recipe": "recipes/test.ini", "name": "fixture-run", "final_model": "x.gguf",
                   "stages": [{"dir": "01-prepare", "kind": "prepare", "status": "done", "seconds": 1.5}]})
write("01-prepare/manifest.json", manifest("prepare", "prepare", 1.5))
write("01-prepare/summary.json", {"rows_read": 1336, "train": 1100, "test": 134})
write("02-baseline/manifest.json", manifest("baseline", "baseline", 2))
write("02-baseline/baseline.json", evalj("baseline", 0.7011, 0.7523, [0.8, 0.7, 0.6], [[40, 3, 2], [5, 41, 1], [9, 4, 29]], 0))
write("03-eval-zs/manifest.json", manifest("eval-zs", "eval", 30))
write("03-eval-zs/eval.json", evalj("zero-shot", 0.3217, 0.4104, [0.5, 0.4, 0.1], [[30, 10, 5], [20, 25, 2], [30, 12, 0]],
                                    93945856))
write("04-train/manifest.json", manifest("train", "train", 300))
with open(os.path.join(run, "04-train/metrics.jsonl"), "w") as f:
    for s in range(0, 101, 20):
        f.write(json.dumps({"step": s, "epoch": s / 100, "train_loss": 2.0 - s / 100, "eval_loss": 2.1 - s / 120,
                            "macro_f1": 0.3 + s / 250, "accuracy": 0.4 + s / 300}) + "\n")
write("05-eval-q8/manifest.json", manifest("eval-q8", "eval", 20))
write("05-eval-q8/eval.json", evalj("q8_0+recovery", 0.8421, 0.8655, [0.9, 0.88, 0.74], [[42, 1, 2], [2, 44, 1], [6, 3, 33]],
                                    152000000))
write("06-bench-q8/manifest.json", manifest("bench-q8", "bench", 60))
write("06-bench-q8/bench.json", bench("/m/q8_0+recovery.gguf", [(1, 20.0, 50, 60, 180), (4, 55.5, 70, 120, 190),
                                                                 (16, 80.0, 300, 900, 200)]))
write("07-bench-zs/manifest.json", manifest("bench-zs", "bench", 60))
write("07-bench-zs/bench.json", bench("/m/zero-shot.gguf", [(1, 3.0, 900, 950, 150)]))
write("08-prune/manifest.json", manifest("prune", "prune", 80))
write("08-prune/importance.json", {"n_layer": 4, "method": "cosine", "removed": [2], "base_loss": 1.0, "layers": [
    {"layer": i, "cosine": [0.9, 0.2, 0.01, 0.3][i], "loss_increase": [5, 1, 0.01, 2][i], "rank_cosine": [4, 2, 1, 3][i],
     "rank_loss": [4, 2, 1, 3][i], "rank": [4, 2, 1, 3][i]} for i in range(4)]})
# no cv stage, no q4_k variants: "not run" rows
# A folder left by an earlier version of the recipe (not in run.json) is not part of the run.
write("05-eval-old/manifest.json", manifest("eval-old", "eval", 20))
write("05-eval-old/eval.json", evalj("stale-variant", 0.1, 0.1, [0.1, 0.1, 0.1], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], 1))
STAGE_DIRS = ["01-prepare", "02-baseline", "03-eval-zs", "04-train", "05-eval-q8", "06-bench-q8", "07-bench-zs", "08-prune"]
write("run.json", {"recipe": "recipes/test.ini", "name": "fixture-run", "final_model": "x.gguf",
                   "stages": [{"dir": d, "kind": d.split("-")[1], "status": "done", "seconds": 1.5} for d in STAGE_DIRS]})

r = run_tasklm(["report", run, "--price-per-hour", "0.5"], timeout=60)
c.check(r.returncode == 0, "report exits 0", r.stderr)
rep = os.path.join(run, "report")
md = open(os.path.join(rep, "report.md")).read() if r.returncode == 0 else ""
html = open(os.path.join(rep, "index.html")).read() if r.returncode == 0 else ""


def md_row(first):
    for line in md.splitlines():
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        if cells and cells[0] == first:
            return cells
    return None


row = md_row("q8_0+recovery")
c.check(row is not None and row[1] == "0.8421" and row[2] == "0.8655" and row[3:6] == ["0.9000", "0.8800", "0.7400"],
        "accuracy table: macro-F1, accuracy, per-class F1 of a variant", str(row))
c.check(row is not None and "0.820" in row[-1], "seed figure beside ours", str(row))
c.check((md_row("baseline (classical)") or ["", ""])[1] == "0.7011", "classical baseline beside the model variants")
c.check((md_row("zero-shot") or ["", ""])[1] == "0.3217", "zero-shot beside the fine-tuned variants")
nr = md_row("q4_k+recovery")
c.check(nr is not None and nr[1] == "not run", "missing variant is a 'not run' row", str(nr))
c.check("Cross-validation: not run." in md, "missing CV stage reported as not run")
c.check("stale-variant" not in md and "05-eval-old" not in md, "a stage folder not listed in run.json is left out")
# Table 5.1: best level within the 800 ms p99 SLA is concurrency 4 (55.5 QPS)
serving = [l for l in md.split("## Table 5.1")[1].split("## Table 5.4")[0].splitlines() if l.startswith("| q8_0+recovery")]
cells = [x.strip() for x in serving[0].strip("|").split("|")] if serving else []
c.check(cells[1:6] == [f"{152000000 / 1048576:.1f}", "70.0", "120.0", "55.50", "190"], "Table 5.1 row", str(cells))
cost = [l for l in md.split("## Table 5.4")[1].splitlines() if l.startswith("| q8_0+recovery")]
cells = [x.strip() for x in cost[0].strip("|").split("|")] if cost else []
inst = math.ceil(100 / 55.5)
c.check(cells[3:7] == ["55.50", str(inst), "0.500", f"{inst * 0.5 * 730:.2f}"], "Table 5.4: instances and monthly $",
        str(cells))
zs = [l for l in md.split("## Table 5.4")[1].splitlines() if l.startswith("| zero-shot")]
c.check(zs and "infeasible (SLA)" in zs[0], "variant missing the SLA is infeasible", str(zs))
c.check(md_row("2") is not None and "0.010000" in md_row("2")[1], "importance table row")
c.check("removed blocks: 2" in md, "removed blocks listed")
for fig in ("training.svg", "importance.svg", "throughput.svg", "cost.svg"):
    c.check(os.path.getsize(os.path.join(rep, fig)) > 500 if os.path.exists(os.path.join(rep, fig)) else False,
            f"figure {fig} drawn")
c.check(html.count("<table") >= 8 and "confusion-" in html, "HTML tables incl. confusion matrices")

# every link and image target exists
targets = re.findall(r'(?:href|src)="([^"]+)"', html)
c.check(targets and all(os.path.exists(os.path.join(rep, t)) for t in targets), "every link target exists",
        str([t for t in targets if not os.path.exists(os.path.join(rep, t))]))
c.check(all(not t.startswith(("http:", "https:", "//")) for t in targets), "no external resources")

# headless Chromium: the page loads and every image renders
chrome = shutil.which("chromium") or shutil.which("chromium-browser")
if c.check(chrome is not None, "chromium is installed"):
    p = subprocess.run([chrome, "--headless", "--disable-gpu", "--no-sandbox", "--allow-file-access-from-files",
                        f"--user-data-dir={tmp}/chrome", "--virtual-time-budget=5000", "--dump-dom",
                        "file://" + os.path.join(rep, "index.html")], capture_output=True, text=True, timeout=50)
    m = re.search(r'data-images="(\d+)" data-broken-images="(\d+)"', p.stdout)
    c.check(m is not None and int(m.group(1)) == 4 and m.group(2) == "0", "chromium: 4 images, none broken",
            (m.group(0) if m else p.stdout[:200] + p.stderr[-300:]))
    c.check("q8_0+recovery" in p.stdout, "chromium: the page's tables are in the DOM")

# malformed JSON -> one line naming the file
write("06-bench-q8/bench.json", None, raw='{"levels": [1, 2')
r = run_tasklm(["report", run], timeout=60)
c.check(r.returncode == 1 and "06-bench-q8/bench.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
        "malformed JSON: exit 1, one line naming the file", r.stderr)
r = run_tasklm(["report", os.path.join(tmp, "nope")])
c.check(r.returncode == 1 and "nope" in r.stderr, "missing run folder: exit 1", r.stderr)
r = run_tasklm(["report"])
c.check(r.returncode == 2, "no RUN_DIR: exit 2")
r = run_tasklm(["report", run, "--price-per-hour", "-1"])
c.check(r.returncode == 2, "bad price: exit 2")
r = run_tasklm(["report", "--help"])
c.check(r.returncode == 0 and "--price-per-hour" in r.stdout, "--help")
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(c.finish())
