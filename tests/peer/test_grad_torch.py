"""Gradient check of the LoRA trainer against PyTorch.

Builds a tiny random Llama-shaped model (2 layers, n_embd 64, 4 query heads
over 2 kv heads, vocab 300, F32 weights) as a GGUF file with the gguf package,
runs one forward/backward pass of our trainer on a batch whose loss covers
only the answer tokens (tools/train_grads), and recomputes the same loss and
the gradients of every LoRA A/B tensor with PyTorch autograd (float64).
Also checks that the result does not depend on the thread count and that the
scalar and SIMD kernel levels agree."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import gguf

sys.path.insert(0, os.path.dirname(__file__))
from tl_check import Checker, ROOT, TASKLM  # noqa: E402

TOOL = os.path.join(os.path.dirname(TASKLM), "tools", "train_grads")
E, L, H, HKV, F, V = 64, 2, 4, 2, 96, 300
HD = E // H
EPS, BASE = 1e-5, 10000.0
STEMS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def make_model(path, rng):
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(L)
    w.add_context_length(256)
    w.add_embedding_length(E)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_freq_base(BASE)
    w.add_layer_norm_rms_eps(EPS)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"w{i}" for i in range(V - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (V - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * V)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    t = {}

    def add(name, shape, scale):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        t[name] = a
        w.add_tensor(name, a)

    add("token_embd.weight", (V, E), 1.0)
    add("output_norm.weight", (E,), 0.2)
    t["output_norm.weight"] += 1.0
    add("output.weight", (V, E), 0.1)
    Q, KV = H * HD, HKV * HD
    for i in range(L):
        add(f"blk.{i}.attn_norm.weight", (E,), 0.2)
        t[f"blk.{i}.attn_norm.weight"] += 1.0
        add(f"blk.{i}.ffn_norm.weight", (E,), 0.2)
        t[f"blk.{i}.ffn_norm.weight"] += 1.0
        add(f"blk.{i}.attn_q.weight", (Q, E), 0.15)
        add(f"blk.{i}.attn_k.weight", (KV, E), 0.15)
        add(f"blk.{i}.attn_v.weight", (KV, E), 0.15)
        add(f"blk.{i}.attn_output.weight", (E, Q), 0.15)
        add(f"blk.{i}.ffn_gate.weight", (F, E), 0.15)
        add(f"blk.{i}.ffn_up.weight", (F, E), 0.15)
        add(f"blk.{i}.ffn_down.weight", (E, F), 0.15)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return t


def rms(x, wt):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * wt


def rope(x, nh):
    T = x.shape[0]
    x = x.view(T, nh, HD // 2, 2)
    i = torch.arange(HD // 2, dtype=torch.float64)
    theta = torch.arange(T, dtype=torch.float64)[:, None] * BASE ** (-2.0 * i / HD)
    c, s = torch.cos(theta)[:, None, :], torch.sin(theta)[:, None, :]
    x0, x1 = x[..., 0], x[..., 1]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).view(T, nh * HD)


def torch_loss(W, lora, scale, seqs):
    g = {k: torch.tensor(v, dtype=torch.float64) for k, v in W.items()}

    def proj(x, layer, stem):
        y = x @ g[f"blk.{layer}.{stem}.weight"].T
        key = f"blk.{layer}.{stem}.weight"
        if key + ".lora_a" in lora:
            a, b = lora[key + ".lora_a"], lora[key + ".lora_b"]
            y = y + scale * ((x @ a.T) @ b.T)
        return y

    total, n_ans = 0.0, 0
    for prompt, answer in seqs:
        ids = prompt + answer
        T = len(ids)
        x = g["token_embd.weight"][ids]
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        for i in range(L):
            xn = rms(x, g[f"blk.{i}.attn_norm.weight"])
            q = rope(proj(xn, i, "attn_q"), H).view(T, H, HD)
            k = rope(proj(xn, i, "attn_k"), HKV).view(T, HKV, HD)
            v = proj(xn, i, "attn_v").view(T, HKV, HD)
            outs = []
            for h in range(H):
                kh = h // (H // HKV)
                s = q[:, h] @ k[:, kh].T / np.sqrt(HD) + mask
                outs.append(torch.softmax(s, -1) @ v[:, kh])
            att = torch.cat(outs, -1)
            x = x + proj(att, i, "attn_output")
            xn = rms(x, g[f"blk.{i}.ffn_norm.weight"])
            hh = torch.nn.functional.silu(proj(xn, i, "ffn_gate")) * proj(xn, i, "ffn_up")
            x = x + proj(hh, i, "ffn_down")
        xf = rms(x, g["output_norm.weight"])
        logits = xf @ g["output.weight"].T
        lp = torch.log_softmax(logits, -1)
        for j in range(len(prompt) - 1, T - 1):
            total = total - lp[j, ids[j + 1]]
            n_ans += 1
    return total / n_ans


def run_tool(model, batch, extra):
    r = subprocess.run([TOOL, model, batch] + extra, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def main():
    c = Checker("test_grad_torch")
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="tl-grad-")
    model = os.path.join(tmp, "tiny.gguf")
    W = make_model(model, rng)
    seqs = []
    for n_p, n_a in [(9, 1), (6, 3), (12, 2), (5, 1)]:
        seqs.append(([int(v) for v in rng.integers(3, V, n_p)], [int(v) for v in rng.integers(3, V, n_a)]))
    batch = os.path.join(tmp, "batch.txt")
    with open(batch, "w") as f:
        for p, a in seqs:
            f.write(" ".join(map(str, p)) + " | " + " ".join(map(str, a)) + "\n")

    for targets, rank, alpha in [("all", 4, 8.0), ("q,v,down", 3, 3.0)]:
        args = ["--rank", str(rank), "--alpha", str(alpha), "--targets", targets, "--seed", "5", "--b-std", "0.05"]
        try:
            ours = run_tool(model, batch, args + ["--threads", "1"])
        except Exception as e:  # noqa: BLE001
            c.check(False, f"train_grads runs ({targets})", str(e)[:300])
            continue
        lora = {t["name"]: torch.tensor(np.array(t["value"], dtype=np.float64).reshape(t["ne"][1], t["ne"][0]),
                                        requires_grad=True) for t in ours["tensors"]}
        names = {f"blk.{i}.{s}.weight.lora_{ab}" for i in range(L) for s in STEMS for ab in "ab"}
        want = set(names) if targets == "all" else {n for n in names if any(
            f".{s}." in n for s in ["attn_q", "attn_v", "ffn_down"])}
        c.check(set(lora) == want, f"[{targets}] adapter tensors are exactly the targeted ones",
                str(sorted(set(lora) ^ want))[:200])
        loss = torch_loss(W, lora, alpha / rank, seqs)
        loss.backward()
        c.check(abs(ours["loss"] - loss.item()) <= 1e-5 * abs(loss.item()),
                f"[{targets}] loss matches PyTorch", f"{ours['loss']} vs {loss.item()}")
        c.check(abs(ours["scale"] - alpha / rank) < 1e-7, f"[{targets}] scale is alpha/rank")
        worst, worst_name = 0.0, ""
        for t in ours["tensors"]:
            g_ref = lora[t["name"]].grad.numpy().ravel()
            g = np.array(t["grad"], dtype=np.float64)
            rel = np.linalg.norm(g - g_ref) / max(np.linalg.norm(g_ref), 1e-30)
            if rel > worst:
                worst, worst_name = rel, t["name"]
        nz = all(np.linalg.norm(lora[t["name"]].grad.numpy()) > 0 for t in ours["tensors"])
        c.check(nz, f"[{targets}] reference gradients are non-zero for every tensor")
        c.check(worst < 1e-4, f"[{targets}] every LoRA gradient within 1e-4 relative error of PyTorch",
                f"worst {worst:.3g} at {worst_name}")
        print(f"  [{targets}] worst relative gradient error {worst:.3g} ({worst_name})")
        two = run_tool(model, batch, args + ["--threads", "2"])
        same = all(a["grad"] == b["grad"] for a, b in zip(ours["tensors"], two["tensors"])) and \
            two["loss"] == ours["loss"]
        c.check(same, f"[{targets}] gradients are bit-identical with 1 and 2 threads")
        sc = run_tool(model, batch, args + ["--threads", "1", "--level", "scalar"])
        d = max(np.max(np.abs(np.array(a["grad"]) - np.array(b["grad"]))) /
                max(np.max(np.abs(np.array(b["grad"]))), 1e-30) for a, b in zip(sc["tensors"], ours["tensors"]))
        c.check(d < 1e-4, f"[{targets}] scalar and SIMD kernel levels agree", f"max rel diff {d:.3g}")
    # a batch whose prompts share a 7-token prefix (a task template's fixed text): the trainer evaluates the
    # prefix once for the batch; loss and gradients still match PyTorch, which runs every sequence in full
    pre = [int(v) for v in rng.integers(3, V, 7)]
    shared = [(pre + [int(v) for v in rng.integers(3, V, n)], [int(v) for v in rng.integers(3, V, a)])
              for n, a in [(3, 1), (1, 2), (5, 1), (2, 1)]]
    sbatch = os.path.join(tmp, "shared.txt")
    with open(sbatch, "w") as f:
        for p, a in shared:
            f.write(" ".join(map(str, p)) + " | " + " ".join(map(str, a)) + "\n")
    args = ["--rank", "4", "--alpha", "8", "--targets", "all", "--seed", "5", "--b-std", "0.05", "--threads", "2"]
    on = run_tool(model, sbatch, args)
    off = run_tool(model, sbatch, args + ["--share-prefix", "0"])
    lora = {t["name"]: torch.tensor(np.array(t["value"], dtype=np.float64).reshape(t["ne"][1], t["ne"][0]),
                                    requires_grad=True) for t in on["tensors"]}
    loss = torch_loss(W, lora, 2.0, shared)
    loss.backward()
    c.check(abs(on["loss"] - loss.item()) <= 1e-5 * abs(loss.item()), "[shared prefix] loss matches PyTorch",
            f"{on['loss']} vs {loss.item()}")
    c.check(on["loss"] == off["loss"], "[shared prefix] loss is bit-identical with and without sharing",
            f"{on['loss']} vs {off['loss']}")
    worst = max(np.linalg.norm(np.array(t["grad"]) - lora[t["name"]].grad.numpy().ravel()) /
                max(np.linalg.norm(lora[t["name"]].grad.numpy()), 1e-30) for t in on["tensors"])
    c.check(worst < 1e-4, "[shared prefix] every LoRA gradient within 1e-4 relative error of PyTorch",
            f"worst {worst:.3g}")
    d = max(np.linalg.norm(np.array(a["grad"]) - np.array(b["grad"])) / max(np.linalg.norm(b["grad"]), 1e-30)
            for a, b in zip(on["tensors"], off["tensors"]))
    c.check(d < 1e-5, "[shared prefix] gradients agree with the unshared pass (summation order only)",
            f"max rel diff {d:.3g}")
    one = run_tool(model, sbatch, args[:-1] + ["1"])
    c.check(all(a["grad"] == b["grad"] for a, b in zip(on["tensors"], one["tensors"])),
            "[shared prefix] gradients are bit-identical with 1 and 2 threads")
    print(f"  [shared prefix] worst relative gradient error {worst:.3g}, vs unshared {d:.3g}")
    # B = 0 at initialisation: the gradient of A vanishes and that of B does not
    init = run_tool(model, batch, ["--rank", "4", "--alpha", "8", "--targets", "q", "--seed", "5", "--threads", "1"])
    ga = max(max(abs(v) for v in t["grad"]) for t in init["tensors"] if t["name"].endswith("lora_a"))
    gb = max(max(abs(v) for v in t["grad"]) for t in init["tensors"] if t["name"].endswith("lora_b"))
    c.check(ga == 0.0 and gb > 0.0, "at B = 0 only B receives gradient", f"|gA| {ga} |gB| {gb}")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
