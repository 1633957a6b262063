"""Tokenizer parity with llama.cpp (through llama-cpp-python).

1. A corpus of 2,000+ strings (tests/peer/data/tokenizer_corpus.txt expanded:
   names in many scripts, the name-match prompt filled with the task's name
   pairs, case and whitespace variants, special-token strings) tokenized by
   `tasklm tokenize --jsonl` must give exactly the ids of
   llama_cpp.Llama(vocab_only=True).tokenize(s, add_bos=False, special=...),
   with special=False and special=True, on the default model and on every
   vocab-only GGUF of llama.cpp's test set whose tokenizer we support.
2. Decoding our ids gives back the text, and equals llama.cpp's detokenize.
3. llama.cpp's own test vectors (ggml-vocab-*.gguf.inp/.out).
4. CLI behaviour: --json pieces, --bos, invalid UTF-8, usage errors.
"""
import csv
import ctypes
import glob
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tl_check import Checker, MODEL, ROOT, run_tasklm  # noqa: E402

import llama_cpp  # noqa: E402

VOCAB_DIR = os.path.join(ROOT, "tests", "peer", ".cache", "ggml-vocab")
CORPUS = os.path.join(ROOT, "tests", "peer", "data", "tokenizer_corpus.txt")
RAW_CSV = os.path.join(ROOT, "tasks", "namematch", "data", "raw.csv")
PROMPT = ("Decide if the two names belong to the same person.\nReturn one word: yes, no, or partial.\n\n"
          "Name 1: {a}\nName 2: {b}\nAnswer:")
# Tokenizer models we implement; vocab files of other kinds are listed as skipped.
SUPPORTED_MODELS = {"gpt2", "llama"}


