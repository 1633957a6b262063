"""The serving fast path (prefix cache, batched prefill, label-only logits)
gives the labels of `tasklm eval` on the first 48 rows of the namematch test
split (all three labels occur there), with probabilities within 1e-3: every row is sent to `tasklm serve` by four
concurrent clients (so inputs share batches) and compared with eval's
per-row predictions."""
import csv, http.client, json, os, signal, socket, subprocess, sys, tempfile, threading, time
from tl_check import Checker, TASKLM, MODEL, ROOT, run_tasklm

c = Checker("test_serve_eval")
tmp = tempfile.mkdtemp()
r = run_tasklm(["data", "prepare", "--in", os.path.join(ROOT, "tasks/namematch/data/raw.csv"), "--out-dir", tmp,
                "--split", "0.9", "--seed", "42"])
c.check(r.returncode == 0, "data prepare", r.stderr)
test = os.path.join(tmp, "test.csv"); pred = os.path.join(tmp, "pred.csv")
r = run_tasklm(["eval", "-m", MODEL, "--task", "namematch", "--data", test, "--limit", "48",
                "--predictions-out", pred], timeout=900)
c.check(r.returncode == 0, "eval writes predictions", r.stderr[-300:])
ref = list(csv.DictReader(open(pred)))
c.check(len(ref) == 48, f"eval predicted the first 48 rows ({len(ref)} rows)")
c.check({r["gold"] for r in ref} == {"yes", "no", "partial"}, "the rows cover every label")

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
p = subprocess.Popen([TASKLM, "serve", "-m", MODEL, "--port", str(port), "--max-batch", "8", "--max-wait-ms", "5"],
                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for _ in range(600):
    try:
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=5); h.request("GET", "/ready")
        if h.getresponse().status == 200: break
    except OSError: pass
    time.sleep(0.1)

got = [None] * len(ref)
def client(k):
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for i in range(k, len(ref), 4):
        h.request("POST", "/v1/classify", json.dumps({"name1": ref[i]["elected_name"], "name2": ref[i]["partner_name"]}))
        resp = h.getresponse(); body = resp.read()
        got[i] = (resp.status, json.loads(body))
ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
h = http.client.HTTPConnection("127.0.0.1", port, timeout=30); h.request("GET", "/metrics")
metrics = h.getresponse().read().decode()
p.send_signal(signal.SIGTERM); rc = p.wait(timeout=60)

ok = [g is not None and g[0] == 200 for g in got]
c.check(all(ok), "every row answered 200", str([g for g in got if not g or g[0] != 200][:3]))
lab_diff = [i for i, g in enumerate(got) if g and g[0] == 200 and g[1]["label"] != ref[i]["predicted"]]
c.check(not lab_diff, "labels identical to tasklm eval on every row", str(lab_diff[:5]))
worst = max((abs(g[1]["scores"][k] - float(ref[i]["p_" + k])) for i, g in enumerate(got) if g and g[0] == 200
             for k in ("yes", "no", "partial")), default=1.0)
c.check(worst <= 1e-3, f"probabilities within 1e-3 of eval (worst {worst:.2e})")
batches = [l for l in metrics.splitlines() if l.startswith("tasklm_batch_size_sum") or l.startswith("tasklm_batch_size_count")]
c.check(len(batches) == 2, "metrics report batch sizes", str(batches))
fallbacks = [l for l in metrics.splitlines() if l.startswith("tasklm_prefix_cache_fallbacks_total")]
c.check(fallbacks and fallbacks[0].split()[-1] == "0", "every row used the cached prefix", str(fallbacks))
c.check(rc == 0, "server exits 0 on SIGTERM", p.stderr.read()[-300:])
sys.exit(c.finish())
