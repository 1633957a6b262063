"""End-to-end checks of `tasklm train`: usage errors exit 2, runtime errors
exit 1 with a one-line message naming the file, a tiny run writes
metrics.jsonl lines with every promised key and an adapter GGUF in llama.cpp's
LoRA convention (checked with the independent gguf reader), and --resume
continues from the checkpoint to the same adapter as an uninterrupted run."""
import csv
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402

KEYS = {"step", "epoch", "train_loss", "eval_loss", "macro_f1", "accuracy", "per_class_f1", "confusion", "lr",
        "tokens_per_s"}


def main():
    c = Checker("test_train")
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    tmp = tempfile.mkdtemp(prefix="tl-train-e2e-")
    with open(os.path.join(task_dir, "data", "raw.csv"), newline="") as f:
        rows = list(csv.reader(f))
    train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
    with open(train, "w", newline="") as f:
        csv.writer(f).writerows(rows[:9])
    with open(test, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + rows[-4:])
    base = ["-m", MODEL, "--task-dir", task_dir, "--train", train, "--eval", test, "--threads", "2"]

    r = run_tasklm(["train", "--help"])
    c.check(r.returncode == 0 and "--lora-rank" in r.stdout, "--help exits 0 and lists the options")
    for args, what in [(["--bogus"], "unknown option"), (["--lora-rank", "0"], "rank 0"),
                       (["--lora-targets", "q,zz"], "unknown LoRA target"), (["--batch", "x"], "non-numeric batch"),
                       (["--micro-batch", "8", "--batch", "4"], "micro-batch > batch")]:
        r = run_tasklm(["train"] + base + ["--out", os.path.join(tmp, "x")] + args)
        c.check(r.returncode == 2 and r.stderr.startswith("tasklm train: error:") and r.stderr.count("\n") == 1,
                f"bad usage ({what}) exits 2 with one error line", f"rc={r.returncode} {r.stderr[:200]}")
    r = run_tasklm(["train", "-m", MODEL, "--train", train, "--eval", test])
    c.check(r.returncode == 2 and "--out" in r.stderr, "missing --out exits 2 naming it")
    r = run_tasklm(["train"] + base[:4] + ["--train", os.path.join(tmp, "nope.csv"), "--eval", test, "--out",
                                          os.path.join(tmp, "y")])
    c.check(r.returncode == 1 and "nope.csv" in r.stderr, "missing training CSV exits 1 naming the file",
            f"rc={r.returncode} {r.stderr[:200]}")
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("elected_name,partner_name,labeled_result\nA B,A C,maybe\n")
    r = run_tasklm(["train"] + base[:4] + ["--train", bad, "--eval", test, "--out", os.path.join(tmp, "z")])
    c.check(r.returncode == 1 and "bad.csv:2" in r.stderr and "maybe" in r.stderr,
            "an unknown label exits 1 naming file, line and value", r.stderr[:200])

    common = ["--batch", "2", "--eval-every", "2", "--lora-rank", "4", "--lora-alpha", "8", "--seed", "9",
              "--lora-targets", "q,v,down", "--warmup", "1"]
    full = os.path.join(tmp, "full")
    r = run_tasklm(["train"] + base + ["--out", full, "--max-steps", "4"] + common + ["--json"])
    if not c.check(r.returncode == 0, "a 4-step run succeeds", r.stderr[-400:]):
        return c.finish()
    lines = [json.loads(x) for x in open(os.path.join(full, "metrics.jsonl"))]
    c.check([x["step"] for x in lines] == [2, 4], "metrics.jsonl: one line per evaluation (steps 2 and 4)")
    c.check(all(KEYS <= set(x) for x in lines), "every metrics line has the promised keys",
            str(KEYS - set(lines[0])))
    c.check(all(len(x["confusion"]) == 3 and sum(map(sum, x["confusion"])) == 4 for x in lines),
            "confusion matrix is 3x3 over the 4 eval rows")
    c.check(json.loads(r.stdout)["steps"] == 4, "--json summary reports 4 steps")

    import gguf
    rd = gguf.GGUFReader(os.path.join(full, "adapter-last.gguf"))

    def kv(name):
        f = rd.fields[name]
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else float(v[0])
    c.check(kv("general.type") == "adapter" and kv("adapter.type") == "lora" and kv("general.architecture") == "llama"
            and kv("adapter.lora.alpha") == 8.0, "adapter metadata follows llama.cpp's LoRA convention")
    shapes = {t.name: [int(x) for x in t.shape] for t in rd.tensors}
    c.check(len(shapes) == 2 * 3 * 30 and shapes.get("blk.0.attn_q.weight.lora_a") == [576, 4]
            and shapes.get("blk.0.attn_q.weight.lora_b") == [4, 576]
            and shapes.get("blk.29.ffn_down.weight.lora_a") == [1536, 4]
            and shapes.get("blk.29.attn_v.weight.lora_b") == [4, 192],
            "adapter tensors: q,v,down in every layer with ne [n_in, r] / [r, n_out]", str(list(shapes.items())[:3]))

    part = os.path.join(tmp, "part")
    r1 = run_tasklm(["train"] + base + ["--out", part, "--max-steps", "4", "--stop-after", "2"] + common)
    c.check(r1.returncode == 0 and len(open(os.path.join(part, "metrics.jsonl")).readlines()) == 1,
            "--stop-after 2 stops after the step-2 evaluation", r1.stderr[-300:])
    r2 = run_tasklm(["train"] + base + ["--out", part, "--max-steps", "4", "--resume"] + common)
    c.check(r2.returncode == 0 and "resumed at step 2" in r2.stderr, "--resume continues from step 2", r2.stderr[-300:])
    same = open(os.path.join(part, "adapter-last.gguf"), "rb").read() == \
        open(os.path.join(full, "adapter-last.gguf"), "rb").read()
    c.check(same, "resumed run ends with a byte-identical adapter to the uninterrupted run")
    l2 = [json.loads(x) for x in open(os.path.join(part, "metrics.jsonl"))]
    c.check([x["step"] for x in l2] == [2, 4] and abs(l2[1]["macro_f1"] - lines[1]["macro_f1"]) < 1e-12
            and abs(l2[1]["train_loss"] - lines[1]["train_loss"]) < 1e-9,
            "resumed metrics match the uninterrupted run")
    r = run_tasklm(["train"] + base + ["--out", os.path.join(tmp, "empty"), "--resume"] + common)
    c.check(r.returncode == 1 and "checkpoint.bin" in r.stderr, "--resume without a checkpoint exits 1 naming it")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
