"""GGUF reader, writer and dequantization against independent peers:
the `gguf` Python package (reader, writer, dequantizers), numpy
dequantization written here from the published block layouts, and
llama.cpp (via llama-cpp-python) loading a file copied by our writer."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from tl_check import MODEL, TASKLM, Checker, run_tasklm

c = Checker("test_gguf_peer")
TOOLS = os.path.join(os.path.dirname(TASKLM), "tools")
DUMP = os.path.join(TOOLS, "gguf_dump")
COPY = os.path.join(TOOLS, "gguf_copy")

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
    from gguf.quants import dequantize as peer_dequantize
except ImportError:
    gguf = None


def dump_values(path, tensor, n=None):
    args = [DUMP, path, tensor] + ([str(n)] if n is not None else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return np.array([float(x) for x in out.stdout.split()], dtype=np.float32)


# ---- numpy dequantizers from the block layouts (little-endian) ----
def np_q8_0(raw):
    b = raw.reshape(-1, 34)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def np_q4_1(raw):
    b = raw.reshape(-1, 20)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = b[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = b[:, 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
    return (d * q + m).reshape(-1)


def np_f32(raw):
    return raw.copy().view(np.float32)


NP_DEQUANT = {"q8_0": np_q8_0, "q4_1": np_q4_1, "f32": np_f32}


def check_info_json(reader):
    r = run_tasklm(["info", MODEL, "--json"])
    if not c.check(r.returncode == 0, "info --json exits 0", r.stderr):
        return
    info = json.loads(r.stdout)
    fields = {k: v for k, v in reader.fields.items() if not k.startswith("GGUF.")}

    def val(key):
        f = fields.get(key)
        return None if f is None else f.contents()

    arch = val("general.architecture")
    c.check(info["architecture"] == arch, "architecture", f"{info['architecture']} vs {arch}")
    for name, suffix in [("block_count", "block_count"), ("context_length", "context_length"),
                         ("embedding_length", "embedding_length"), ("feed_forward_length", "feed_forward_length"),
                         ("head_count", "attention.head_count"), ("head_count_kv", "attention.head_count_kv"),
                         ("rope_dimension_count", "rope.dimension_count")]:
        want = val(f"{arch}.{suffix}")
        c.check(info[name] == want, f"info {name} = {want}", f"got {info[name]}")
    for name, suffix in [("rope_freq_base", "rope.freq_base"), ("rms_eps", "attention.layer_norm_rms_epsilon")]:
        want = val(f"{arch}.{suffix}")
        c.check(want is not None and abs(info[name] - want) <= 1e-6 * abs(want), f"info {name} = {want}",
                f"got {info[name]}")
    c.check(info["n_kv"] == len(fields), "n_kv", f"{info['n_kv']} vs {len(fields)}")
    c.check(info["n_tensors"] == len(reader.tensors), "n_tensors")
    c.check(info["vocab_size"] == len(val("tokenizer.ggml.tokens")), "vocab_size")
    c.check(info["tokenizer_model"] == val("tokenizer.ggml.model"), "tokenizer model")
    c.check(info["file_size"] == os.path.getsize(MODEL), "file_size")
    counts = {}
    for t in reader.tensors:
        n = t.tensor_type.name.lower().replace("_k", "_K")
        counts[n] = counts.get(n, 0) + 1
    c.check(info["tensor_types"] == counts, "tensor type counts", f"{info['tensor_types']} vs {counts}")
    n_params = int(sum(int(np.prod(t.shape)) for t in reader.tensors))
    c.check(info["n_params"] == n_params, "parameter count", f"{info['n_params']} vs {n_params}")


def check_tables(reader):
    out = subprocess.run([DUMP, MODEL], capture_output=True, text=True, timeout=120)
    if not c.check(out.returncode == 0, "gguf_dump lists the model", out.stderr):
        return
    lines = out.stdout.splitlines()
    head = dict(l.split(" ", 1) for l in lines[:5])
    keys = [l.split(" ") for l in lines if l.startswith("kv ")]
    tensors = [l.split(" ") for l in lines if l.startswith("tensor ")]
    fields = [(k, f) for k, f in reader.fields.items() if not k.startswith("GGUF.")]
    c.check([k[1] for k in keys] == [k for k, _ in fields], "same keys in the same order")
    c.check([int(k[2]) for k in keys] == [int(f.types[0]) for _, f in fields], "same value types")
    data_off = min(t.data_offset for t in reader.tensors)
    first_rel = min(int(t[8]) for t in tensors)
    c.check(int(head["data_offset"]) + first_rel == data_off, "data section offset",
            f"{head['data_offset']} vs {data_off}")
    ok = len(tensors) == len(reader.tensors)
    bad = []
    for mine, t in zip(tensors, reader.tensors):
        _, name, tname, n_dims, n0, n1, n2, n3, off, nbytes = mine
        shape = [int(n0), int(n1), int(n2), int(n3)][: int(n_dims)]
        if (name != t.name or shape != [int(x) for x in t.shape] or int(nbytes) != int(t.n_bytes)
                or int(head["data_offset"]) + int(off) != int(t.data_offset)
                or tname != t.tensor_type.name.lower().replace("_k", "_K")):
            bad.append(name)
    c.check(ok and not bad, "tensor table (names, types, shapes, offsets, sizes)", f"mismatch: {bad[:5]}")


def check_model_dequant(reader):
    by_name = {t.name: t for t in reader.tensors}
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight", "output_norm.weight"]:
        t = by_name[name]
        tname = t.tensor_type.name.lower()
        n_rows = 3 if len(t.shape) > 1 else 1
        n = int(t.shape[0]) * n_rows
        row_bytes = int(t.n_bytes) // int(np.prod(t.shape[1:]) if len(t.shape) > 1 else 1)
        raw = np.asarray(t.data).reshape(-1).view(np.uint8)[: row_bytes * n_rows]
        want = NP_DEQUANT[tname](raw)[:n]
        got = dump_values(MODEL, name, n)
        c.check(got.shape == want.shape and np.array_equal(got, want),
                f"{name} ({tname}) first {n} values equal numpy dequantization",
                f"max diff {np.max(np.abs(got - want)) if got.shape == want.shape else 'shape'}")
        peer = peer_dequantize(np.asarray(t.data), t.tensor_type).reshape(-1)[:n]
        c.check(np.array_equal(got, peer.astype(np.float32)), f"{name} equals gguf-py dequantization")


# Offsets of fp16 scale fields in each block, made finite before writing random blocks.
SCALE_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "IQ4_NL": [0],
                "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def check_synthetic_types(tmp):
    rng = np.random.default_rng(1234)
    path = os.path.join(tmp, "types.gguf")
    w = gguf.GGUFWriter(path, "llama")
    expect = {}
    for tname, fields in SCALE_FIELDS.items():
        qt = QT[tname]
        block, size = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = 8
        raw = rng.integers(0, 256, size=(2, n_blocks * size // 2), dtype=np.uint8)
        blocks = raw.reshape(-1, size)
        for off in fields:
            blocks[:, off:off + 2] = rng.uniform(-2, 2, size=(blocks.shape[0], 1)).astype(np.float16).view(np.uint8)
        raw = blocks.reshape(2, -1)
        w.add_tensor(f"t.{tname}", raw, raw_dtype=qt)
        expect[f"t.{tname}"] = peer_dequantize(raw, qt).reshape(-1)
    f16 = rng.standard_normal((3, 64)).astype(np.float16)
    w.add_tensor("t.F16", f16)
    expect["t.F16"] = f16.astype(np.float32).reshape(-1)
    bf = (rng.standard_normal((2, 32)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    w.add_tensor("t.BF16", bf.view(np.uint8), raw_dtype=QT.BF16)
    expect["t.BF16"] = (bf.astype(np.uint32) << 16).view(np.float32).reshape(-1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for name, want in expect.items():
        try:
            got = dump_values(path, name)
        except RuntimeError as e:
            c.check(False, f"{name}: dequantize a gguf-py written tensor", str(e))
            continue
        c.check(got.shape == want.shape and np.allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-6),
                f"{name}: random blocks equal gguf-py dequantization",
                f"max diff {np.max(np.abs(got - want)) if got.shape == want.shape else (got.shape, want.shape)}")


def check_llama_round_trip(tmp):
    copy = os.path.join(tmp, "copy.gguf")
    r = subprocess.run([COPY, MODEL, copy], capture_output=True, text=True, timeout=300)
    if not c.check(r.returncode == 0, "writer copies the default model", r.stderr):
        return
    c.check(not [f for f in os.listdir(tmp) if ".tmp." in f], "no temporary file left behind")
    import filecmp
    c.check(filecmp.cmp(MODEL, copy, shallow=False), "copy is byte-identical to the llama.cpp-written original")
    if gguf is not None:
        a, b = gguf.GGUFReader(MODEL), gguf.GGUFReader(copy)
        same_kv = all(k == k2 and f.types == f2.types and np.array_equal(np.concatenate([p.reshape(-1).view(np.uint8) for p in f.parts]),
                                                                      np.concatenate([p.reshape(-1).view(np.uint8) for p in f2.parts]))
                      for (k, f), (k2, f2) in zip(a.fields.items(), b.fields.items()))
        c.check(same_kv and len(a.fields) == len(b.fields), "copy has identical metadata (gguf-py)")
        same_t = len(a.tensors) == len(b.tensors) and all(
            x.name == y.name and x.tensor_type == y.tensor_type and list(x.shape) == list(y.shape)
            and np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8))
            for x, y in zip(a.tensors, b.tensors))
        c.check(same_t, "copy has identical tensors (gguf-py)")
    try:
        import llama_cpp
    except ImportError:
        c.check(False, "llama_cpp importable")
        return
    prompt = b"Elected official: Jose Garcia. Partner: J. Garcia. Same person?"
    results = []
    for path in (MODEL, copy):
        llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, logits_all=True, verbose=False)
        toks = llm.tokenize(prompt)
        llm.eval(toks)
        results.append((toks, np.array(llm.scores[: len(toks)], dtype=np.float32)))
        del llm
    c.check(results[0][0] == results[1][0], "llama.cpp: same tokens from the copy")
    c.check(results[0][1].shape == results[1][1].shape and np.array_equal(results[0][1], results[1][1]),
            "llama.cpp: identical logits from the copy")


def check_info_cli(tmp):
    r = run_tasklm(["info", "-m", MODEL])
    c.check(r.returncode == 0 and "block_count" in r.stdout, "info -m prints text")
    r = run_tasklm(["info", "--help"])
    c.check(r.returncode == 0 and "usage" in r.stdout, "info --help exits 0")
    r = run_tasklm(["info", "--frobnicate", MODEL])
    c.check(r.returncode == 2 and r.stderr.count("\n") == 1, "bad flag exits 2 with one line", r.stderr)
    r = run_tasklm(["info", "-m", MODEL, MODEL])
    c.check(r.returncode == 2, "model given twice exits 2")
    missing = os.path.join(tmp, "missing.gguf")
    r = run_tasklm(["info", missing])
    c.check(r.returncode == 1 and missing in r.stderr and r.stderr.count("\n") == 1, "missing file: exit 1, one line")
    bad = os.path.join(tmp, "bad.gguf")
    with open(bad, "wb") as fh:
        fh.write(b"GGML" + b"\0" * 64)
    r = run_tasklm(["info", bad])
    c.check(r.returncode == 1 and "magic" in r.stderr and r.stderr.count("\n") == 1, "wrong magic: exit 1, one line")
    with open(MODEL, "rb") as fh:
        head = fh.read(1 << 20)
    trunc = os.path.join(tmp, "trunc.gguf")
    with open(trunc, "wb") as fh:
        fh.write(head)
    r = run_tasklm(["info", trunc])
    c.check(r.returncode == 1 and "trunc" in r.stderr and r.stderr.count("\n") == 1, "truncated: exit 1, one line",
            r.stderr)


with tempfile.TemporaryDirectory() as tmp:
    check_info_cli(tmp)
    if c.check(gguf is not None, "gguf Python package importable (scripts/setup-deps.sh installs it)"):
        reader = gguf.GGUFReader(MODEL)
        check_info_json(reader)
        check_tables(reader)
        check_model_dequant(reader)
        check_synthetic_types(tmp)
    check_llama_round_trip(tmp)
sys.exit(c.finish())