def load_seeds():
    seeds = []
    with open(CORPUS, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                seeds.append(json.loads(line))
    return seeds


def build_corpus():
    seeds = load_seeds()
    rng = random.Random(20240131)
    corpus = list(seeds)
    for s in seeds:
        corpus += [s.upper(), s.lower(), s.title(), " " + s, s + "\n", s.replace(" ", "  "),
                   s.replace(" ", "\t"), "\n\n" + s + " \n"]
    pairs = []
    if os.path.exists(RAW_CSV):
        with open(RAW_CSV, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                pairs.append((row["elected_name"], row["partner_name"]))
    names = [s for s in seeds if "<" not in s and "\n" not in s]
    for _ in range(300):
        pairs.append((rng.choice(names), rng.choice(names)))
    for a, b in pairs:
        corpus.append(PROMPT.format(a=a, b=b))
    for _ in range(200):
        k = rng.randint(2, 5)
        corpus.append(rng.choice(["", " ", "\n", "\t"]).join(rng.choice(seeds) for _ in range(k)))
    corpus.append("")
    corpus.append("a" * 5000)
    corpus.append(" ".join(names) * 3)
    return corpus


def ours_jsonl(model, texts, special):
    args = ["tokenize", model, "--jsonl"] + (["--special"] if special else [])
    data = "".join(json.dumps(t) + "\n" for t in texts)
    r = run_tasklm(args, input=data)
    if r.returncode != 0:
        return None, r.stderr.strip()
    out = [json.loads(line) for line in r.stdout.splitlines()]
    if len(out) != len(texts):
        return None, f"{len(out)} output lines for {len(texts)} inputs"
    return out, ""


def lcpp_detokenize(llm, ids):
    """llama.cpp's llama_detokenize (drops the SentencePiece leading space), specials rendered."""
    if not ids:
        return ""
    arr = (llama_cpp.llama_token * len(ids))(*ids)
    vocab = llm._model.vocab
    cap = 64 + 16 * len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, True)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        cap = -n + 1


def reference_text(llm, ids):
    """The text our decoder must give: the token pieces concatenated, specials
    rendered. For SentencePiece vocabularies llama.cpp's llama_detokenize (which
    drops the space added in front at encoding time); for byte-level BPE the
    plain concatenation (llama_detokenize would also apply its optional
    clean-up of spaces before punctuation, which our decoder does not do, so
    that decoding stays lossless)."""
    if llm.metadata.get("tokenizer.ggml.model") == "llama":
        return lcpp_detokenize(llm, ids)
    return llm.detokenize(ids, special=True).decode("utf-8", errors="replace") if ids else ""


def compare_corpus(c, label, model, corpus, roundtrip, llm=None):
    llm = llm or llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    for special in (False, True):
        ours, err = ours_jsonl(model, corpus, special)
        if not c.check(ours is not None, f"{label}: tasklm tokenize --jsonl special={special} runs", err):
            continue
        bad, bad_dec, bad_rt = [], [], []
        for s, o in zip(corpus, ours):
            ref = llm.tokenize(s.encode("utf-8"), add_bos=False, special=special) if s else []
            if o["ids"] != ref:
                bad.append((s, ref, o["ids"]))
                continue
            ref_text = reference_text(llm, ref)
            if o["decoded"] != ref_text:
                bad_dec.append((s, ref_text, o["decoded"]))
            if roundtrip and o["decoded"] != s:
                bad_rt.append((s, o["decoded"]))
        c.check(not bad, f"{label}: ids equal llama.cpp's for {len(corpus)} strings (special={special})",
                f"{len(bad)} differ, first: {bad[0]!r}" if bad else "")
        c.check(not bad_dec, f"{label}: decoded text equals llama.cpp's detokenize (special={special})",
                f"{len(bad_dec)} differ, first: {bad_dec[0]!r}" if bad_dec else "")
        if roundtrip:
            c.check(not bad_rt, f"{label}: decode(encode(s)) == s (special={special})",
                    f"{len(bad_rt)} differ, first: {bad_rt[0]!r}" if bad_rt else "")


def read_vectors(path):
    with open(path + ".inp", encoding="utf-8") as fh:
        inp = fh.read().split("\n__ggml_vocab_test__\n")
    with open(path + ".out", encoding="utf-8") as fh:
        out = [line.strip() for line in fh.read().split("\n")][:len(inp)]
    return inp, [[int(x) for x in o.split()] for o in out]


def main():
    c = Checker("test_tokenizer_peer")
    corpus = build_corpus()
    c.check(len(corpus) >= 2000, f"corpus has at least 2,000 strings ({len(corpus)})")

    # 1-2. The default model, both special modes, with round trips.
    compare_corpus(c, os.path.basename(MODEL), MODEL, corpus, roundtrip=True)

    # 3. llama.cpp's vocab test set: vectors, then the same corpus against llama.cpp.
    vocabs = sorted(glob.glob(os.path.join(VOCAB_DIR, "ggml-vocab-*.gguf")))
    c.check(len(vocabs) > 0, f"llama.cpp vocab files present in {VOCAB_DIR}", "run scripts/setup-deps.sh")
    small = corpus[:400] + corpus[-200:]
    for path in vocabs:
        name = os.path.basename(path)
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        model, pre = llm.metadata.get("tokenizer.ggml.model"), llm.metadata.get("tokenizer.ggml.pre", "default")
        if model not in SUPPORTED_MODELS:
            print(f"skip {name}: tokenizer model '{model}' is not implemented")
            continue
        if os.path.exists(path + ".inp"):
            inp, exp = read_vectors(path)
            ours, err = ours_jsonl(path, inp, special=False)
            if c.check(ours is not None, f"{name} ({model}/{pre}): loads and tokenizes the vectors", err):
                bad = [(s, e, o["ids"]) for s, e, o in zip(inp, exp, ours) if e != o["ids"]]
                c.check(not bad, f"{name}: {len(inp)} llama.cpp test vectors",
                        f"{len(bad)} differ, first: {bad[0]!r}" if bad else "")
        # SentencePiece vocabularies without every byte token cannot round-trip every text.
        compare_corpus(c, name, path, small, roundtrip=False, llm=llm)

    # 4. CLI behaviour.
    llm = llama_cpp.Llama(model_path=MODEL, vocab_only=True, verbose=False)
    text = "Name 1: José Müller<|im_end|>"
    r = run_tasklm(["tokenize", "-m", MODEL, text, "--json", "--special"])
    if c.check(r.returncode == 0, "tokenize --json runs", r.stderr):
        j = json.loads(r.stdout)
        ref = llm.tokenize(text.encode(), add_bos=False, special=True)
        c.check(j["ids"] == ref, "--json ids equal llama.cpp's", f"{j['ids']} vs {ref}")
        pieces = [llm._model.token_get_text(i) for i in ref]
        c.check(j["pieces"] == pieces, "--json pieces are the vocabulary strings", f"{j['pieces']} vs {pieces}")
    r = run_tasklm(["tokenize", MODEL, "hello", "--bos"])
    ref = [llm.token_bos()] + llm.tokenize(b"hello", add_bos=False)
    c.check(r.returncode == 0 and r.stdout.split() == [str(i) for i in ref], "--bos prepends the BOS id",
            f"{r.stdout.strip()} vs {ref}")
    r = run_tasklm(["tokenize", MODEL, "hello"])
    c.check(r.stdout.split() == [str(i) for i in llm.tokenize(b"hello", add_bos=False)],
            "plain output: ids on one line without BOS", r.stdout)
    r = run_tasklm(["tokenize", MODEL, "<|im_start|>"])
    ref = llm.tokenize(b"<|im_start|>", add_bos=False, special=False)
    c.check(r.stdout.split() == [str(i) for i in ref], "default is --no-special (control tokens as text)",
            f"{r.stdout.strip()} vs {ref}")
    bad_path = os.path.join(ROOT, "tests", "peer", ".cache", "bad-utf8.txt")
    os.makedirs(os.path.dirname(bad_path), exist_ok=True)
    with open(bad_path, "wb") as fh:
        fh.write(b"abc\xff\xfedef")
    r = run_tasklm(["tokenize", MODEL, "--file", bad_path])
    c.check(r.returncode == 1 and "not valid UTF-8 (byte 3)" in r.stderr, "invalid UTF-8 is a runtime error naming the byte",
            f"rc={r.returncode} {r.stderr.strip()}")
    r = run_tasklm(["tokenize", MODEL])
    c.check(r.returncode == 2 and "no text given" in r.stderr, "missing text is a usage error", r.stderr)
    r = run_tasklm(["tokenize", MODEL, "x", "--bogus"])
    c.check(r.returncode == 2, "unknown option is a usage error", r.stderr)
    r = run_tasklm(["tokenize", "--help"])
    c.check(r.returncode == 0 and "--jsonl" in r.stdout, "--help documents the options", r.stderr)
    r = run_tasklm(["tokenize", os.path.join(ROOT, "no-such-model.gguf"), "x"])
    c.check(r.returncode == 1 and "no-such-model.gguf" in r.stderr, "a missing model is a runtime error naming it",
            r.stderr)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
