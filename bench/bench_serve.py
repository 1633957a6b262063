"""Serving benchmark: tasklm serve vs llama.cpp (llama-cpp-python) on the same
GGUF, measured in one run on the same cores.

Ours: `tasklm serve` over HTTP. Single-request latency p50/p99 from
sequential requests on one keep-alive connection; throughput at concurrency
16 with wrk on loopback (POST /v1/classify, inputs cycling through the
task's rows), non-2xx count, and the server's RSS before/after the wrk run
(after a --warmup of a few seconds at the same concurrency; the RSS before
that warm-up is printed too).
Peer: what a user of llama-cpp-python does for this task: tokenize the full
prompt, evaluate it, read the next-token logits, softmax over the labels'
first tokens. Its throughput is requests/s of that loop (the Python API
serves one request at a time on all threads).

Prints the figures and the ratios, the Table 5.4 line (instances of this
machine for 100 QPS under an 800 ms SLA), the date and the load average
before and after (the machine may be shared: figures taken under load are
not the engines' speed), and CPU ms per request of each side (the server
process's CPU time over the wrk run; the peer process's over its loop).
Installs wrk with apt-get if it is missing. Example:
  .venv/bin/python bench/bench_serve.py --model models/final-q8_0.gguf --duration 60
"""
import argparse, csv, http.client, json, math, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

import numpy as np
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def rows(task_dir, n):
    out = []
    with open(os.path.join(task_dir, "data", "raw.csv")) as f:
        for r in csv.DictReader(f):
            out.append((r["elected_name"].strip(), r["partner_name"].strip()))
            if len(out) == n: break
    return out


