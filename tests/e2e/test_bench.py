"""tasklm bench: the JSON report's schema and its arithmetic (percentiles in
order, batch sizes within the concurrency, instances = ceil(target / QPS),
monthly cost = instances x price x 730 h), progress lines on stderr, the text
report, usage and runtime errors."""
import json, math, os, sys, tempfile
from tl_check import Checker, MODEL, ROOT, run_tasklm

c = Checker("test_bench")
os.chdir(ROOT)
r = run_tasklm(["bench", "-m", MODEL, "--concurrency", "1,3", "--duration", "1", "--warmup", "0.3",
                "--target-qps", "50", "--sla-ms", "100000", "--price-per-hour", "0.5", "--json"], timeout=300)
c.check(r.returncode == 0, "bench --json runs", r.stderr[-300:])
c.check("bench: concurrency 1 for" in r.stderr and "bench: level 2/2 concurrency 3:" in r.stderr,
        "progress on stderr also with --json: a line per level (not a terminal)", r.stderr[-400:])
try:
    j = json.loads(r.stdout)
except Exception as e:
    j = {}
    c.check(False, "stdout is one JSON document", str(e))
for k in ("model", "task", "mode", "threads", "cores", "max_batch", "max_wait_ms", "duration_s", "prefix_tokens",
          "levels", "capacity"):
    c.check(k in j, f"key {k}")
levels = j.get("levels", [])
c.check([l["concurrency"] for l in levels] == [1, 3], "one entry per concurrency level")
for l in levels:
    ok = l["requests"] > 0 and l["errors"] == 0 and 0 < l["latency_ms_p50"] <= l["latency_ms_p90"] <= l["latency_ms_p99"]
    c.check(ok, f"conc {l['concurrency']}: requests, no errors, p50 <= p90 <= p99", str(l))
    c.check(1 <= l["mean_batch"] <= l["concurrency"] + 1e-9, f"conc {l['concurrency']}: mean batch within 1..concurrency", str(l))
    c.check(abs(l["qps_per_core"] * j["cores"] - l["qps"]) < 1e-6 * max(1, l["qps"]), "qps per core = qps / cores")
    c.check(l["rss_mib_start"] > 50 and l["rss_mib_end"] > 50, "RSS reported (model mapped)")
cap = j.get("capacity", {})
if cap.get("qps_per_instance"):
    c.check(cap["instances"] == math.ceil(50 / cap["qps_per_instance"]), "instances = ceil(target / qps)", str(cap))
    c.check(abs(cap["monthly_usd"] - cap["instances"] * 0.5 * 730) < 1e-6, "monthly = instances x price x 730", str(cap))
    best = max(levels, key=lambda l: l["qps"])
    c.check(cap["sizing_concurrency"] == best["concurrency"], "sized at the best level meeting the SLA")
else:
    c.check(False, "capacity computed under a loose SLA", str(cap))
r = run_tasklm(["bench", "-m", MODEL, "--concurrency", "2", "--duration", "0.5", "--warmup", "0", "--sla-ms", "0.001"], timeout=300)
c.check(r.returncode == 0 and "QPS/core" in r.stdout and "no level met the SLA" in r.stdout, "text report; impossible SLA says so", r.stdout[-300:])
for args, rc, msg in [(["--concurrency", "0"], 2, "--concurrency"), (["--concurrency", "1,x"], 2, "--concurrency"),
                      (["--duration", "-1"], 2, "--duration"), (["--price-per-hour", "abc"], 2, "--price-per-hour"),
                      (["--bogus"], 2, "unknown option"), (["--data", "/nonexistent.csv"], 1, "nonexistent")]:
    r = run_tasklm(["bench", "-m", MODEL] + args)
    c.check(r.returncode == rc and msg in r.stderr and r.stderr.count("\n") == 1, f"bench {' '.join(args)} -> exit {rc}", r.stderr)
r = run_tasklm(["bench"])
c.check(r.returncode == 2 and "--model" in r.stderr, "no model -> exit 2")
r = run_tasklm(["bench", "--help"])
c.check(r.returncode == 0 and "--price-per-hour" in r.stdout, "--help")
sys.exit(c.finish())
