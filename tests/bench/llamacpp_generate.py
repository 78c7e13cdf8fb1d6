#!/usr/bin/env python3
"""llama.cpp's side of bench-generate (llama-cpp-python's low-level API, CPU), and the prompts.

  llamacpp_generate.py prompts MODEL_GGUF OUT_DIR [N_PROMPT K N_BATCH_PROMPT]
      Writes OUT_DIR/single.jsonl: one {"prompt"} whose text (GPL-3, whitespace-normalized) is
      exactly N_PROMPT tokens (default 512) by llama.cpp's tokenizer, special tokens (BOS) included,
      as a raw prompt is tokenized by both llama.cpp and loom-generate; and OUT_DIR/batch.jsonl:
      K (16) different {"prompt"} records of N_BATCH_PROMPT (64) tokens each, from 16 places of
      the licence. Prints {"single_tokens", "batch_tokens": [...]}.
  llamacpp_generate.py single MODEL_GGUF PROMPTS_JSONL N_GEN THREADS N_CTX
      Greedy generation of N_GEN tokens (EOS ignored) after the first record's prompt. Times the
      prompt's llama_decode and the N_GEN - 1 one-token llama_decode calls that follow (with their
      argmax): the same spans as loom-generate's timings (prompt_tokens_per_s = prompt tokens /
      prompt time; decode_tokens_per_s = (generated - 1) / time after the prompt). Model load is
      not timed. Prints {"prompt_tokens", "completion_tokens", "prompt_tokens_per_s",
      "decode_tokens_per_s", "ttft_ms", "load_seconds", "completion"}.
  llamacpp_generate.py batch MODEL_GGUF PROMPTS_JSONL N_GEN THREADS
      Serves every record at once as llama.cpp's batched example and llama-server do: one
      sequence id per record (n_seq_max = records), the prompts in one batch (logits at each
      prompt's last token), then one batch per step holding the next token of every live sequence;
      greedy (argmax of each sequence's logits), EOS ignored, N_GEN tokens each. Times everything
      from the first llama_decode to the last token (prompts included). Prints {"sequences",
      "prompt_tokens", "generated_tokens", "seconds", "tokens_per_s", "load_seconds", "first_completion"}.
  llamacpp_generate.py kv MODEL_GGUF N_CTX
      The f16 KV cache of one sequence of N_CTX positions, from the GGUF metadata:
      n_layer * n_ctx * n_head_kv * (key_length + value_length) * 2 bytes. Prints {"kv_bytes", ...}.
"""
import ctypes, json, os, re, sys, time

import numpy as np


def die(msg):
    print(f"llamacpp_generate.py: {msg}", file=sys.stderr)
    sys.exit(1)


def gpl_text():
    raw = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()
    paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", raw)]
    return [p for p in paras if p]


def cmd_kv(path, n_ctx):
    import gguf
    r = gguf.GGUFReader(path)

    def get(key):
        f = r.fields.get(key)
        if f is None:
            return None
        vals = [f.parts[i].tolist() for i in f.data]
        vals = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in vals]
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode()
        return vals if len(vals) > 1 else vals[0]

    arch = get("general.architecture")
    n_layer = int(get(f"{arch}.block_count"))
    n_embd = int(get(f"{arch}.embedding_length"))
    n_head = get(f"{arch}.attention.head_count")
    n_head_kv = get(f"{arch}.attention.head_count_kv")
    n_head = n_head if isinstance(n_head, list) else [n_head] * n_layer
    n_head_kv = n_head_kv if isinstance(n_head_kv, list) else [n_head_kv if n_head_kv is not None else n_head[0]] * n_layer
    k_len = get(f"{arch}.attention.key_length") or n_embd // int(n_head[0])
    v_len = get(f"{arch}.attention.value_length") or n_embd // int(n_head[0])
    kv = sum(n_ctx * int(h) * (int(k_len) + int(v_len)) * 2 for h in n_head_kv)
    print(json.dumps({"kv_bytes": kv, "arch": arch, "n_layer": n_layer, "n_head_kv": int(n_head_kv[0]),
                      "key_length": int(k_len), "value_length": int(v_len), "n_ctx": n_ctx}))


