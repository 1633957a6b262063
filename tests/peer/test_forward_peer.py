"""Forward pass vs llama.cpp (llama-cpp-python, same GGUF): next-token argmax
and final-position logits for 105 prompts (English, the name-match template
over 45 name pairs, code, other scripts), all evaluated in ONE tasklm process
(`tasklm score --dump-logits`, token ids from llama.cpp's tokenizer so this
test checks the forward pass alone).

Tolerances. llama.cpp quantizes every activation row to 8 bits per 32-block
before its Q4_1/Q8_0 matmuls and keeps K/V in fp16; we do the same, but a
different fp32 accumulation order flips some round-to-nearest decisions of the
8-bit activations, and on this 30-layer model such flips move final logits by
up to ~1 (llama.cpp itself differs from an fp64 reference over the same
dequantized weights by up to ~0.6 max-abs, and its cosine to that reference
drops to 0.985 on some name-match prompts, where ours stays at 0.999). Hence:
cosine >= 0.98 and max-abs <= 2.0 per prompt, median cosine >= 0.998, median
max-abs <= 1.0, log-softmax of llama.cpp's
top-5 tokens within 0.5, and argmax equal on >= 95% of prompts, with every
disagreement a near tie (llama.cpp's logit for our choice within 0.5 of its max).
Also: AVX2 and scalar kernels agree with the default level, and 1 vs 2 threads
give bit-identical logits."""
import os
import sys
import tempfile

import numpy as np
import llama_cpp

from tl_check import MODEL, Checker, run_tasklm
from model_prompts import all_prompts

c = Checker("peer/test_forward_peer")
prompts = all_prompts()
c.check(len(prompts) >= 100, f"{len(prompts)} prompts")

llm = llama_cpp.Llama(model_path=MODEL, n_ctx=512, logits_all=False, verbose=False, n_threads=2)
n_vocab = llm.n_vocab()
toks = [llm.tokenize(p.encode("utf-8"), add_bos=True, special=True) for p in prompts]


def llama_logits(ids):
    llm.reset()
    llm.eval(ids)
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy()


def ours(ids_list, extra=()):
    with tempfile.TemporaryDirectory() as d:
        ids_path, out_path = os.path.join(d, "ids.txt"), os.path.join(d, "out.bin")
        with open(ids_path, "w") as f:
            for ids in ids_list:
                f.write(" ".join(map(str, ids)) + "\n")
        r = run_tasklm(["score", "-m", MODEL, "--dump-logits", ids_path, "--out", out_path] + list(extra))
        if r.returncode != 0:
            return None, r.stderr
        return np.fromfile(out_path, dtype=np.float32).reshape(len(ids_list), -1), ""


got, msg = ours(toks, ["--threads", "2"])
c.check(got is not None and got.shape == (len(prompts), n_vocab), "dump-logits returns one row per prompt", msg)
if got is None:
    sys.exit(c.finish())

def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())

same, ties_ok, cos_ok, abs_ok, lsm_ok = 0, True, True, True, True
maxabs, coss = [], []
for i, ids in enumerate(toks):
    ref, o = llama_logits(ids), got[i]
    d = float(np.abs(o - ref).max())
    maxabs.append(d)
    cos = float(np.dot(o, ref) / (np.linalg.norm(o) * np.linalg.norm(ref)))
    a, b = int(o.argmax()), int(ref.argmax())
    if a == b:
        same += 1
    elif ref.max() - ref[a] > 0.5:
        ties_ok = False
        print(f"  prompt {i} {prompts[i][:40]!r}: argmax {a} vs llama.cpp {b}, gap {ref.max() - ref[a]:.3f}")
    coss.append(cos)
    if cos < 0.98:
        cos_ok = False
        print(f"  prompt {i}: cosine {cos:.5f}")
    if d > 2.0:
        abs_ok = False
        print(f"  prompt {i}: max abs diff {d:.3f}")
    top5 = np.argsort(ref)[::-1][:5]
    lo, lr = log_softmax(o), log_softmax(ref)
    if np.abs(lo[top5] - lr[top5]).max() > 0.5:
        lsm_ok = False
        print(f"  prompt {i}: top-5 log-softmax diff {np.abs(lo[top5] - lr[top5]).max():.3f}")

n = len(toks)
c.check(same >= 0.95 * n, f"argmax equals llama.cpp's on {same}/{n} prompts (>= 95%)")
c.check(ties_ok, "every argmax disagreement is a near tie (gap <= 0.5 in llama.cpp's logits)")
c.check(cos_ok, "cosine similarity >= 0.98 on every prompt", f"worst {min(coss):.4f}")
c.check(float(np.median(coss)) >= 0.998, f"median cosine similarity {np.median(coss):.5f} >= 0.998")
c.check(abs_ok, "max abs logit difference <= 2.0 on every prompt", f"worst {max(maxabs):.3f}")
c.check(float(np.median(maxabs)) <= 1.0, f"median max abs logit difference {np.median(maxabs):.3f} <= 1.0")
c.check(lsm_ok, "log-softmax of llama.cpp's top-5 tokens within 0.5")

# kernel levels and thread counts on a subset
sub = toks[::15]
base, _ = ours(sub, ["--threads", "2"])
one, msg1 = ours(sub, ["--threads", "1"])
c.check(one is not None and np.array_equal(one, base), "1 and 2 threads give bit-identical logits", msg1)
for level in ("avx2", "scalar"):
    lv, msgl = ours(sub, ["--threads", "2", "--cpu", level])
    ok = lv is not None and all(
        float(np.dot(lv[i], base[i]) / (np.linalg.norm(lv[i]) * np.linalg.norm(base[i]))) > 0.995
        and int(lv[i].argmax()) == int(base[i].argmax()) or
        (lv is not None and base[i].max() - base[i][int(lv[i].argmax())] < 0.5)
        for i in range(len(sub)))
    c.check(ok, f"{level} kernels agree with the default level (cosine > 0.995, same or near-tie argmax)", msgl)

sys.exit(c.finish())
