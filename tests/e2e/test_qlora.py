"""QLoRA end to end: `tasklm train` over bases made by `tasklm quantize`
(q4_k and iq4_nl; forward and input gradients run on the quantized weights,
only the adapter learns) finishes a few steps with finite losses, writes an adapter GGUF with
the base's tensor shapes whose B matrices (zero at the start) have learned, and the adapter scores through `tasklm eval --lora` on that base."""
import csv
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peer"))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402


def main():
    c = Checker("test_qlora")
    task_dir = os.path.join(ROOT, "tasks", "namematch")
    tmp = tempfile.mkdtemp(prefix="tl-qlora-")
    with open(os.path.join(task_dir, "data", "raw.csv"), newline="") as f:
        rows = list(csv.reader(f))
    train, test = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
    with open(train, "w", newline="") as f:
        csv.writer(f).writerows(rows[:3])  # 2 rows: every step sees the same batch
    with open(test, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + rows[-3:])
    for ty in ("q4_k", "iq4_nl"):
        base = os.path.join(tmp, f"base-{ty}.gguf")
        r = run_tasklm(["quantize", "-m", MODEL, "--out", base, "--type", ty, "--threads", "2"])
        if not c.check(r.returncode == 0, f"tasklm quantize --type {ty}", r.stderr[-300:]):
            continue
        out = os.path.join(tmp, f"run-{ty}")
        r = run_tasklm(["train", "-m", base, "--task-dir", task_dir, "--train", train, "--eval", test, "--out", out,
                        "--max-steps", "3", "--batch", "2", "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets",
                        "q,v,down", "--lr", "1e-3", "--warmup", "0", "--schedule", "constant", "--eval-every", "0",
                        "--threads", "2", "--json"])
        if not c.check(r.returncode == 0, f"train 3 steps on the {ty} base", r.stderr[-300:]):
            continue
        js = json.loads(r.stdout)
        c.check(js["steps"] == 3 and math.isfinite(js["first_loss"]) and math.isfinite(js["last_loss"]),
                f"{ty}: 3 steps with finite losses", r.stdout)
        import gguf
        import numpy as np
        rd = gguf.GGUFReader(os.path.join(out, "adapter-last.gguf"))
        shapes = {t.name: [int(x) for x in t.shape] for t in rd.tensors}
        c.check(len(shapes) == 2 * 3 * 30 and shapes.get("blk.0.ffn_down.weight.lora_a") == [1536, 4]
                and shapes.get("blk.0.attn_v.weight.lora_b") == [4, 192], f"{ty}: adapter shapes fit the base")
        bmax = max(float(np.abs(np.asarray(t.data)).max()) for t in rd.tensors if t.name.endswith("lora_b"))
        c.check(bmax > 0, f"{ty}: the adapter learned (lora_b starts at zero)", str(bmax))
        r = run_tasklm(["eval", "-m", base, "--lora", os.path.join(out, "adapter-last.gguf"), "--task-dir", task_dir,
                        "--data", test, "--threads", "2", "--json"])
        c.check(r.returncode == 0 and json.loads(r.stdout)["n"] == 3,
                f"{ty}: eval --lora on the quantized base scores the rows", r.stderr[-300:])
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