# ---- llama.cpp ------------------------------------------------------------------------------

import llama_cpp
import llama_cpp._logger  # installs llama-cpp-python's own log callback; replaced here


@llama_cpp.llama_log_callback
def _log(level, text, user_data):  # llama.cpp's errors only (GGML_LOG_LEVEL_ERROR = 3)
    if level == 3:
        print(text.decode("utf-8", "replace"), end="", file=sys.stderr, flush=True)


llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


def load_model(path, vocab_only=False):
    mp = llama_cpp.llama_model_default_params()
    mp.vocab_only = vocab_only
    t0 = time.perf_counter()
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    if not model:
        die(f"{path}: llama.cpp could not load the model")
    return model, time.perf_counter() - t0


def tokenize(vocab, text):
    """As a raw prompt: special tokens (BOS) added, special-token text not parsed (loom's default)."""
    b = text.encode("utf-8")
    cap = len(b) + 16
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, b, len(b), buf, cap, True, False)
    if n < 0:
        die("llama_tokenize: buffer too small")
    return list(buf[:n])


def cut(vocab, text, n):
    """The longest prefix of text that is exactly n tokens, preferably not ending in whitespace."""
    count = lambda L: len(tokenize(vocab, text[:L]))
    if count(len(text)) < n:
        die(f"the text has fewer than {n} tokens")
    lo, hi = 1, len(text)  # largest L with count(L) <= n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(mid) <= n:
            lo = mid
        else:
            hi = mid - 1
    fallback = None
    for L in range(lo, max(0, lo - 400), -1):
        if count(L) == n:
            if not text[L - 1].isspace():
                return text[:L]
            fallback = fallback or text[:L]
    if fallback:
        return fallback
    die(f"no prefix of exactly {n} tokens")


def cmd_prompts(path, out_dir, n_prompt=512, k=16, n_batch_prompt=64):
    model, _ = load_model(path, vocab_only=True)
    vocab = llama_cpp.llama_model_get_vocab(model)
    paras = gpl_text()
    single = cut(vocab, "\n\n".join(paras), n_prompt)
    # k prompts starting at k paragraphs spread over the licence (skipping the short headings)
    starts = [i for i, p in enumerate(paras) if len(p) > 200]
    step = len(starts) / k
    batch = []
    for j in range(k):
        i = starts[int(j * step)]
        batch.append(cut(vocab, "\n\n".join(paras[i:]), n_batch_prompt))
    if len(set(batch)) != k:
        die("the batch prompts are not all different")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "single.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": single}, ensure_ascii=False) + "\n")
    with open(os.path.join(out_dir, "batch.jsonl"), "w", encoding="utf-8") as f:
        for j, p in enumerate(batch):
            f.write(json.dumps({"id": str(j + 1), "prompt": p}, ensure_ascii=False) + "\n")
    print(json.dumps({"single_tokens": len(tokenize(vocab, single)),
                      "batch_tokens": [len(tokenize(vocab, p)) for p in batch]}))
    llama_cpp.llama_model_free(model)


def new_context(model, n_ctx, n_seq, threads):
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = max(2048, n_ctx)  # llama.cpp's CLI defaults: n_batch 2048, n_ubatch 512
    cp.n_ubatch = 512
    cp.n_seq_max = n_seq
    cp.n_threads = threads
    cp.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if not ctx:
        die("llama_init_from_model failed")
    return ctx


def decode(ctx, batch):
    rc = llama_cpp.llama_decode(ctx, batch)
    if rc != 0:
        die(f"llama_decode returned {rc}")


def logits_rows(ctx, rows, n_vocab):
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(rows * n_vocab,)).reshape(rows, n_vocab)


def put(batch, i, token, pos, seq, want_logits):
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq
    batch.logits[i] = want_logits


def detokenize(vocab, ids):
    arr = (llama_cpp.llama_token * len(ids))(*ids)
    cap = 16 * len(ids) + 64
    buf = ctypes.create_string_buffer(cap)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, cap, False, False)
    return buf.raw[:max(n, 0)].decode("utf-8", "replace")


