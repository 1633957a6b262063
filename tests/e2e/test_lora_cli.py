"""End-to-end checks of LoRA use after training: `tasklm eval --lora` scores
exactly as the model written by `tasklm merge` (byte-identical predictions
CSV), an adapter whose shapes do not fit the base is refused naming the
tensor; `tasklm cv` over the folds of `tasklm data prepare --folds` prints a
per-fold table whose numbers are each fold's best-marked line of its own
metrics.jsonl (calibrated figures), writes cv.json with mean and sample sd, rejects --folds 1
and missing fold files, and with --resume skips finished folds, continues an
interrupted one from its checkpoint to the uninterrupted result and refuses
other settings; with --val-split (and --swap) it selects on rows carved from
each fold's training part (disjoint from the fold's test rows in either
order) and reports tasklm eval --lora of the fold's adapter on its test rows;
the progress display draws a bar on a terminal (pty)
and plain lines with an ETA otherwise."""
import csv
import json
import os
import pty
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import TASKLM, Checker, MODEL, ROOT, run_tasklm  # noqa: E402


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


def main():
    c = Checker("test_lora_cli")
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    tmp = tempfile.mkdtemp(prefix="tl-lora-cli-")
    with open(os.path.join(task_dir, "data", "raw.csv"), newline="") as f:
        rows = list(csv.reader(f))
    train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
    with open(train, "w", newline="") as f:
        csv.writer(f).writerows(rows[:9])
    with open(test, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + rows[-4:])
    tiny = ["--threads", "2", "--batch", "2", "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "q,v",
            "--lr", "5e-3", "--warmup", "0", "--eval-every", "0"]

    # a training run with stderr on a terminal: the bar is drawn
    run = os.path.join(tmp, "run")
    rc, err = run_with_pty_stderr(["train", "-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test,
                                   "--out", run, "--max-steps", "2"] + tiny)
    if not c.check(rc == 0, "train with a terminal on stderr succeeds", err[-300:]):
        return c.finish()
    c.check("\r" in err and "train [" in err and "2/2" in err and "ETA" in err and "#" in err,
            "TTY mode draws a progress bar in place (\\r, [###...], 2/2, ETA)", repr(err[-300:]))
    c.check("eval: step 2" in err, "evaluation lines still appear above the bar")
    adapter = os.path.join(run, "adapter-last.gguf")

    # eval --lora == eval of the merged model
    merged = os.path.join(tmp, "merged.gguf")
    r = run_tasklm(["merge", "-m", MODEL, "--lora", adapter, "--out", merged])
    c.check(r.returncode == 0, "tasklm merge of the adapter succeeds", r.stderr[-300:])
    p_lora, p_merged = os.path.join(tmp, "p_lora.csv"), os.path.join(tmp, "p_merged.csv")
    ev = ["--task-dir", task_dir, "--data", test, "--threads", "2", "--json"]
    r1 = run_tasklm(["eval", "-m", MODEL, "--lora", adapter, "--predictions-out", p_lora] + ev)
    r2 = run_tasklm(["eval", "-m", merged, "--predictions-out", p_merged] + ev)
    c.check(r1.returncode == 0 and r2.returncode == 0, "eval --lora and eval of the merged model succeed",
            r1.stderr[-300:] + r2.stderr[-300:])
    if r1.returncode == 0 and r2.returncode == 0:
        c.check(open(p_lora).read() == open(p_merged).read(),
                "eval --lora predictions (labels and probabilities) equal the merged model's byte for byte")
        c.check(json.loads(r1.stdout)["macro_f1"] == json.loads(r2.stdout)["macro_f1"], "same macro-F1")
    r3 = run_tasklm(["eval", "-m", MODEL, "--predictions-out", os.path.join(tmp, "p_base.csv")] + ev)
    c.check(r3.returncode == 0, "eval of the base model succeeds")

    # an adapter made for another base: shapes do not fit
    import gguf
    bad = os.path.join(tmp, "other-base.gguf")
    w = gguf.GGUFWriter(bad, "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    for layer in range(30):
        w.add_tensor(f"blk.{layer}.attn_q.weight.lora_a", np.zeros((4, 64), dtype=np.float32))
        w.add_tensor(f"blk.{layer}.attn_q.weight.lora_b", np.zeros((64, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = run_tasklm(["eval", "-m", MODEL, "--lora", bad] + ev)
    c.check(r.returncode == 1 and "blk.0.attn_q.weight.lora_a" in r.stderr and r.stderr.count("\n") == 1,
            "an adapter for another base is refused naming the mismatched tensor", r.stderr[:300])
    r = run_tasklm(["eval", "-m", MODEL, "--lora", os.path.join(tmp, "none.gguf")] + ev)
    c.check(r.returncode == 1 and "none.gguf" in r.stderr, "a missing adapter file exits 1 naming it")
    r = run_tasklm(["eval", "--predictions", p_lora, "--lora", adapter, "--task-dir", task_dir])
    c.check(r.returncode == 2, "--lora with --predictions is a usage error")

    # cv over prepared folds
    raw = os.path.join(tmp, "raw.csv")
    with open(raw, "w", newline="") as f:
        csv.writer(f).writerows(rows[:41])
    data = os.path.join(tmp, "data")
    r = run_tasklm(["data", "prepare", "--in", raw, "--out-dir", data, "--folds", "2", "--task-dir", task_dir])
    c.check(r.returncode == 0, "data prepare --folds 2", r.stderr[-300:])
    cvout = os.path.join(tmp, "cv")
    cv = ["cv", "-m", MODEL, "--task-dir", task_dir, "--data-dir", data, "--out", cvout, "--max-steps", "1",
          "--train-limit", "2", "--eval-limit", "3"] + tiny
    r = run_tasklm(cv + ["--folds", "2"])
    if c.check(r.returncode == 0, "cv --folds 2 succeeds", r.stderr[-400:]):
        lines = r.stdout.strip().split("\n")
        hdr = lines[0].split()
        c.check(len(lines) == 4 and hdr[:3] == ["fold", "accuracy", "macro_f1"]
                and hdr[-3:] == ["eval_loss", "raw_f1", "step"] and len(hdr) == 3 + 3 + 3
                and lines[3].startswith("mean +- sd"),
                "table: header, one row per fold, mean +- sd", r.stdout)
        cvj = json.load(open(os.path.join(cvout, "cv.json")))
        c.check(cvj["k"] == 2 and len(cvj["folds"]) == 2, "cv.json lists 2 folds")
        ok = True
        for fold in cvj["folds"]:
            m = [json.loads(x) for x in open(os.path.join(cvout, f"fold-{fold['fold']}", "metrics.jsonl"))]
            # the line adapter.gguf was kept at, with the figures it scores with (calibrated)
            best = [x for x in m if x["best"]][-1]
            ok &= abs(best["macro_f1_calibrated"] - fold["macro_f1"]) < 1e-9
            ok &= abs(best["accuracy_calibrated"] - fold["accuracy"]) < 1e-9
            ok &= abs(best["macro_f1"] - fold["macro_f1_raw"]) < 1e-9
            ok &= abs(best["eval_loss"] - fold["eval_loss"]) < 1e-9 and fold["best_step"] == best["step"]
            ok &= all(abs(best["per_class_f1_calibrated"][k] - v) < 1e-9 for k, v in fold["per_class_f1"].items())
            ok &= os.path.exists(os.path.join(cvout, f"fold-{fold['fold']}", "adapter.gguf"))
        c.check(ok, "each fold's numbers are the calibrated figures of the best-marked line of its metrics.jsonl; "
                "adapters written")
        f1s = [f["macro_f1"] for f in cvj["folds"]]
        c.check(abs(cvj["mean"]["macro_f1"] - statistics.mean(f1s)) < 1e-9
                and abs(cvj["sd"]["macro_f1"] - statistics.stdev(f1s)) < 1e-9, "mean and sample sd of macro-F1")
        row1 = lines[1].split()
        c.check(row1[0] == "1" and abs(float(row1[2]) - cvj["folds"][0]["macro_f1"]) < 1e-4,
                "the table's fold-1 macro-F1 matches cv.json")
        c.check("cv fold 1/2: step 1/1" in r.stderr and " eta " in r.stderr,
                "non-TTY progress: plain lines with step counter and eta", r.stderr[-300:])
        # --resume: finished folds are not trained again and the table is the same
        r2 = run_tasklm(cv + ["--folds", "2", "--resume"])
        c.check(r2.returncode == 0 and r2.stderr.count("finished before, not trained again") == 2
                and r2.stdout == r.stdout, "cv --resume after a finished run: no fold retrained, same table",
                r2.stderr[-300:])
        r3 = run_tasklm(cv[:-len(tiny)] + [x if x != "5e-3" else "4e-3" for x in tiny] + ["--folds", "2", "--resume"])
        c.check(r3.returncode == 1 and "written with other settings" in r3.stderr
                and len(r3.stderr.strip().splitlines()) == 1, "cv --resume with other settings is refused",
                r3.stderr[-300:])
    # an interrupted fold continues from its checkpoint to the uninterrupted result
    cv2out = os.path.join(tmp, "cv2")
    cv2 = ["cv", "-m", MODEL, "--task-dir", task_dir, "--data-dir", data, "--out", cv2out, "--max-steps", "2",
           "--eval-every", "1", "--train-limit", "4", "--eval-limit", "3"] + tiny[:-2] + ["--folds", "2"]
    full = run_tasklm(cv2)
    if c.check(full.returncode == 0, "cv with 2 steps per fold", full.stderr[-300:]):
        want = json.load(open(os.path.join(cv2out, "cv.json")))
        f2 = os.path.join(cv2out, "fold-2")
        os.remove(os.path.join(f2, "cv-done"))
        cut = run_tasklm(["train", "-m", MODEL, "--task-dir", task_dir, "--train", os.path.join(data, "fold-2-train.csv"),
                          "--eval", os.path.join(data, "fold-2-test.csv"), "--out", f2, "--max-steps", "2",
                          "--eval-every", "1", "--train-limit", "4", "--eval-limit", "3", "--stop-after", "1"] + tiny[:-2])
        c.check(cut.returncode == 0, "fold 2 interrupted after step 1 (train --stop-after 1)", cut.stderr[-300:])
        res = run_tasklm(cv2 + ["--resume"])
        got = json.load(open(os.path.join(cv2out, "cv.json"))) if res.returncode == 0 else {}
        c.check(res.returncode == 0 and "fold 1/2: finished before" in res.stderr and "resumed at step 1" in res.stderr
                and got.get("folds") == want["folds"] and res.stdout == full.stdout,
                "cv --resume: fold 1 kept, fold 2 continues from its checkpoint to the uninterrupted numbers",
                res.stderr[-400:])
    # --val-split: selection on rows carved from each fold's training part, the fold's test rows scored once
    cv3out = os.path.join(tmp, "cv3")
    cv3 = ["cv", "-m", MODEL, "--task-dir", task_dir, "--data-dir", data, "--out", cv3out, "--max-steps", "1",
           "--train-limit", "2", "--folds", "2", "--val-split", "0.25", "--swap"] + tiny
    r = run_tasklm(cv3)
    if c.check(r.returncode == 0, "cv --val-split 0.25 --swap succeeds", r.stderr[-400:]):
        hdr = r.stdout.strip().split("\n")[0].split()
        c.check(hdr[-3:] == ["test_loss", "val_f1", "step"], "the table names the held-out loss and val_f1", r.stdout)
        cvj = json.load(open(os.path.join(cv3out, "cv.json")))
        c.check(cvj.get("val_split") == 0.25 and cvj.get("swap") is True, "cv.json records val_split and swap")
        for fold in cvj["folds"]:
            k = fold["fold"]
            fd = os.path.join(cv3out, f"fold-{k}")
            key = lambda row: tuple(sorted(row[:2]))  # noqa: E731
            with open(os.path.join(data, f"fold-{k}-test.csv"), newline="") as f:
                test_pairs = {key(x) for x in list(csv.reader(f))[1:]}
            with open(os.path.join(fd, "data", "test.csv"), newline="") as f:
                val_rows = list(csv.reader(f))[1:]
            with open(os.path.join(fd, "data", "train.csv"), newline="") as f:
                tr_rows = list(csv.reader(f))[1:]
            tr_pairs = {tuple(x[:2]) for x in tr_rows}
            c.check(val_rows and not ({key(x) for x in val_rows} & test_pairs)
                    and not ({key(x) for x in tr_rows} & test_pairs)
                    and not ({key(x) for x in val_rows} & {key(x) for x in tr_rows}),
                    f"fold {k}: validation, training and test rows are disjoint (either order)")
            c.check(all((b, a) in tr_pairs for a, b in tr_pairs), f"fold {k}: every training pair also reversed")
            m = [json.loads(x) for x in open(os.path.join(fd, "metrics.jsonl"))]
            best = [x for x in m if x["best"]][-1]
            c.check(abs(best["macro_f1_calibrated"] - fold["macro_f1_raw"]) < 1e-9 and best["n_eval"] == len(val_rows),
                    f"fold {k}: val_f1 is the selection figure on the validation rows")
            ev = run_tasklm(["eval", "-m", MODEL, "--lora", os.path.join(fd, "adapter.gguf"), "--task-dir", task_dir,
                             "--data", os.path.join(data, f"fold-{k}-test.csv"), "--threads", "2", "--json"])
            e = json.loads(ev.stdout) if ev.returncode == 0 else {}
            c.check(ev.returncode == 0 and abs(e["macro_f1"] - fold["macro_f1"]) < 1e-9
                    and abs(e["accuracy"] - fold["accuracy"]) < 1e-9 and abs(e["mean_loss"] - fold["eval_loss"]) < 1e-9
                    and all(abs(e["per_class"][lab]["f1"] - v) < 1e-9 for lab, v in fold["per_class_f1"].items()),
                    f"fold {k}: the figures are tasklm eval --lora of the fold's adapter on its test rows",
                    str(e)[:300] + str(fold))
    r = run_tasklm(cv3[:-len(tiny)] + ["--val-split", "1.5"])
    c.check(r.returncode == 2 and "--val-split" in r.stderr, "--val-split outside (0, 1) is a usage error")
    r = run_tasklm([x for x in cv3 if x not in ("--val-split", "0.25")])
    c.check(r.returncode == 2 and "--swap" in r.stderr, "--swap without --val-split is a usage error", r.stderr[:200])
    r = run_tasklm(cv + ["--folds", "1"])
    c.check(r.returncode == 2 and "--folds" in r.stderr, "--folds 1 is a usage error")
    r = run_tasklm(cv + ["--folds", "3"])
    c.check(r.returncode == 1 and "fold-3-train.csv" in r.stderr, "missing fold files exit 1 naming the file",
            r.stderr[:300])
    r = run_tasklm(["cv", "--help"])
    c.check(r.returncode == 0 and "--folds" in r.stdout and "--lora-rank" in r.stdout, "cv --help")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
