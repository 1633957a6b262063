"""tasklm prune --ffn-keep (FFN-channel pruning) vs llama.cpp (llama-cpp-python)
and gguf-py.
- q8_0 copy of the default model cut to 1024 of 1536 channels, the q4_1
  default model cut to 1280, and the same with --ffn-down-type q8_0: gguf-py sees feed_forward_length = N, every other
  key unchanged, ffn_gate/ffn_up rows byte-identical to source rows (the same
  increasing channel list for both), ffn_down columns the dequantized source
  columns of those channels up to one re-quantization (to its own type, or to
  q8_0 when asked), every non-FFN tensor
  byte-identical; llama.cpp loads each file and our forward pass agrees with
  llama.cpp's on it, with test_forward_peer's tolerances (every argmax
  disagreement a near tie: llama.cpp's logit for our choice within 0.5 of its
  max; cosine >= 0.98 per prompt, median >= 0.998; median max-abs <= 1.0)
  except the per-prompt max-abs, 2.5 instead of 2.0: on these 27 prompts the
  unpruned q8_0 copy reaches 1.14 and the 1024-channel one 2.16 on a 51-token
  name-match prompt (cosine 0.999, same argmax), the 8-bit activation rounding
  flips that test_forward_peer describes; the q8_0 and q4_1 + q8_0-ffn_down
  files are compared on 27 prompts, the q4_1 file on 6.
- keeping every channel (--ffn-keep 1536) writes the input's tensors byte for
  byte, and our logits and llama.cpp's on it equal those on the input exactly.
- a copy with q4_k ffn_down cut to 1280 (a multiple of 256) loads in llama.cpp;
  1280 + 32 is refused for it; --ffn-keep with --remove 1 gives one block fewer.
- errors: not a multiple of 32 or above n_ff -> exit 2, one line; --ffn-keep
  with --drop or --scores-only -> exit 2."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize

from tl_check import MODEL, Checker, run_tasklm, write_short_task
from model_prompts import all_prompts

c = Checker("peer/test_prune_ffn_peer")
tmp = tempfile.mkdtemp(prefix="tl-prune-ffn-")

# a task with a short template and two calibration rows keeps scoring cheap
tdir = write_short_task(tmp)
calib = os.path.join(tmp, "calib.csv")
with open(calib, "w") as f:
    f.write("elected_name,partner_name,labeled_result\nJohn Smith,Jon Smith,yes\nRavi Kumar,Anil Sharma,no\n")


def prune(src, out, keep, extra=()):
    return run_tasklm(["prune", "-m", src, "--task-dir", tdir, "--calib", calib, "--ffn-keep", str(keep),
                       "--out", out, "--threads", "2"] + list(extra))


def field(r, key):
    v = r.fields[key].parts[-1]
    return bytes(v).decode() if r.fields[key].types[0] == gguf.GGUFValueType.STRING else int(v[0])


def ours(model, ids_list):
    ids_path, out_path = os.path.join(tmp, "ids.txt"), os.path.join(tmp, "out.bin")
    with open(ids_path, "w") as f:
        for ids in ids_list:
            f.write(" ".join(map(str, ids)) + "\n")
    r = run_tasklm(["score", "-m", model, "--dump-logits", ids_path, "--out", out_path, "--threads", "2"])
    if r.returncode != 0:
        return None, r.stderr
    return np.fromfile(out_path, dtype=np.float32).reshape(len(ids_list), -1), ""


# llama.cpp in a child process (a crash there is one failed check): token ids
# of the prompts and the final-position logits, saved as .npy
PEER = r"""
import sys, json, numpy as np, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=512, verbose=False, n_threads=2)
prompts = json.load(open(sys.argv[2]))
ids = [llm.tokenize(p.encode(), add_bos=True, special=True) for p in prompts]
rows = []
for t in ids:
    llm.reset()
    llm.eval(t)
    rows.append(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy())
np.save(sys.argv[3], np.array(rows, dtype=np.float32))
json.dump({"ids": ids, "n_ff": llm.metadata.get(sys.argv[4]), "n_layer": llm.metadata.get(sys.argv[5])},
          open(sys.argv[3] + ".json", "w"))