def read_prompts(path):
    return [json.loads(l)["prompt"] for l in open(path, encoding="utf-8") if l.strip()]


def cmd_single(path, prompts, n_gen, threads, n_ctx):
    model, load_seconds = load_model(path)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    ids = tokenize(vocab, read_prompts(prompts)[0])
    if len(ids) + n_gen > n_ctx:
        die("prompt + generation exceed the context")
    t_load = time.perf_counter()
    ctx = new_context(model, n_ctx, 1, threads)
    load_seconds += time.perf_counter() - t_load
    batch = llama_cpp.llama_batch_init(max(len(ids), 1), 0, 1)
    for i, t in enumerate(ids):
        put(batch, i, t, i, 0, i == len(ids) - 1)
    batch.n_tokens = len(ids)
    t0 = time.perf_counter()
    decode(ctx, batch)
    out = [int(logits_rows(ctx, 1, n_vocab)[0].argmax())]
    t1 = time.perf_counter()
    pos = len(ids)
    while len(out) < n_gen:
        put(batch, 0, out[-1], pos, 0, True)
        batch.n_tokens = 1
        decode(ctx, batch)
        out.append(int(logits_rows(ctx, 1, n_vocab)[0].argmax()))
        pos += 1
    t2 = time.perf_counter()
    print(json.dumps({"prompt_tokens": len(ids), "completion_tokens": len(out),
                      "prompt_tokens_per_s": len(ids) / (t1 - t0),
                      "decode_tokens_per_s": (len(out) - 1) / (t2 - t1) if len(out) > 1 else 0,
                      "ttft_ms": (t1 - t0) * 1000, "load_seconds": load_seconds,
                      "completion": detokenize(vocab, out)}, ensure_ascii=False))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)


def cmd_batch(path, prompts, n_gen, threads):
    model, load_seconds = load_model(path)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    seqs = [tokenize(vocab, p) for p in read_prompts(prompts)]
    k = len(seqs)
    longest = max(len(s) for s in seqs) + n_gen
    per_seq = (longest + 255) // 256 * 256
    t_load = time.perf_counter()
    ctx = new_context(model, per_seq * k, k, threads)
    load_seconds += time.perf_counter() - t_load
    n_prompt = sum(len(s) for s in seqs)
    batch = llama_cpp.llama_batch_init(max(n_prompt, k), 0, 1)
    t0 = time.perf_counter()
    i = 0
    for s, ids in enumerate(seqs):
        for p, t in enumerate(ids):
            put(batch, i, t, p, s, p == len(ids) - 1)
            i += 1
    batch.n_tokens = i
    decode(ctx, batch)
    nxt = logits_rows(ctx, k, n_vocab).argmax(axis=1).tolist()
    pos = [len(s) for s in seqs]
    first = [nxt[0]]  # the first sequence's tokens (a check: the same as its greedy run alone)
    generated = k
    for step in range(1, n_gen):
        for s in range(k):
            put(batch, s, nxt[s], pos[s], s, True)
            pos[s] += 1
        batch.n_tokens = k
        decode(ctx, batch)
        nxt = logits_rows(ctx, k, n_vocab).argmax(axis=1).tolist()
        first.append(nxt[0])
        generated += k
    seconds = time.perf_counter() - t0
    print(json.dumps({"sequences": k, "prompt_tokens": n_prompt, "generated_tokens": generated,
                      "seconds": seconds, "tokens_per_s": generated / seconds, "load_seconds": load_seconds,
                      "first_completion": detokenize(vocab, first)}, ensure_ascii=False))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    cmd, path = argv[1], argv[2]
    a = argv[3:]
    if cmd == "prompts":
        cmd_prompts(path, a[0], *(int(x) for x in a[1:4]))
    elif cmd == "single":
        cmd_single(path, a[0], int(a[1]), int(a[2]), int(a[3]))
    elif cmd == "batch":
        cmd_batch(path, a[0], int(a[1]), int(a[2]))
    elif cmd == "kv":
        cmd_kv(path, int(a[0]))
    else:
        die(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
