"""tasklm merge vs numpy and llama.cpp (llama-cpp-python) on adapters built here
with gguf-py in llama.cpp's LoRA convention (lora_a ne [n_in, r], lora_b
ne [r, n_out], F32, scale = alpha / r).
- F32 merge: every targeted tensor equals numpy's W + scale * B @ A, W read
  with gguf-py's own dequantizer (1e-5 relative); untouched tensors are byte
  identical; metadata (tokenizer included) kept.
- llama.cpp loading base + adapter and llama.cpp loading our merged file give
  the same next-token argmax on 20 prompts and logits within 0.05 (RMS under 10%
  of the adapter's own effect). This runs on an F32 copy of the base (made
  with tasklm quantize --type f32) so both paths use fp32 matmuls; over a
  quantized base llama.cpp's adapter path sees Q8 activations and the merged
  F32 weights do not, a difference as large as the adapter's effect.
- --requantize same --adapted-type q8_0: the adapted weights are q8_0 within its rounding of the F32 merge,
  every other tensor keeps its base type;
- --requantize same: the base tensor types are kept and the values are the F32
  merge within that type's rounding.
- errors: wrong general.type, wrong architecture, bad shape, missing partner,
  unknown base tensor: exit 1 with one line naming the key or tensor; usage 2."""
import os
import sys
import tempfile

import numpy as np
import gguf
import llama_cpp

from tl_check import MODEL, Checker, run_tasklm

c = Checker("peer/test_merge_peer")
tmp = tempfile.mkdtemp(prefix="tl-merge-")
RANK, ALPHA = 4, 8.0
SCALE = ALPHA / RANK
TARGETS = ("attn_q", "attn_v", "ffn_down")

base_reader = gguf.GGUFReader(MODEL)
base_t = {t.name: t for t in base_reader.tensors}
arch = bytes(base_reader.fields["general.architecture"].parts[-1]).decode()
n_layer = int(base_reader.fields[f"{arch}.block_count"].parts[-1][0])


def deq(t):
    """(n_out, n_in) float64 array of a 2-D tensor via gguf-py."""
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(
        int(t.shape[1]), int(t.shape[0]))


def write_adapter(path, pairs, general_type="adapter", arch_name=None, alpha=ALPHA):
    w = gguf.GGUFWriter(path, arch_name or arch)
    w.add_string("general.type", general_type)
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", alpha)
    for name, arr in pairs:
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


