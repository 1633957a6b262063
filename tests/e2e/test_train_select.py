"""Best-adapter selection and early stopping in `tasklm train` go by the
macro-F1 the adapter is scored with: the calibrated one (after the
label-prior bias fitted at that evaluation), the raw one with
--no-calibrate. The run below (balanced training rows, a 12/5/3 eval mix, an
evaluation after every step) is one where the two figures rank the
evaluations differently, checked first, so a trainer that selected or
stopped on the raw figure fails here:

- metrics.jsonl carries both (macro_f1 raw, macro_f1_calibrated, its
  accuracy / per-class F1 / confusion, selection_f1) and marks "best" exactly
  where selection_f1 reaches a new maximum;
- adapter.gguf is byte-identical to the last adapter of a run cut at the
  best step (constant schedule, so the first k steps do not depend on the
  length of the run) and carries that evaluation's label bias;
- the --json summary reports the selection figure and the raw one;
- --patience stops after that many evaluations without a better calibrated
  macro-F1;
- --no-calibrate selects on the raw figure;
- --eval-delay N evaluates (so selects) only from step N on;
- --resume with the other calibration setting is refused."""
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, run_tasklm, write_short_task  # noqa: E402

LABELS = ["yes", "no", "partial"]


def new_max_flags(values):
    best, out = -1.0, []
    for v in values:
        out.append(v > best)
        best = max(best, v)
    return out


def label_bias(path):
    import gguf
    f = gguf.GGUFReader(path).fields.get("tasklm.label_bias")
    return None if f is None else bytes(f.parts[f.data[0]]).decode()


def read_lines(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(x) for x in f if x.strip()]


def stop_step(values, steps, patience):
    """The step at which early stopping on `values` ends a run (None: it runs to the end)."""
    best, bad = -1.0, 0
    for v, s in zip(values, steps):
        if v > best:
            best, bad = v, 0
        else:
            bad += 1
        if bad >= patience and s != steps[-1]:
            return s
    return None