def pct(v, p):
    v = sorted(v); return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def load():
    return open("/proc/loadavg").read().split()[0]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--tasklm", default=os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm")))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--single", type=int, default=100, help="sequential requests for latency")
    ap.add_argument("--duration", type=int, default=60, help="wrk seconds at concurrency 16")
    ap.add_argument("--warmup", type=int, default=3, help="wrk seconds at concurrency 16 before the measured run")
    ap.add_argument("--peer-seconds", type=float, default=20, help="peer throughput loop seconds")
    ap.add_argument("--amx", action="store_true", help="serve with --amx (Q8_0 on the AMX-INT8 tiles)")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    template = open(os.path.join(task_dir, "template.txt")).read()
    pairs = rows(task_dir, 500)
    load0, date0 = load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    # ---- ours ----
    port = free_port()
    srv = subprocess.Popen([a.tasklm, "serve", "-m", a.model, "--port", str(port), "--threads", str(a.threads)]
                           + (["--amx"] if a.amx else []),
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                h = http.client.HTTPConnection("127.0.0.1", port, timeout=5); h.request("GET", "/ready")
                if h.getresponse().status == 200: break
            except OSError: pass
            time.sleep(0.1)
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        lat = []
        for i in range(a.single + 5):
            a1, b1 = pairs[i % len(pairs)]
            t0 = time.perf_counter()
            h.request("POST", "/v1/classify", json.dumps({"name1": a1, "name2": b1}))
            r = h.getresponse(); r.read()
            if i >= 5: lat.append(time.perf_counter() - t0)
        ours_p50, ours_p99 = 1e3 * pct(lat, 50), 1e3 * pct(lat, 99)
        lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        bodies = ",".join("[[" + json.dumps({"name1": x, "name2": y}) + "]]" for x, y in pairs[:200])
        lua.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                  f"local bodies = {{{bodies}}}\nlocal i = 0\n"
                  "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, '/v1/classify', nil, bodies[i])\nend\n"
                  "done = function(summary, latency, requests)\n"
                  "  io.write(string.format('JSON {\"requests\":%d,\"non2xx\":%d,\"errors\":%d,\"p50_us\":%d,\"p99_us\":%d}\\n',"
                  " summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,"
                  " latency:percentile(50), latency:percentile(99)))\nend\n")
        lua.close()
        # a few seconds at concurrency 16 first: the first batched passes touch the batch buffers (sized for
        # --max-batch-tokens, ~20 MiB) and the connection threads start; growth after that is what a leak shows
        rss_cold = rss_mib(srv.pid)
        subprocess.run(["wrk", "-t2", "-c16", f"-d{a.warmup}s", "--timeout", "10s", "-s", lua.name,
                        f"http://127.0.0.1:{port}"], capture_output=True, text=True)
        rss0 = rss_mib(srv.pid)
        cpu0 = cpu_s(srv.pid)
        w = subprocess.run(["wrk", "-t2", "-c16", f"-d{a.duration}s", "--timeout", "10s", "-s", lua.name,
                            f"http://127.0.0.1:{port}"], capture_output=True, text=True)
        rss1 = rss_mib(srv.pid)
        cpu1 = cpu_s(srv.pid)
        wj = json.loads([l for l in w.stdout.splitlines() if l.startswith("JSON ")][0][5:])
        ours_qps = wj["requests"] / a.duration
    finally:
        srv.send_signal(signal.SIGTERM); srv.wait(timeout=60)

    # ---- peer ----
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=512, logits_all=False, verbose=False, n_threads=a.threads,
                          n_threads_batch=a.threads, n_batch=512)
    n_vocab = llm.n_vocab()
    label_ids = [llm.tokenize((" " + l).encode(), add_bos=False, special=False)[0] for l in ("yes", "no", "partial")]

    def peer_one(x, y):
        ids = llm.tokenize(template.replace("<elected_name>", x).replace("<partner_name>", y).encode(), add_bos=False, special=False)
        llm.reset(); llm.eval(ids)
        lg = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))[label_ids].astype(np.float64)
        p = np.exp(lg - lg.max()); return p / p.sum()

    plat = []
    for i in range(a.single + 5):
        t0 = time.perf_counter(); peer_one(*pairs[i % len(pairs)])
        if i >= 5: plat.append(time.perf_counter() - t0)
    peer_p50, peer_p99 = 1e3 * pct(plat, 50), 1e3 * pct(plat, 99)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < a.peer_seconds:
        peer_one(*pairs[n % len(pairs)]); n += 1
    peer_qps = n / (time.perf_counter() - t0)
    peer_cpu_ms = 1e3 * (time.process_time() - c0) / n
    ours_cpu_ms = 1e3 * (cpu1 - cpu0) / max(1, wj["requests"])

    cores = a.threads
    print(f"model {os.path.basename(a.model)}{' (serve --amx)' if a.amx else ''}, {a.threads} threads, {a.single} single requests, wrk -c16 {a.duration}s, "
          f"{date0}, load average {load0} at start, {load()} at end")
    print(f"{'':34}{'tasklm':>12}{'llama.cpp':>12}{'ratio':>8}")
    print(f"{'single-request p50 ms':34}{ours_p50:12.2f}{peer_p50:12.2f}{peer_p50 / ours_p50:8.2f}  (peer/ours)")
    print(f"{'single-request p99 ms':34}{ours_p99:12.2f}{peer_p99:12.2f}{peer_p99 / ours_p99:8.2f}  (peer/ours)")
    print(f"{'p99 / p50 (ours)':34}{ours_p99 / ours_p50:12.2f}")
    print(f"{'QPS at concurrency 16':34}{ours_qps:12.1f}{peer_qps:12.1f}{ours_qps / peer_qps:8.2f}  (ours/peer)")
    print(f"{'requests/s per core':34}{ours_qps / cores:12.1f}{peer_qps / cores:12.1f}")
    print(f"{'CPU ms per request (throughput run)':34}{ours_cpu_ms:12.1f}{peer_cpu_ms:12.1f}{peer_cpu_ms / ours_cpu_ms:8.2f}  (peer/ours)")
    print(f"wrk: {wj['requests']} requests, non-2xx {wj['non2xx']}, socket errors {wj['errors']}, "
          f"p50 {wj['p50_us'] / 1e3:.1f} ms, p99 {wj['p99_us'] / 1e3:.1f} ms")
    print(f"server RSS {rss0:.1f} -> {rss1:.1f} MiB ({100 * (rss1 - rss0) / rss0:+.2f} %) over the measured run; {rss_cold:.1f} MiB before the warm-up")
    sla_ok = wj["p99_us"] / 1e3 <= 800
    inst = math.ceil(100 / ours_qps) if sla_ok and ours_qps > 0 else float("nan")
    print(f"Table 5.4 line: tasklm ({os.path.basename(a.model)}) | this {cores}-core machine | median latency "
          f"{ours_p50:.1f} ms | 100 QPS under 800 ms: {inst} instance(s) at {ours_qps:.1f} QPS each")


if __name__ == "__main__":
    main()
