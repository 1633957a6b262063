"""tasklm serve over real sockets: the three request forms agree with
tasklm classify on the same pairs, probabilities sum to 1, every error case
gives its status and the JSON error shape, keep-alive, metrics, SIGTERM drain."""
import http.client, json, os, signal, socket, subprocess, sys, tempfile, threading, time
from tl_check import Checker, MODEL, ROOT, run_tasklm
import tl_check
# SERVE_BINARY picks the server under test (e.g. an ASan build); tasklm classify stays the reference
TASKLM = os.environ.get("SERVE_BINARY", tl_check.TASKLM)

c = Checker("test_serve")
PAIRS = [["Ravi Kumar", "Rvi Kumar"], ["Ramesh Gupta", "Renuka Gupta"], ["Ahmed Khan", "Chen Li"], ["Du Jiwoo", "Jiwoo Du"]]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(binary, extra=()):
    port = free_port()
    p = subprocess.Popen([binary, "serve", "-m", MODEL, "--port", str(port)] + list(extra), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        try:
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=5); h.request("GET", "/ready")
            if h.getresponse().status == 200: return p, port
        except OSError: pass
        time.sleep(0.1)
    return p, port


def req(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse(); data = r.read()
    return r.status, dict(r.getheaders()), data


# reference: tasklm classify on the same pairs
tmp = tempfile.mkdtemp()
inp = os.path.join(tmp, "in.csv"); out = os.path.join(tmp, "out.csv")
with open(inp, "w") as f:
    f.write("elected_name,partner_name\n" + "".join(f"{a},{b}\n" for a, b in PAIRS))
r = run_tasklm(["classify", "-m", MODEL, "--in", inp, "--out", out, "-q"])
c.check(r.returncode == 0, "classify runs", r.stderr)
ref = {}
import csv
for row in csv.DictReader(open(out)):
    ref[(row["elected_name"], row["partner_name"])] = (row["predicted"], [float(row["p_" + k]) for k in ("yes", "no", "partial")])
c.check(len(ref) == len(PAIRS), "classify wrote every pair")

p, port = start(TASKLM, ["--drain-timeout", "600"])  # a slow (ASan) build on a busy machine drains slowly
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for a, b in PAIRS:
    st, _, d = req(conn, "POST", "/v1/classify", json.dumps({"name1": a, "name2": b}))
    j = json.loads(d)
    ok = st == 200 and j["label"] == ref[(a, b)][0] and abs(sum(j["scores"].values()) - 1) < 1e-9 and \
        all(abs(j["scores"][k] - v) < 1e-5 for k, v in zip(("yes", "no", "partial"), ref[(a, b)][1]))
    c.check(ok, f"single form agrees with classify: {a} / {b}", str(j))
st, _, d = req(conn, "POST", "/v1/classify", json.dumps({"pairs": PAIRS}))
j = json.loads(d)
c.check(st == 200 and [x["label"] for x in j["results"]] == [ref[tuple(x)][0] for x in PAIRS], "pairs form (keep-alive)", str(j))
st, _, d = req(conn, "POST", "/v1/classify", json.dumps({"inputs": {"elected_name": PAIRS[0][0], "partner_name": PAIRS[0][1]}}))
c.check(st == 200 and json.loads(d)["label"] == ref[tuple(PAIRS[0])][0], "inputs form")

errors = [("POST", "/v1/classify", "{bad", 400), ("POST", "/v1/classify", '{"name1":"a"}', 400),
          ("POST", "/v1/classify", '{"name1":"a","name2":5}', 400), ("POST", "/v1/classify", b'{"name1":"a","name2":"\xff"}', 400),
          ("POST", "/v1/classify", json.dumps({"name1": "a" * 300, "name2": "b"}), 400),
          ("POST", "/v1/classify", json.dumps({"name1": "a" * 2000000, "name2": "b"}), 413),
          ("GET", "/nope", None, 404), ("GET", "/v1/classify", None, 405), ("POST", "/health", "", 405)]
for m, path, body, want in errors:
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    st, hd, d = req(h, m, path, body)
    try: e = json.loads(d)["error"]; shape = isinstance(e["message"], str) and isinstance(e["type"], str)
    except Exception: shape = False
    c.check(st == want and shape and (want != 405 or "Allow" in hd), f"{m} {path} -> {want}", f"{st} {d[:120]}")
st, _, d = req(conn, "GET", "/metrics")
c.check(st == 200 and b'tasklm_http_requests_total{code="400"} 5' in d and b"tasklm_prefix_cache_fallbacks_total" in d, "metrics count the errors", d[:200])

results = []
def worker(i):
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    a, b = PAIRS[i % len(PAIRS)]
    st, _, d = req(h, "POST", "/v1/classify", json.dumps({"name1": a, "name2": b}))
    results.append(st == 200 and json.loads(d)["label"] == ref[(a, b)][0])
ts = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
for t in ts: t.start()
# SIGTERM once all 12 are in flight (a slow build, e.g. ASan, takes a while to accept them)
deadline = time.time() + 60
while time.time() < deadline:
    st, _, d = req(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "GET", "/metrics")
    line = [l for l in d.decode().splitlines() if l.startswith("tasklm_requests_in_flight ")]
    if line and int(line[0].split()[1]) >= 13: break  # the 12 plus this /metrics request
    time.sleep(0.02)
p.send_signal(signal.SIGTERM)
for t in ts: t.join()
rc = p.wait(timeout=60)
c.check(len(results) == 12 and all(results), "requests in flight at SIGTERM are all answered correctly", str(results))
c.check(rc == 0, "exit 0 after SIGTERM", p.stderr.read()[-300:])

key = os.path.join(tmp, "key"); open(key, "w").write("s3cret\n")
p, port = start(TASKLM, ["--api-key-file", key])
h = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
body = json.dumps({"name1": "a", "name2": "b"})
c.check(req(h, "POST", "/v1/classify", body)[0] == 401, "no key -> 401")
c.check(req(h, "POST", "/v1/classify", body, {"Authorization": "Bearer wrong"})[0] == 401, "wrong key -> 401")
c.check(req(h, "POST", "/v1/classify", body, {"Authorization": "Bearer s3cret"})[0] == 200, "right key -> 200")
p.send_signal(signal.SIGTERM); c.check(p.wait(timeout=30) == 0, "auth server exits 0")
sys.exit(c.finish())
