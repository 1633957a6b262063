"""End-to-end checks of `tasklm pipeline` on a tiny recipe (80 rows, a 3-step
LoRA run, merge to q8_0, a 2-row eval, a prune branch removing 1 block scored
by cosine on 8 calibration rows with its 2-row eval, export of the unpruned
model via input = merge-q8_0, report): --dry-run lists the stages, bad recipes
(also in a [prune] section) fail with exit 2 and one line naming the key and
line, a run writes the stage folders, manifests (input SHA-256s checked
against hashlib), eval.json with variant/model_path/model_bytes, the pruned
model (29 blocks) and importance.json, a report showing the pruned variant and
the importance figure, run.json and final-q8_0.gguf; the summary names the
removed block, the final model and the report; a rerun skips every stage;
--from re-runs only from that stage; a changed eval setting re-runs that eval
and the report; a run killed during training resumes, skipping the finished
stages, and ends with the same final model bytes. Progress: plain lines from
the train, prune and eval stages when stderr is a pipe, bars with ETA when it
is a terminal (a pty)."""
import hashlib
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, TASKLM, run_tasklm  # noqa: E402

RECIPE = """; tiny recipe for the e2e test
[recipe]
name = tiny
model = {model}
data = {data}
threads = 2
runs_dir = {runs}

[prepare]
rows = 80
val_split = 0.1

[baseline]

[train lora]
rank = 2
targets = q,v
batch = 2
max_steps = 3
eval_every = 0
eval_limit = 2
adapter = last

[merge merge-q8_0]
type = q8_0

[eval q8_0]
variant = q8_0+lora
limit = 2

[prune prune-1]
remove = 1
calib_rows = 8
cosine_only = 1

[eval pruned]
variant = q8_0+lora-pruned1
limit = 2

[export]
input = merge-q8_0

[report]
"""