rng = np.random.default_rng(7)
pairs, expect = [], {}
for layer in range(0, n_layer, 3):
    for stem in TARGETS:
        name = f"blk.{layer}.{stem}.weight"
        t = base_t[name]
        n_in, n_out = int(t.shape[0]), int(t.shape[1])
        a = (rng.standard_normal((RANK, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal((n_out, RANK)) * 0.05).astype(np.float32)
        pairs += [(name + ".lora_a", a), (name + ".lora_b", b)]
        expect[name] = (a, b)
adapter = os.path.join(tmp, "adapter.gguf")
write_adapter(adapter, pairs)

# ---- (a) F32 merge equals numpy ----
merged = os.path.join(tmp, "merged-f32.gguf")
p = run_tasklm(["merge", "-m", MODEL, "--lora", adapter, "--out", merged, "--json", "-t", "2"])
c.check(p.returncode == 0, "merge exits 0", p.stderr.strip())
if p.returncode == 0:
    import json
    rep = json.loads(p.stdout)
    c.check(rep["n_merged"] == len(expect) and rep["rank"] == RANK and abs(rep["scale"] - SCALE) < 1e-6,
            "--json reports merged count, rank and scale", p.stdout.strip())
    mr = gguf.GGUFReader(merged)
    mt = {t.name: t for t in mr.tensors}
    c.check(list(mt) == list(base_t), "same tensors in the same order")
    worst = 0.0
    for name, (a, b) in expect.items():
        want = deq(base_t[name]) + SCALE * (b.astype(np.float64) @ a.astype(np.float64))
        got = np.asarray(mt[name].data, dtype=np.float64).reshape(want.shape)
        ok_type = mt[name].tensor_type == gguf.GGMLQuantizationType.F32
        rel = np.max(np.abs(got - want)) / np.max(np.abs(want))
        worst = max(worst, rel if ok_type else 1.0)
    c.check(worst < 1e-5, "merged F32 tensors equal W + scale*B@A (max rel err 1e-5)", f"worst {worst:.3g}")
    same = all(bytes(mt[n].data.tobytes()) == bytes(base_t[n].data.tobytes()) and
               mt[n].tensor_type == base_t[n].tensor_type for n in base_t if n not in expect)
    c.check(same, "untouched tensors byte identical")
    keys_b = {k: bytes(f.parts[-1].tobytes()) for k, f in base_reader.fields.items() if not k.startswith("GGUF.")}
    keys_m = {k: bytes(f.parts[-1].tobytes()) for k, f in mr.fields.items() if not k.startswith("GGUF.")}
    c.check(keys_b == keys_m, "metadata (tokenizer included) copied unchanged",
            str(set(keys_b) ^ set(keys_m)))

# ---- (b) llama.cpp: base + adapter vs merged file ----
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "1, 2, 3, 4,",
           "Are 'Jon Smith' and 'John Smith' the same person? Answer:", "The quick brown fox",
           "In 1969, astronauts", "import numpy as", "My favourite colour is", "Water boils at",
           "Translate to French: cat ->", "The opposite of hot is", "<|im_start|>user\nHello<|im_end|>\n",
           "Q: What is 2+2?\nA:", "Dear Sir or Madam,", "The largest planet is", "Roses are red,",
           "SELECT * FROM", "Name: Maria Garcia\nPartner: Mar\u00eda Garc\u00eda\nSame:", "She opened the door and"]


def last_logits(llm, prompt):
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    llm.reset()
    llm.eval(ids)
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


base32 = os.path.join(tmp, "base-f32.gguf")
merged32 = os.path.join(tmp, "merged-on-f32.gguf")
q = run_tasklm(["quantize", MODEL, base32, "--type", "f32", "-t", "2"])
m = run_tasklm(["merge", "-m", base32, "--lora", adapter, "-o", merged32, "-t", "2"]) if q.returncode == 0 else q
c.check(q.returncode == 0 and m.returncode == 0, "f32 base and its merge made", (q.stderr + m.stderr).strip())
if q.returncode == 0 and m.returncode == 0:
    kw = dict(n_ctx=256, verbose=False, n_threads=2)
    la = llama_cpp.Llama(model_path=base32, lora_path=adapter, **kw)
    ref = [last_logits(la, q) for q in PROMPTS]
    del la
    lb = llama_cpp.Llama(model_path=merged32, **kw)
    got = [last_logits(lb, q) for q in PROMPTS]
    del lb
    lbase = llama_cpp.Llama(model_path=base32, **kw)
    plain = [last_logits(lbase, q) for q in PROMPTS]
    del lbase
    os.remove(base32)
    os.remove(merged32)
    rms = lambda v: float(np.sqrt(np.mean(v * v)))
    agree = sum(int(np.argmax(g) == np.argmax(r)) for g, r in zip(got, ref))
    maxdiff = max(float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
    diff = max(rms(g - r) for g, r in zip(got, ref))
    moved = min(rms(r - q) for r, q in zip(ref, plain))
    c.check(agree == len(PROMPTS), "llama.cpp base+adapter and merged file: same argmax", f"{agree}/{len(PROMPTS)}")
    c.check(maxdiff < 0.05, "llama.cpp logits of base+adapter and merged file within 0.05", f"max |diff| {maxdiff:.4f}")
    c.check(diff < 0.1 * moved, "logit RMS difference under 10% of the adapter's effect",
            f"worst rms diff {diff:.4f}, smallest rms shift {moved:.3f}")

def rel_rmse_vs_f32(tensors, f32):
    """Relative RMS error of the first six adapted weights of a merged file against the F32 merge."""
    errs = []
    for name in list(expect)[:6]:
        f = np.asarray(f32[name].data, dtype=np.float64).reshape(int(base_t[name].shape[1]), -1)
        q = deq(tensors[name])
        errs.append(np.sqrt(np.mean((q - f) ** 2)) / np.sqrt(np.mean(f ** 2)))
    return errs


# ---- --requantize same ----
merged_q = os.path.join(tmp, "merged-same.gguf")
p = run_tasklm(["merge", MODEL, "--lora", adapter, "-o", merged_q, "--requantize", "same", "-t", "2"])
c.check(p.returncode == 0, "merge --requantize same exits 0", p.stderr.strip())
if p.returncode == 0 and os.path.exists(merged):
    qr = {t.name: t for t in gguf.GGUFReader(merged_q).tensors}
    fr = {t.name: t for t in gguf.GGUFReader(merged).tensors}
    c.check(all(qr[n].tensor_type == base_t[n].tensor_type for n in base_t), "--requantize same keeps base types")
    errs = rel_rmse_vs_f32(qr, fr)
    c.check(max(errs) < 0.15, "requantized merge within q4_1 rounding of the F32 merge", f"rel rmse {max(errs):.3f}")
    c.check(os.path.getsize(merged_q) < os.path.getsize(merged), "requantized file smaller than the F32 one")

# ---- --requantize same --adapted-type q8_0: the changed weights in q8_0, the rest in their base type ----
merged_a = os.path.join(tmp, "merged-adapted.gguf")
p = run_tasklm(["merge", MODEL, "--lora", adapter, "-o", merged_a, "--requantize", "same", "--adapted-type", "q8_0",
                "-t", "2"])
c.check(p.returncode == 0, "merge --adapted-type q8_0 exits 0", p.stderr.strip())
if p.returncode == 0 and os.path.exists(merged):
    ar = {t.name: t for t in gguf.GGUFReader(merged_a).tensors}
    fr = {t.name: t for t in gguf.GGUFReader(merged).tensors}
    c.check(all(ar[n].tensor_type == gguf.GGMLQuantizationType.Q8_0 for n in expect)
            and all(ar[n].tensor_type == base_t[n].tensor_type for n in base_t if n not in expect),
            "--adapted-type: adapted weights q8_0, every other tensor its base type")
    errs = rel_rmse_vs_f32(ar, fr)
    c.check(max(errs) < 0.01, "adapted weights within q8_0 rounding of the F32 merge", f"rel rmse {max(errs):.4f}")
expect_error_args = ["merge", "-m", MODEL, "--lora", adapter, "-o", os.path.join(tmp, "x.gguf"), "--adapted-type", "q9"]


# ---- errors ----
def expect_error(args, code, needle, what):
    r = run_tasklm(args)
    lines = r.stderr.strip().splitlines()
    c.check(r.returncode == code and len(lines) == 1 and needle in r.stderr, what,
            f"rc {r.returncode} stderr {r.stderr.strip()!r}")


out_bad = os.path.join(tmp, "bad-out.gguf")
name0 = "blk.0.attn_q.weight"
a0, b0 = expect[name0]
bad = os.path.join(tmp, "bad-type.gguf")
write_adapter(bad, [(name0 + ".lora_a", a0), (name0 + ".lora_b", b0)], general_type="model")
expect_error(["merge", "-m", MODEL, "--lora", bad, "-o", out_bad], 1, "general.type", "wrong general.type named")
bad = os.path.join(tmp, "bad-arch.gguf")
write_adapter(bad, [(name0 + ".lora_a", a0), (name0 + ".lora_b", b0)], arch_name="qwen2")
expect_error(["merge", "-m", MODEL, "--lora", bad, "-o", out_bad], 1, "architecture", "architecture mismatch named")
bad = os.path.join(tmp, "bad-shape.gguf")
write_adapter(bad, [(name0 + ".lora_a", np.zeros((RANK, a0.shape[1] + 32), np.float32)), (name0 + ".lora_b", b0)])
expect_error(["merge", "-m", MODEL, "--lora", bad, "-o", out_bad], 1, name0 + ".lora_a", "shape mismatch names the tensor")
bad = os.path.join(tmp, "bad-partner.gguf")
write_adapter(bad, [(name0 + ".lora_a", a0)])
expect_error(["merge", "-m", MODEL, "--lora", bad, "-o", out_bad], 1, name0 + ".lora_b", "missing lora_b named")
bad = os.path.join(tmp, "bad-base.gguf")
write_adapter(bad, [("blk.999.attn_q.weight.lora_a", a0), ("blk.999.attn_q.weight.lora_b", b0)])
expect_error(["merge", "-m", MODEL, "--lora", bad, "-o", out_bad], 1, "blk.999.attn_q.weight", "unknown base tensor named")
c.check(not os.path.exists(out_bad), "no output file left after a failed merge")
expect_error(["merge", "-m", MODEL, "-o", out_bad], 2, "--lora", "missing --lora is a usage error")
expect_error(["merge", "-m", MODEL, "--lora", adapter, "-o", out_bad, "--requantize", "q9_9"], 2, "q9_9",
             "unknown --requantize type is a usage error")
expect_error(expect_error_args, 2, "--adapted-type 'q9'", "unknown --adapted-type is a usage error")
h = run_tasklm(["merge", "--help"])
c.check(h.returncode == 0 and "--requantize" in h.stdout, "--help")

sys.exit(c.finish())