"""
prompts = all_prompts()[::4]
prompts_path = os.path.join(tmp, "prompts.json")
json.dump(prompts, open(prompts_path, "w"))
src0 = gguf.GGUFReader(MODEL)
arch = field(src0, "general.architecture")
KEY_FF, KEY_L = f"{arch}.feed_forward_length", f"{arch}.block_count"
F, L = field(src0, KEY_FF), field(src0, KEY_L)


def llama(model, tag, n=None):
    out = os.path.join(tmp, tag + ".npy")
    path = prompts_path
    if n is not None:
        path = os.path.join(tmp, f"prompts-{n}.json")
        json.dump(prompts[::len(prompts) // n][:n], open(path, "w"))
    p = subprocess.run([sys.executable, "-c", PEER, model, path, out, KEY_FF, KEY_L], capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        return None, None, f"exit {p.returncode}: {p.stderr.strip()[-300:]}"
    return np.load(out), json.load(open(out + ".json")), ""


def compare(tag, ref, got):
    same, gaps, coss, maxabs = 0, [], [], []
    for i in range(len(ref)):
        r, o = ref[i], got[i]
        coss.append(float(np.dot(o, r) / (np.linalg.norm(o) * np.linalg.norm(r))))
        maxabs.append(float(np.abs(o - r).max()))
        a = int(o.argmax())
        same += a == int(r.argmax())
        gaps.append(float(r.max() - r[a]))
    n = len(ref)
    c.check(max(gaps) <= 0.5, f"{tag}: argmax equals llama.cpp's on {same}/{n} prompts, every disagreement a near tie",
            f"largest gap {max(gaps):.3f}")
    c.check(min(coss) >= 0.98 and np.median(coss) >= 0.998,
            f"{tag}: cosine >= 0.98 on every prompt (worst {min(coss):.4f}), median {np.median(coss):.5f} >= 0.998")
    c.check(max(maxabs) <= 2.5 and np.median(maxabs) <= 1.0,
            f"{tag}: max-abs <= 2.5 on every prompt (worst {max(maxabs):.3f}), median {np.median(maxabs):.3f} <= 1.0")


def check_file(tag, src_path, out_path, keep, down_type=None):
    src, dst = gguf.GGUFReader(src_path), gguf.GGUFReader(out_path)
    c.check(field(dst, KEY_FF) == keep, f"{tag}: {KEY_FF} = {keep}")
    c.check(set(src.fields) == set(dst.fields) and
            all(src.fields[k].parts[-1].tobytes() == dst.fields[k].parts[-1].tobytes()
                for k in src.fields if k != KEY_FF), f"{tag}: every other key unchanged")
    st, dt = {t.name: t for t in src.tensors}, {t.name: t for t in dst.tensors}
    c.check(set(st) == set(dt), f"{tag}: same tensor names")
    other_ok, rows_ok, down_ok, worst = True, True, True, 0.0
    for name, t in dt.items():
        s = st[name]
        if s.tensor_type != t.tensor_type and not (down_type is not None and name.endswith("ffn_down.weight")
                                                   and t.tensor_type == down_type):
            other_ok = False
            continue
        if not name.endswith(("ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")):
            other_ok &= s.data.tobytes() == t.data.tobytes()
    for l in range(L):
        g_s, g_d = st[f"blk.{l}.ffn_gate.weight"], dt[f"blk.{l}.ffn_gate.weight"]
        u_s, u_d = st[f"blk.{l}.ffn_up.weight"], dt[f"blk.{l}.ffn_up.weight"]
        src_rows = {g_s.data[j].tobytes(): j for j in range(F)}
        idx = [src_rows.get(g_d.data[i].tobytes(), -1) for i in range(keep)]
        ok = len(idx) == keep and all(b > a for a, b in zip(idx, idx[1:])) and idx[0] >= 0
        ok = ok and all(u_d.data[i].tobytes() == u_s.data[j].tobytes() for i, j in enumerate(idx))
        rows_ok &= ok
        if not ok:
            continue
        d_s = dequantize(st[f"blk.{l}.ffn_down.weight"].data, st[f"blk.{l}.ffn_down.weight"].tensor_type)
        d_d = dequantize(dt[f"blk.{l}.ffn_down.weight"].data, dt[f"blk.{l}.ffn_down.weight"].tensor_type)
        want = d_s.reshape(-1, F)[:, idx]
        got = d_d.reshape(-1, keep)
        rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        worst = max(worst, rel)
    limit = 0.01 if dt["blk.0.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0 else 0.15
    down_ok = rows_ok and worst <= limit
    c.check(other_ok, f"{tag}: every non-FFN tensor byte-identical, types unchanged"
                      + (" (ffn_down as asked)" if down_type is not None else ""))
    c.check(rows_ok, f"{tag}: ffn_gate/ffn_up rows are source rows, one increasing channel list per block")
    c.check(down_ok, f"{tag}: ffn_down = the kept source columns up to one re-quantization (rel. error "
                     f"{worst:.4f} <= {limit})")


q8 = os.path.join(tmp, "q8_0.gguf")
r = run_tasklm(["quantize", MODEL, q8, "--type", "q8_0"])
c.check(r.returncode == 0, "q8_0 copy of the default model", r.stderr)

for tag, src_path, keep, extra, dtype, n_prompts in (
        ("q8_0 1024", q8, 1024, [], None, None),
        ("q4_1 1280", MODEL, 1280, [], None, 6),
        ("q4_1 1280 ffn_down q8_0", MODEL, 1280, ["--ffn-down-type", "q8_0"], gguf.GGMLQuantizationType.Q8_0, None)):
    out = os.path.join(tmp, tag.replace(" ", "-") + ".gguf")
    r = prune(src_path, out, keep, extra)
    c.check(r.returncode == 0 and f"{keep} of {F} FFN channels" in r.stdout, f"{tag}: prune --ffn-keep exits 0",
            r.stderr)
    if r.returncode != 0:
        continue
    check_file(tag, src_path, out, keep, dtype)
    ref, meta, msg = llama(out, tag.replace(" ", "-"), n_prompts)
    c.check(ref is not None and meta["n_ff"] == str(keep), f"{tag}: llama.cpp loads the pruned file", msg)
    if ref is None:
        continue
    got, msg = ours(out, meta["ids"])
    c.check(got is not None and got.shape == ref.shape, f"{tag}: tasklm scores the pruned file", msg)
    if got is not None and got.shape == ref.shape:
        compare(tag, ref, got)

# every channel kept: the input, exactly
out = os.path.join(tmp, "all.gguf")
r = prune(q8, out, F)
c.check(r.returncode == 0, "--ffn-keep n_ff exits 0", r.stderr)
if r.returncode == 0:
    st, dt = gguf.GGUFReader(q8).tensors, gguf.GGUFReader(out).tensors
    c.check([t.name for t in st] == [t.name for t in dt] and
            all(a.data.tobytes() == b.data.tobytes() for a, b in zip(st, dt)), "keep all: every tensor byte-identical")
    ref_in, meta_in, _ = llama(q8, "in", 6)
    ref_out, meta_out, msg = llama(out, "all", 6)
    c.check(ref_in is not None and ref_out is not None and np.array_equal(ref_in, ref_out),
            "keep all: llama.cpp's logits equal the input's exactly", msg)
    if meta_in:
        a, _ = ours(q8, meta_in["ids"])
        b, msg = ours(out, meta_in["ids"])
        c.check(a is not None and b is not None and np.array_equal(a, b), "keep all: our logits equal the input's exactly",
                msg)

# a k-quant ffn_down (256 values per block along n_ff), and blocks removed as well
q4k = os.path.join(tmp, "q4_k.gguf")
r = run_tasklm(["quantize", MODEL, q4k, "--type", "q4_1", "--type-override", "blk.*.ffn_down=q4_k"])
c.check(r.returncode == 0, "copy of the default model with q4_k ffn_down", r.stderr)
out = os.path.join(tmp, "q4k-1280.gguf")
r = prune(q4k, out, 1280, ["--remove", "1", "--cosine-only"])
c.check(r.returncode == 0, "q4_k: --ffn-keep 1280 --remove 1 exits 0", r.stderr)
if r.returncode == 0:
    d = gguf.GGUFReader(out)
    c.check(field(d, KEY_FF) == 1280 and field(d, KEY_L) == L - 1, "q4_k: n_ff 1280 and one block fewer")
    ref, meta, msg = llama(out, "q4k", 3)
    c.check(ref is not None and meta["n_ff"] == "1280" and meta["n_layer"] == str(L - 1) and np.isfinite(ref).all(),
            "q4_k: llama.cpp loads the pruned file", msg)
r = prune(q4k, out + ".x", 1280 + 32)
c.check(r.returncode == 2 and "multiple of 256" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
        "q4_k: 1312 channels refused (multiple of 256), exit 2, one line", r.stderr)

for keep, what in ((1000, "multiple of 32"), (F + 32, f"1..{F}")):
    r = prune(MODEL, os.path.join(tmp, "bad.gguf"), keep)
    c.check(r.returncode == 2 and what in r.stderr and len(r.stderr.strip().splitlines()) == 1,
            f"--ffn-keep {keep}: exit 2, one line naming '{what}'", r.stderr)
c.check(not os.path.exists(os.path.join(tmp, "bad.gguf")), "no file written on a refused count")
r = run_tasklm(["prune", "-m", MODEL, "--drop", "3", "--ffn-keep", "1024", "--out", os.path.join(tmp, "b.gguf")])
c.check(r.returncode == 2, "--ffn-keep with --drop: exit 2", r.stderr)
r = run_tasklm(["prune", "-m", MODEL, "--calib", calib, "--scores-only", "--ffn-keep", "1024"])
c.check(r.returncode == 2, "--ffn-keep with --scores-only: exit 2", r.stderr)
r = run_tasklm(["prune", "--help"])
c.check(r.returncode == 0 and "--ffn-keep" in r.stdout, "--help names --ffn-keep")
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(c.finish())