STAGES = ["01-prepare", "02-baseline", "03-lora", "04-merge-q8_0", "05-q8_0", "06-prune-1", "07-pruned", "08-export",
          "09-report"]


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def run_with_pty_stderr(args):
    """Runs tasklm with stderr on a pseudo-terminal; returns (rc, stderr text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([TASKLM] + args, stdout=subprocess.DEVNULL, stderr=slave, cwd=ROOT)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(), out.decode(errors="replace")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    c = Checker("test_pipeline")
    tmp = tempfile.mkdtemp(prefix="tl-pipe-e2e-")
    runs = os.path.join(tmp, "runs")
    recipe = os.path.join(tmp, "tiny.ini")
    write(recipe, RECIPE.format(model=MODEL, data=os.path.join(ROOT, "tasks/namematch/data/raw.csv"), runs=runs))
    run_dir = os.path.join(runs, "tiny")

    # --help, dry run, usage errors
    r = run_tasklm(["pipeline", "--help"])
    c.check(r.returncode == 0 and "--dry-run" in r.stdout, "--help exits 0 and documents --dry-run")
    r = run_tasklm(["pipeline", recipe, "--dry-run"])
    c.check(r.returncode == 0, "dry run exits 0", r.stderr)
    c.check(all(s in r.stdout for s in STAGES), "dry run lists every stage folder", r.stdout)
    c.check(any("06-prune-1" in ln and " prune " in ln and "remove=1" in ln for ln in r.stdout.splitlines()),
            "dry run shows the prune stage with its kind and settings", r.stdout)
    c.check(not os.path.exists(run_dir), "dry run creates nothing")

    bad_cases = [
        ("unknown key", RECIPE.replace("rank = 2", "rank = 2\nrnak = 4"), "rnak", ":17:"),
        ("bad value", RECIPE.replace("max_steps = 3", "max_steps = three"), "max_steps", ":19:"),
        ("unknown kind", RECIPE.replace("[baseline]", "[baseline2]"), "baseline2", ":13:"),
        ("duplicate stage", RECIPE.replace("[export]", "[export]\n[eval q8_0]"), "q8_0", ":41:"),
        ("duplicate key", RECIPE.replace("rank = 2", "rank = 2\nrank = 3"), "rank", ":17:"),
        ("syntax", RECIPE.replace("[export]", "export"), "expected", ":40:"),
        ("unknown key in [prune]", RECIPE.replace("calib_rows = 8", "calib_rows = 8\nclaib = 4"), "claib", ":34:"),
        ("prune without remove/drop", RECIPE.replace("remove = 1\n", ""), "remove", ":31:"),
        ("bad prune method", RECIPE.replace("cosine_only = 1", "method = magnitude"), "magnitude", ":34:"),
        ("input not an earlier stage", RECIPE.replace("input = merge-q8_0", "input = nosuch"), "nosuch", ":41:"),
        ("key outside section", "model = x\n" + RECIPE, "outside", ":1:"),
    ]
    for what, text, word, line in bad_cases:
        p = os.path.join(tmp, "bad.ini")
        write(p, text.format(model=MODEL, data="d.csv", runs=runs))
        r = run_tasklm(["pipeline", p, "--dry-run"])
        err = r.stderr.strip()
        c.check(r.returncode == 2 and len(err.splitlines()) == 1 and word in err and line in err,
                f"{what}: exit 2 with one line naming '{word}' and line {line}", f"rc={r.returncode} {err!r}")
    # the task folder is read when the recipe is checked, not by the first stage that needs it
    for what, line, word in (("task = nosuch", "task = nosuch", "tasks/nosuch/task.json"),
                             ("task = a/b", "task = a/b", "task_dir"),
                             ("task_dir = missing", "task_dir = " + os.path.join(tmp, "no-task"), "no-task/task.json")):
        p = os.path.join(tmp, "bad.ini")
        write(p, RECIPE.replace("threads = 2", line + "\nthreads = 2").format(model=MODEL, data="d.csv", runs=runs))
        r = run_tasklm(["pipeline", p, "--dry-run"])
        err = r.stderr.strip()
        c.check(r.returncode == 2 and len(err.splitlines()) == 1 and word in err and ":6:" in err,
                f"{what}: exit 2 with one line naming '{word}' and line 6", f"rc={r.returncode} {err!r}")
    # every shipped recipe passes its checks (keys, stages, task folder)
    for name in sorted(os.listdir(os.path.join(ROOT, "recipes"))):
        r = subprocess.run([TASKLM, "pipeline", os.path.join("recipes", name), "--dry-run"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        c.check(r.returncode == 0 and "01-prepare" in r.stdout, f"recipes/{name}: dry run exits 0", r.stderr)
    r = run_tasklm(["pipeline", os.path.join(tmp, "missing.ini")])
    c.check(r.returncode == 2 and "missing.ini" in r.stderr, "missing recipe file: exit 2 naming it", r.stderr)
    r = run_tasklm(["pipeline", recipe, "--from", "nosuch"])
    c.check(r.returncode == 2 and "nosuch" in r.stderr, "--from an unknown stage: exit 2", r.stderr)
    r = run_tasklm(["pipeline", recipe, "--bogus"])
    c.check(r.returncode == 2, "unknown option: exit 2")

    # a stage that fails at run time: exit 1, the summary still ends the run
    failing = os.path.join(tmp, "failing.ini")
    write(failing, open(recipe).read().split("[baseline]")[0].replace("name = tiny", "name = failing") + "[quantize q]\ntype = bogus\n")
    r = run_tasklm(["pipeline", failing])
    c.check(r.returncode == 1 and "02-q" in r.stderr and "== summary: failing" in r.stdout and "FAILED at stage 02-q" in r.stdout
            and "final model: (none: the run stopped before its export stage)" in r.stdout and "report:" in r.stdout,
            "a failing stage: exit 1 naming it, and the summary (no final model, no report) still printed",
            f"rc={r.returncode} {r.stdout[-600:]} {r.stderr[-400:]}")

    # full run
    t0 = time.time()
    r = run_tasklm(["pipeline", recipe])
    c.check(r.returncode == 0, "tiny recipe runs", r.stderr[-2000:])
    print(f"# first run {time.time() - t0:.1f} s")
    final = os.path.join(run_dir, "final-q8_0.gguf")
    c.check(os.path.isfile(final), "final model at runs/NAME/final-q8_0.gguf")
    c.check("final model: " + final in r.stdout, "summary names the final model", r.stdout[-800:])
    c.check("macro-F1" in r.stdout and "q8_0+lora" in r.stdout, "summary shows macro-F1 per variant")
    c.check("train: step 3/3" in r.stderr and "prune: pass 8/8" in r.stderr and "eval: row 2/2" in r.stderr,
            "train, prune and eval stages print plain progress lines when stderr is not a terminal", r.stderr[-1500:])
    for s in STAGES:
        m = json.load(open(os.path.join(run_dir, s, "manifest.json")))
        ok = m["status"] == "done" and m["stage"] == s[3:] and m["version"] and m["seconds"] >= 0
        ok = ok and all(k in m for k in ("kind", "settings", "started", "finished", "outputs"))
        ok = ok and all(sha(p) == h for p, h in m["inputs"].items())
        ok = ok and all(os.path.isfile(p) for p in m["outputs"])
        c.check(ok, f"{s}: manifest done, input hashes match hashlib, outputs exist", json.dumps(m)[:600])
    for f in ("01-prepare/summary.json", "02-baseline/baseline.json", "03-lora/metrics.jsonl", "03-lora/adapter-last.gguf"):
        c.check(os.path.isfile(os.path.join(run_dir, f)), f"{f} kept")

    # the prune branch: on the merged q8_0 model, scored on the train split
    merged = os.path.join(run_dir, "04-merge-q8_0", "model.gguf")
    pruned = os.path.join(run_dir, "06-prune-1", "model.gguf")
    m = json.load(open(os.path.join(run_dir, "06-prune-1", "manifest.json")))
    c.check(merged in m["inputs"] and os.path.join(run_dir, "01-prepare", "val", "train.csv") in m["inputs"],
            "prune stage: inputs are the previous stage's model and the train split", m["inputs"])
    imp = json.load(open(os.path.join(run_dir, "06-prune-1", "importance.json")))
    c.check(imp.get("n_layer") == 30 and imp.get("n_calib") == 8 and len(imp.get("removed", [])) == 1 and
            imp.get("loss_scored") is False and len(imp.get("layers", [])) == 30,
            "importance.json: 30 blocks scored by cosine on 8 rows, 1 removed", {k: imp.get(k) for k in ("n_layer", "n_calib", "removed")})
    r2 = run_tasklm(["info", "--json", pruned])
    c.check(r2.returncode == 0 and json.loads(r2.stdout).get("block_count") == 29, "pruned model has 29 blocks", r2.stdout[:300])
    evp = json.load(open(os.path.join(run_dir, "07-pruned", "eval.json")))
    ev8 = json.load(open(os.path.join(run_dir, "05-q8_0", "eval.json")))
    c.check(evp.get("variant") == "q8_0+lora-pruned1" and evp.get("model_path") == pruned and
            0 < evp.get("model_bytes", 0) < os.path.getsize(merged) and evp.get("n_layer") == 29 and ev8.get("n_layer") == 30,
            "eval after prune scores the pruned (smaller, 29-block) model", evp.get("model_path"))
    c.check(sha(final) == sha(merged), "export with input = merge-q8_0 publishes the unpruned model")
    removed = imp.get("removed", [-1])[0]
    c.check(f"29 of 30 blocks kept, removed {removed}" in r.stdout, "summary names the removed block", r.stdout[-1500:])
    report_page = os.path.join(run_dir, "report", "index.html")
    c.check("report:      " + report_page in r.stdout, "summary names the report", r.stdout[-500:])
    md = open(os.path.join(run_dir, "report", "report.md")).read() if os.path.isfile(report_page) else ""
    t51 = md.split("## Table 5.1")[-1].split("## Table 5.4")[0]
    c.check(any(ln.startswith("| q8_0+lora-pruned1 |") and ln.rstrip().endswith("| 29 |") for ln in t51.splitlines()),
            "report Table 5.1: the pruned variant with its size and 29 blocks", t51[:800])
    c.check("q8_0+lora-pruned1" in md and f"removed blocks: {removed};" in md,
            "report shows the pruned variant and the prune stage's importance scores", md[:300])
    if shutil.which("gnuplot"):
        c.check(os.path.isfile(os.path.join(run_dir, "report", "importance.svg")) and "importance.svg" in md,
                "report draws the per-layer importance figure")
    ev = json.load(open(os.path.join(run_dir, "05-q8_0", "eval.json")))
    c.check(ev.get("variant") == "q8_0+lora" and ev.get("n") == 2 and "macro_f1" in ev, "eval.json: eval --json + variant", ev)
    c.check(ev.get("model_bytes") == os.path.getsize(ev.get("model_path", "")), "eval.json: model_path and model_bytes")
    rj = json.load(open(os.path.join(run_dir, "run.json")))
    c.check([s["dir"] for s in rj["stages"]] == STAGES and rj["final_model"] == final and rj["name"] == "tiny",
            "run.json lists the stages and the final model", rj)
    final_hash = sha(final)

    # rerun: everything skipped
    r = run_tasklm(["pipeline", recipe])
    c.check(r.returncode == 0 and r.stdout.count("up to date, skipped") == len(STAGES), "rerun skips every stage", r.stdout)
    # --from export: the export and the stage after it run
    r = run_tasklm(["pipeline", recipe, "--from", "export"])
    c.check(r.returncode == 0 and r.stdout.count("up to date, skipped") == len(STAGES) - 2 and "[8/9] 08-export (export)" in r.stdout
            and "[9/9] 09-report (report)" in r.stdout, "--from export re-runs only the export and the report", r.stdout)
    # on a terminal the stages draw bars with an ETA
    rc, err = run_with_pty_stderr(["pipeline", recipe, "--from", "prune-1"])
    c.check(rc == 0 and "\r\x1b[K" in err and "prune [" in err and "eval [" in err and "ETA" in err
            and "prune: pass" not in err, "stderr on a terminal: prune and eval draw progress bars with ETA", repr(err[-600:]))
    # a changed setting re-runs that stage and, if outputs change, the ones after
    write(recipe, open(recipe).read().replace("\nlimit = 2", "\nlimit = 3", 1))  # the first eval only
    r = run_tasklm(["pipeline", recipe])
    c.check(r.returncode == 0 and "05-q8_0 (eval)" in r.stdout and "09-report (report)" in r.stdout and
            r.stdout.count("up to date, skipped") == len(STAGES) - 2,
            "a changed eval setting re-runs that eval and the report (its result changed)", r.stdout)
    ev = json.load(open(os.path.join(run_dir, "05-q8_0", "eval.json")))
    c.check(ev.get("n") == 3, "the re-run eval used the new limit")

    # killed during training, then resumed
    p = subprocess.Popen([TASKLM, "pipeline", recipe, "--from", "lora"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True, cwd=ROOT)
    seen = ""
    for line in p.stdout:
        seen += line
        if line.startswith("train: step 1/"):
            break
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    m = json.load(open(os.path.join(run_dir, "03-lora", "manifest.json")))
    c.check(m["status"] == "running", "killed train stage left a 'running' manifest", seen[-500:])
    r = run_tasklm(["pipeline", recipe])
    c.check(r.returncode == 0, "resumed run succeeds", r.stderr[-1500:])
    c.check("01-prepare: up to date" in r.stdout and "02-baseline: up to date" in r.stdout and "03-lora (train)" in r.stdout,
            "resume skips the finished stages and re-runs the killed one", r.stdout)
    c.check(sha(final) == final_hash, "resumed run ends with the same final model bytes")
    c.finish()


if __name__ == "__main__":
    main()