def main():
    c = Checker("test_train_select")
    tmp = tempfile.mkdtemp(prefix="tl-select-")
    task_dir = write_short_task(tmp)  # short prompts: cheap steps
    with open(os.path.join(ROOT, "tasks", "namematch", "data", "raw.csv"), newline="") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    by = {l: [r for r in body if r[2] == l] for l in LABELS}
    train, ev = os.path.join(tmp, "train.csv"), os.path.join(tmp, "eval.csv")
    with open(train, "w", newline="") as f:  # balanced, as data prepare oversamples
        csv.writer(f).writerows([head] + by["yes"][:4] + by["no"][:4] + by["partial"][:4])
    with open(ev, "w", newline="") as f:     # the natural mix is far from balanced
        csv.writer(f).writerows([head] + by["yes"][20:32] + by["no"][20:25] + by["partial"][20:23])
    common = ["-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", ev, "--threads", "2", "--batch", "4",
              "--eval-every", "1", "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "q,v", "--lr", "1e-2",
              "--schedule", "constant", "--warmup", "0"]

    full = os.path.join(tmp, "full")
    r = run_tasklm(["train"] + common + ["--out", full, "--max-steps", "9", "--json"])
    if not c.check(r.returncode == 0, "a 9-step run with an evaluation per step", r.stderr[-400:]):
        return c.finish()
    L = read_lines(full)
    raw = [x["macro_f1"] for x in L]
    cal = [x.get("macro_f1_calibrated", -1.0) for x in L]
    steps = [x["step"] for x in L]
    c.check(steps == list(range(1, 10)), "one metrics line per step", str(steps))
    c.check(new_max_flags(raw) != new_max_flags(cal),
            "precondition: the raw and the calibrated macro-F1 pick different best evaluations in this run",
            f"raw {raw} calibrated {cal}")
    c.check(all(abs(x["macro_f1_calibrated"] - x["calibration"]["macro_f1"]) < 1e-12
                and x["macro_f1_calibrated"] >= x["macro_f1"] - 1e-12
                and abs(x["selection_f1"] - x["macro_f1_calibrated"]) < 1e-12 for x in L),
            "each line: macro_f1_calibrated = the calibration's figure >= raw macro_f1; selection_f1 is it")
    c.check(all({"accuracy_calibrated", "per_class_f1_calibrated", "confusion_calibrated"} <= set(x)
                and sum(map(sum, x["confusion_calibrated"])) == 20
                and abs(x["accuracy_calibrated"] - sum(x["confusion_calibrated"][i][i] for i in range(3)) / 20) < 1e-12
                for x in L), "each line: the calibrated accuracy, per-class F1 and confusion over the 20 eval rows")
    c.check([x["best"] for x in L] == new_max_flags(cal),
            "\"best\" marks exactly the new maxima of the calibrated macro-F1",
            f"best {[x['best'] for x in L]} calibrated {cal}")
    bi = max(i for i, x in enumerate(L) if x["best"])
    b = L[bi]
    s = json.loads(r.stdout)
    c.check(s["best_step"] == b["step"] and abs(s["best_macro_f1"] - max(cal)) < 1e-6
            and abs(s["best_macro_f1_raw"] - b["macro_f1"]) < 1e-6 and s["selected_on"] == "macro_f1_calibrated"
            and abs(s["last_macro_f1"] - cal[-1]) < 1e-6 and abs(s["last_macro_f1_raw"] - raw[-1]) < 1e-6,
            "--json: best/last macro-F1 are the calibrated figures, *_raw the uncalibrated ones", r.stdout)
    c.check(label_bias(os.path.join(full, "adapter.gguf")) == b["calibration"]["label_bias"],
            "adapter.gguf carries the label bias of the best calibrated evaluation")
    cut = os.path.join(tmp, "cut")
    r = run_tasklm(["train"] + common + ["--out", cut, "--max-steps", str(b["step"])])
    same = r.returncode == 0 and open(os.path.join(cut, "adapter-last.gguf"), "rb").read() == \
        open(os.path.join(full, "adapter.gguf"), "rb").read()
    c.check(same, f"adapter.gguf is the adapter of step {b['step']} (the best calibrated evaluation)", r.stderr[-300:])

    # early stopping counts evaluations without a better calibrated macro-F1
    stops = [(p, stop_step(cal, steps, p), stop_step(raw, steps, p)) for p in (1, 2, 3)]
    diff = [t for t in stops if t[1] != t[2]]
    p, want, _ = diff[0] if diff else stops[1]
    pat = os.path.join(tmp, "patience")
    r = run_tasklm(["train"] + common + ["--out", pat, "--max-steps", "9", "--patience", str(p)])
    got = [x["step"] for x in read_lines(pat)] if r.returncode == 0 else []
    c.check(r.returncode == 0 and got and got[-1] == (want or 9) and
            (want is None or "no better calibrated macro-F1" in r.stderr),
            f"--patience {p} stops at step {want} (the calibrated series; the raw one would stop at "
            f"{stop_step(raw, steps, p)})", f"stopped after {got[-1:]}: {r.stderr[-300:]}")
    c.check(bool(diff), "precondition: some patience stops at another step on the raw series", str(stops))

    # without calibration the raw figure decides
    nocal = os.path.join(tmp, "nocal")
    r = run_tasklm(["train"] + common + ["--out", nocal, "--max-steps", "9", "--no-calibrate", "--json"])
    N = read_lines(nocal) if r.returncode == 0 else []
    c.check(r.returncode == 0 and [x["macro_f1"] for x in N] == raw and [x["best"] for x in N] == new_max_flags(raw)
            and all("macro_f1_calibrated" not in x and x["selection_f1"] == x["macro_f1"] for x in N)
            and json.loads(r.stdout)["selected_on"] == "macro_f1",
            "--no-calibrate: same raw figures, \"best\" marks the new maxima of the raw macro-F1", r.stderr[-300:])

    # --eval-delay: no evaluation (so no selection) before that step
    dl = os.path.join(tmp, "delay")
    r = run_tasklm(["train"] + common + ["--out", dl, "--max-steps", "9", "--eval-delay", "6", "--json"])
    D = read_lines(dl) if r.returncode == 0 else []
    c.check(r.returncode == 0 and [x["step"] for x in D] == [6, 7, 8, 9]
            and [x["macro_f1_calibrated"] for x in D] == cal[5:] and [x["best"] for x in D] == new_max_flags(cal[5:])
            and json.loads(r.stdout)["best_step"] == 5 + 1 + max(range(4), key=lambda i: (cal[5 + i], -i)),
            "--eval-delay 6: evaluations from step 6 on, the best among them", r.stderr[-300:])

    # the selection figure is part of the checkpoint: resuming with the other setting is refused
    part = os.path.join(tmp, "part")
    r = run_tasklm(["train"] + common + ["--out", part, "--max-steps", "4", "--stop-after", "2"])
    r2 = run_tasklm(["train"] + common + ["--out", part, "--max-steps", "4", "--resume", "--no-calibrate"])
    c.check(r.returncode == 0 and r2.returncode == 1 and "--no-calibrate" in r2.stderr
            and len(r2.stderr.strip().splitlines()) == 1,
            "--resume with the other calibration setting exits 1 with one line", r2.stderr[-300:])
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
