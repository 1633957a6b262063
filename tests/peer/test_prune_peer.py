"""tasklm prune vs llama.cpp (llama-cpp-python) and gguf-py.
- a file with blocks 3 and 7 removed (--drop): gguf-py sees block_count - 2,
  the same metadata keys, every tensor byte-identical to its renumbered source
  block; llama.cpp loads it, and llama.cpp and tasklm agree on its next token
  (when the top two logits are not a near tie).
- scoring (--scores-only, one calibration row): importance.json has every
  layer, both scores finite, ranks permutations of 1..n_layer.
- errors: K >= n_layer -> exit 2, missing calibration file -> exit 1 naming
  it, bad --drop or missing --calib -> exit 2, each one line on stderr.
(K=0 identity and "removing block j = skipping block j" are exact-logit checks
in tests/unit/test_prune.c.)"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf

from tl_check import MODEL, ROOT, Checker, run_tasklm, write_short_task

c = Checker("peer/test_prune_peer")
tmp = tempfile.mkdtemp(prefix="tl-prune-")
out = os.path.join(tmp, "p.gguf")

r = run_tasklm(["prune", "-m", MODEL, "--drop", "3,7", "--out", out])
c.check(r.returncode == 0, "prune --drop 3,7 exits 0", r.stderr)

src = gguf.GGUFReader(MODEL)
dst = gguf.GGUFReader(out)
arch = bytes(src.fields["general.architecture"].parts[-1]).decode()
L = int(src.fields[f"{arch}.block_count"].parts[-1][0])
c.check(int(dst.fields[f"{arch}.block_count"].parts[-1][0]) == L - 2, "block_count reduced by 2")
c.check(set(src.fields) == set(dst.fields), "same metadata keys")
c.check(len(src.fields["tokenizer.ggml.tokens"].data) == len(dst.fields["tokenizer.ggml.tokens"].data),
        "tokenizer vocabulary kept")
st = {t.name: t for t in src.tensors}
dt = {t.name: t for t in dst.tensors}
mapping = [l for l in range(L) if l not in (3, 7)]
ok = True
for name, t in dt.items():
    if name.startswith("blk."):
        b, rest = name[4:].split(".", 1)
        s = st[f"blk.{mapping[int(b)]}.{rest}"]
    else:
        s = st[name]
    if s.tensor_type != t.tensor_type or bytes(s.data.tobytes()) != bytes(t.data.tobytes()):
        ok = False
        print("  differs:", name)
        break
c.check(ok, "every tensor byte-identical to its renumbered source")
c.check(len(dt) == len(st) - 2 * sum(1 for n in st if n.startswith("blk.0.")), "two blocks' tensors dropped")

# llama.cpp runs in a child process so that a crash there is one failed check
PEER = r"""
import sys, json, numpy as np, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, verbose=False, n_threads=2)
ids = llm.tokenize(sys.argv[2].encode(), add_bos=True, special=True)
llm.reset()
llm.eval(ids)
lg = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
top = np.sort(lg)[-2:]
print(json.dumps({"block_count": llm.metadata.get(sys.argv[3]), "finite": bool(np.isfinite(lg).all()),
                  "argmax": int(np.argmax(lg)), "margin": float(top[1] - top[0])}))
"""
prompt = "The capital of France is"
p = subprocess.run([sys.executable, "-c", PEER, out, prompt, f"{arch}.block_count"], capture_output=True, text=True,
                   timeout=120)
peer = json.loads(p.stdout) if p.returncode == 0 else {}
c.check(peer.get("block_count") == str(L - 2), "llama.cpp loads and runs the pruned file",
        f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
c.check(peer.get("finite", False), "llama.cpp logits on the pruned file are finite")
r = run_tasklm(["generate", out, prompt, "-n", "1", "--json"])
ours = json.loads(r.stdout) if r.returncode == 0 else {}
c.check(r.returncode == 0 and len(ours.get("ids", [])) == 1, "tasklm generates with the pruned model", r.stderr)
if peer and ours.get("ids") and peer["margin"] > 0.05:
    c.check(ours["ids"][0] == peer["argmax"], "tasklm and llama.cpp agree on the pruned model's next token",
            f"{ours['ids']} vs {peer}")

# scoring, one calibration row, through a task with a short template (the cost
# is about n_layer + 2 forward passes of the prompt)
tdir = write_short_task(tmp)
calib = os.path.join(tmp, "calib.csv")
with open(calib, "w") as f:
    f.write("elected_name,partner_name,labeled_result\nJohn Smith,Jon Smith,yes\n")
imp = os.path.join(tmp, "imp.json")
r = run_tasklm(["prune", "-m", MODEL, "--task-dir", tdir, "--calib", calib, "--scores-only", "--importance", imp,
               "--json"])
c.check(r.returncode == 0, "prune --scores-only exits 0", r.stderr)
if r.returncode == 0:
    j = json.load(open(imp))
    layers = j["layers"]
    c.check(len(layers) == L and [x["layer"] for x in layers] == list(range(L)), "importance.json has every layer")
    c.check(all(np.isfinite(x["cosine"]) and np.isfinite(x["loss_increase"]) for x in layers), "scores finite")
    c.check(sorted(x["rank_cosine"] for x in layers) == list(range(1, L + 1)) and
            sorted(x["rank_loss"] for x in layers) == list(range(1, L + 1)), "ranks are permutations")
    c.check(json.loads(r.stdout)["layers"] == layers, "--json prints the same scores")
    c.check(layers[0]["cosine"] > np.median([x["cosine"] for x in layers]), "block 0 changes the hidden state most")

r = run_tasklm(["prune", "-m", MODEL, "--task-dir", tdir, "--calib", calib, "--remove", str(L), "--out", out])
c.check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, "K >= n_layer: exit 2, one line", r.stderr)
r = run_tasklm(["prune", "-m", MODEL, "--calib", os.path.join(tmp, "nope.csv"), "--remove", "1", "--out", out])
c.check(r.returncode == 1 and "nope.csv" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
        "missing calibration file: exit 1 naming it", r.stderr)
r = run_tasklm(["prune", "-m", MODEL, "--drop", "x", "--out", out])
c.check(r.returncode == 2, "bad --drop: exit 2", r.stderr)
r = run_tasklm(["prune", "-m", MODEL, "--remove", "1"])
c.check(r.returncode == 2, "missing --calib: exit 2", r.stderr)
r = run_tasklm(["prune", "--help"])
c.check(r.returncode == 0 and "--remove" in r.stdout, "--help")
sys.exit(c.finish())
