"""LoRA training speed, ours vs PyTorch+PEFT on CPU, measured in the same run.

Both train the same model (the GGUF's weights dequantized to fp32 and loaded into a Hugging Face
LlamaForCausalLM by transformers' GGUF loader), on the same rows (namematch prompts rendered with
the task template, label tokens appended, loss on the label tokens only), with the same LoRA
(rank 16, alpha 32, q,k,v,o, no dropout), AdamW (lr 2e-4, clip 1.0), batch 16, the same thread
count. The token ids of every row come from `tasklm tokenize --jsonl`, so both see identical
sequences. One "step" = forward + backward + optimizer update over a batch of 16 rows.

The peer is given its best usual setup: fp32 (the default; --dtype bfloat16 casts the frozen base to bf16, PEFT
keeps the adapter weights in fp32), right-padded batches with an
attention mask (what PEFT users run; padding positions are not counted as tokens), and the LM head
applied only to the answer positions (not to every position, which would cost it a full
vocabulary projection per token). One untimed warm-up forward + backward
(no update) for the peer; ours reports the mean over
all of its steps (`tasklm train --json`: s_per_step, tokens_per_s; evaluation excluded).

Ours and the peer alternate for --reps repetitions; the figures are medians. Prints a table and
the ratio (ours tokens/s over the peer's). Needs .venv-bench (bench/setup-bench-venv.sh).

usage: .venv-bench/bin/python bench/bench_train.py [--threads 2] [--steps 3] [--reps 1] [--model PATH]
       [--tasklm PATH] [--dtype float32|bfloat16] [--json]"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TASK = os.path.join(ROOT, "tasks", "namematch")


def load_rows(path, n):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return rows[:n]


def tokenize(tasklm, model, texts, bos):
    args = [tasklm, "tokenize", "-m", model, "-f", "-", "--jsonl", "--special"] + (["--bos"] if bos else [])
    inp = "".join(json.dumps(t) + "\n" for t in texts)
    r = subprocess.run(args, input=inp, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_train: tasklm tokenize failed: {r.stderr.strip()}")
    return [json.loads(line)["ids"] for line in r.stdout.splitlines() if line.strip()]


def wants_bos(model):
    import gguf
    f = gguf.GGUFReader(model).fields.get("tokenizer.ggml.add_bos_token")
    return bool(f.parts[f.data[0]][0]) if f is not None else False


def run_ours(a, train_csv, eval_csv, out):
    cmd = [a.tasklm, "train", "-m", a.model, "--train", train_csv, "--eval", eval_csv, "--out", out,
           "--batch", "16", "--max-steps", str(a.steps), "--eval-every", "0", "--eval-limit", "8",
           "--threads", str(a.threads), "--lora-rank", "16", "--lora-alpha", "32", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_train: tasklm train failed: {r.stderr.strip()[-2000:]}")
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return j["s_per_step"], j["tokens_per_s"], j["first_loss"], j["last_loss"], " ".join(cmd), j["steps"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct-q4_1.gguf"))
    ap.add_argument("--tasklm", default=os.environ.get("TASKLM", os.path.join(ROOT, "build", "tasklm")))
    ap.add_argument("--data", default=os.path.join(TASK, "data", "raw.csv"))
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.batch != 16:
        sys.exit("bench_train: the comparison is defined for batch 16")

    import torch
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    task = json.load(open(os.path.join(TASK, "task.json")))
    template = open(os.path.join(TASK, task["template"]), encoding="utf-8").read()
    n_rows = a.batch * a.steps
    rows = load_rows(a.data, n_rows + a.batch)  # + one warm-up batch for the peer
    prompts = []
    for r in rows:
        p = template
        for fld in task["fields"]:
            p = p.replace(fld["placeholder"], r[fld["column"]])
        prompts.append(p)
    labels = task["labels"]
    label_ids = tokenize(a.tasklm, a.model, [task.get("label_prefix", "") + lab for lab in labels], False)
    label_ids = dict(zip(labels, label_ids))
    # BOS where the vocabulary asks for it (tokenizer.ggml.add_bos_token), as tasklm train does
    prompt_ids = tokenize(a.tasklm, a.model, prompts, wants_bos(a.model))
    seqs = [(p, p + label_ids[r[task["label_column"]]]) for p, r in zip(prompt_ids, rows)]

    tmp = tempfile.mkdtemp(prefix="bench_train_")
    train_csv, eval_csv = os.path.join(tmp, "train.csv"), os.path.join(tmp, "eval.csv")
    with open(a.data, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    for path, sel in ((train_csv, rows[a.batch:]), (eval_csv, rows[:8])):
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(sel)

    t0 = time.perf_counter()
    # float32: transformers dequantizes the GGUF into plain nn.Linear weights (asked for another dtype it keeps
    # the blocks packed and runs its own kernels), so load fp32 and cast for --dtype bfloat16
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(a.model)),
                                                 gguf_file=os.path.basename(a.model), dtype=torch.float32)
    if not isinstance(model.model.layers[0].self_attn.q_proj, torch.nn.Linear):
        sys.exit("bench_train: the GGUF loader did not produce plain nn.Linear weights")
    if a.dtype != "float32":
        model = model.to(getattr(torch, a.dtype))  # frozen base in bf16; PEFT keeps the adapter in fp32
    load_s = time.perf_counter() - t0
    if model.config.vocab_size < max(max(s) for _, s in seqs) + 1:
        sys.exit("bench_train: vocabulary mismatch between the GGUF loader and tasklm")
    cfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                     bias="none", task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    pm.train()
    body, head = pm.base_model.model.model, pm.base_model.model.lm_head
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-4, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.0)

    def step(batch, update=True):
        T = max(len(s) for _, s in batch)
        ids = torch.zeros((len(batch), T), dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        pos_b, pos_t, tgt = [], [], []
        for i, (p, s) in enumerate(batch):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
            for j in range(len(p) - 1, len(s) - 1):  # position j predicts token j + 1
                pos_b.append(i), pos_t.append(j), tgt.append(s[j + 1])
        h = body(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = head(h[torch.tensor(pos_b), torch.tensor(pos_t)]).float()
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(tgt))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if not update:  # warm-up: forward + backward only, so that the timed steps start from the same
            opt.zero_grad(set_to_none=True)  # adapter as ours (B = 0) and the first losses are comparable
            return loss.item(), 0
        torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
        opt.step()
        return loss.item(), sum(len(s) for _, s in batch)

    ours, peer = [], []
    for rep in range(a.reps):
        o = run_ours(a, train_csv, eval_csv, os.path.join(tmp, f"ours{rep}"))
        ours.append(o)
        if rep == 0:
            step(seqs[:a.batch], update=False)  # warm-up (allocator, kernels), untimed
        tot_t, tot_tok, losses = 0.0, 0, []
        for s in range(a.steps):
            b = seqs[a.batch * (s + 1):a.batch * (s + 2)]
            t1 = time.perf_counter()
            loss, ntok = step(b)
            tot_t += time.perf_counter() - t1
            tot_tok += ntok
            losses.append(loss)
        peer.append((tot_t / a.steps, tot_tok / tot_t, losses[0], losses[-1]))
    o_sps = statistics.median(x[0] for x in ours)
    o_tps = statistics.median(x[1] for x in ours)
    p_sps = statistics.median(x[0] for x in peer)
    p_tps = statistics.median(x[1] for x in peer)
    tok_step = sum(len(s) for _, s in seqs[a.batch:]) / a.steps
    res = {"threads": a.threads, "steps": a.steps, "reps": a.reps, "batch": a.batch,
           "tokens_per_step": tok_step, "peer_dtype": a.dtype,
           "ours": {"s_per_step": o_sps, "tokens_per_s": o_tps, "first_loss": ours[0][2], "last_loss": ours[0][3]},
           "peer": {"s_per_step": p_sps, "tokens_per_s": p_tps, "first_loss": peer[0][2], "last_loss": peer[0][3],
                    "torch": torch.__version__, "load_s": load_s},
           "ratio_tokens_per_s": o_tps / p_tps if p_tps else None,
           "ratio_s_per_step": p_sps / o_sps if o_sps else None,
           "tasklm_command": ours[-1][4]}
    if a.json:
        print(json.dumps(res))
        return
    print(f"LoRA training, batch {a.batch}, {tok_step:.0f} tokens/step, {a.threads} threads, "
          f"{a.steps} steps x {a.reps} reps (medians)")
    print(f"{'':24}{'s/step':>10}{'tokens/s':>12}")
    print(f"{'tasklm train':24}{o_sps:10.3f}{o_tps:12.1f}   (loss {ours[0][2]:.4f} -> {ours[0][3]:.4f})")
    print(f"{'PyTorch+PEFT ' + a.dtype:24}{p_sps:10.3f}{p_tps:12.1f}   (loss {peer[0][2]:.4f} -> {peer[0][3]:.4f}, "
          f"torch {torch.__version__})")
    print(f"ratio ours/peer tokens/s: {res['ratio_tokens_per_s']:.2f}x  (peer s/step / ours: {res['ratio_s_per_step']:.2f}x)")


if __name__ == "__main__":
    main()
