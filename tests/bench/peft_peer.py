#!/usr/bin/env python3
"""The speed peer of `loom finetune`: LoRA supervised fine-tuning with Hugging Face transformers +
PEFT on PyTorch (CPU), on the same GGUF model, the same records and the same batches.

    peft_peer.py MODEL.gguf DATA.jsonl [--steps 64] [--batch 4] [--grad-accum 1] [--ctx 128]
                 [--rank 8] [--alpha 16] [--lora-targets q,v|all] [--lr 2e-4] [--warmup 0]
                 [--clip 1] [--epochs E] [--threads 2] [--seed 0] [--append-eos]
    peft_peer.py ... --generate HELDOUT.jsonl OUT.jsonl   after training, greedy completions of
                                                       HELDOUT's prompts (checks a recipe)
    peft_peer.py MODEL.gguf DATA.jsonl --tokens        token counts per record, one JSON line each
    peft_peer.py MODEL.gguf TEXTS.jsonl --score        mean NLL of each record's text (checks the
                                                       conversion against `loom generate --score`)

The model: transformers 4.41 reads GGUF files itself (from_pretrained(..., gguf_file=)) but not
Q4_1 tensors nor a GPT-2-style (BPE) GGUF vocabulary, which is what SmolLM2's file holds, so this
script converts the file itself: every tensor is dequantized to float32 with the gguf package, named
as Hugging Face's LlamaForCausalLM names it, and the rows of attn_q / attn_k are put back in HF's
order (llama.cpp's converter interleaves each head's two rotary halves for its RoPE; HF's
rotate_half wants them as halves). The tokenizer is built from the GGUF's vocabulary and merges
with the `tokenizers` library: byte-level BPE, digits split one by one first (llama.cpp's "smollm"
pre-tokenizer); control tokens spelled out in text stay plain text, as in loom tokenize; BOS is
added only when tokenizer.ggml.add_bos_token says so. (Checked on SmolLM2: the same token counts as
loom tokenize for every man-page record, prompt and completion; --score's mean log-likelihood
within 1-2% of loom generate --score's, which runs the quantized weights.)

Training: records {"prompt", "completion"}; prompt and completion are tokenized separately and
joined (prompt tokens, then completion tokens, cut to --ctx), the loss is taken on completion tokens
only. Steps take --batch records each, in file order, wrapping around; a step is --grad-accum micro
batches. Sequences of a micro batch are right-padded to the longest; padding is masked out of
attention and loss and not counted. AdamW (weight decay 0), gradient norm clipped to --clip (1),
linear warmup over --warmup steps then cosine decay to 0 at the last step (loom finetune's
defaults); LoRA dropout 0. Prints one JSON object: steps, sequences, tokens (real, non-pad tokens
through the forward pass), loss_tokens, seconds (the training steps only), tokens_per_s,
load_seconds (conversion + PEFT wrapping), first_loss, final_loss, trainable_params, threads,
max_rss_mib (getrusage: the process's peak resident set).
"""
import argparse
import json
import math
import resource
import sys
import time

import numpy as np


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    import gguf
    t = f.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        sub = f.types[1] if len(f.types) > 1 else None
        if sub == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if t == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


def build_tokenizer(reader):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    model = field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"peft_peer.py: tokenizer model {model!r}: only GGUF 'gpt2' (BPE) vocabularies are handled")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"):
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre in ("default", "gpt-2", "gpt2"):
        tok.pre_tokenizer = byte_level
    else:
        raise SystemExit(f"peft_peer.py: pre-tokenizer {pre!r} not handled (smollm, gpt-2 are)")
    tok.decoder = decoders.ByteLevel()
    # Control tokens (<|im_start|> ...) are not registered: text that spells one is tokenized as
    # plain text, as loom tokenize does by default (the records here are plain text).
    return tok


def unpermute(w, n_head):
    """Undo llama.cpp's convert permutation of q/k rows (per head: interleaved -> two halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_model(path):
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    reader = gguf.GGUFReader(path)
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise SystemExit(f"peft_peer.py: architecture {arch!r}: only llama is handled")
    g = lambda k, d=None: field(reader, f"llama.{k}", d)
    tokens = field(reader, "tokenizer.ggml.tokens")
    n_head, n_kv = g("attention.head_count"), g("attention.head_count_kv")
    names = {t.name for t in reader.tensors}
    cfg = LlamaConfig(
        vocab_size=len(tokens), hidden_size=g("embedding_length"),
        intermediate_size=g("feed_forward_length"), num_hidden_layers=g("block_count"),
        num_attention_heads=n_head, num_key_value_heads=n_kv,
        rms_norm_eps=g("attention.layer_norm_rms_epsilon"), rope_theta=g("rope.freq_base", 10000.0),
        max_position_embeddings=g("context_length"), tie_word_embeddings="output.weight" not in names,
        bos_token_id=field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=field(reader, "tokenizer.ggml.eos_token_id"),
        hidden_act="silu", attention_bias=False, torch_dtype="float32")
    cfg._attn_implementation = "eager"
    rename = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
              "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}
    # torch 1.13 has neither torch.device("meta") as a context nor load_state_dict(assign=): build
    # on the CPU (random init, a second or two), then copy each tensor in as it is dequantized, so
    # the peak holds the model plus one tensor, not two models.
    model = LlamaForCausalLM(cfg)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    params = dict(model.named_parameters())
    loaded = set()
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        w = w.reshape([int(x) for x in reversed(t.shape)]) if w.ndim != len(t.shape) else w
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            key = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            key = "model.norm.weight"
        elif t.name == "output.weight":
            key = "lm_head.weight"
        elif parts[0] == "blk" and parts[2] in rename:
            key = f"model.layers.{parts[1]}.{rename[parts[2]]}.{parts[3]}"
            if parts[2] == "attn_q":
                w = unpermute(w, n_head)
            elif parts[2] == "attn_k":
                w = unpermute(w, n_kv)
        else:
            continue  # rope_freqs and the like: not used by this architecture's HF model
        if key not in params or tuple(params[key].shape) != w.shape:
            raise SystemExit(f"peft_peer.py: {t.name}: no parameter {key} of shape {w.shape}")
        with torch.no_grad():
            params[key].copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
        loaded.add(key)
        del w
    missing = sorted(set(params) - loaded)
    if missing:
        raise SystemExit(f"peft_peer.py: not in the GGUF: {missing[:5]}")
    model.eval()
    add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token", False))
    return model, build_tokenizer(reader), add_bos, cfg


def read_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def encode_pair(tok, rec, add_bos, bos_id, eos_id, append_eos, ctx):
    if "prompt" not in rec or "completion" not in rec:
        raise SystemExit("peft_peer.py: records need prompt and completion ({\"messages\"} is not handled)")
    p = tok.encode(rec["prompt"], add_special_tokens=False).ids
    c = tok.encode(rec["completion"], add_special_tokens=False).ids
    if add_bos:
        p = [bos_id] + p
    if append_eos:
        c = c + [eos_id]
    ids = (p + c)[:ctx]
    labels = ([-100] * len(p) + c)[:ctx]
    return ids, labels, len(p), len(c)


def generate(model, tok, add_bos, bos_id, eos_id, src, dst, max_tokens):
    """Greedy completions of src's prompts (one at a time, KV cache) written to dst as records.
    A completion ends at max_tokens, at EOS, or at the first newline after some non-blank text
    (all that scripts/manpage-name-eval reads)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class FirstLine(StoppingCriteria):
        def __init__(self, n_prompt):
            self.n_prompt = n_prompt

        def __call__(self, input_ids, scores, **kwargs):
            text = tok.decode(input_ids[0, self.n_prompt:].tolist())
            return torch.tensor(["\n" in text.lstrip()] * input_ids.shape[0])

    model.eval()
    t = time.perf_counter()
    with torch.no_grad(), open(dst, "w", encoding="utf-8") as out:
        for r in read_records(src):
            ids = tok.encode(r["prompt"], add_special_tokens=False).ids
            if add_bos:
                ids = [bos_id] + ids
            x = torch.tensor([ids])
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_tokens,
                               do_sample=False, eos_token_id=eos_id, pad_token_id=eos_id,
                               stopping_criteria=StoppingCriteriaList([FirstLine(len(ids))]))
            text = tok.decode(y[0, len(ids):].tolist(), skip_special_tokens=True)
            out.write(json.dumps({"prompt": r["prompt"], "completion": text}, ensure_ascii=False) + "\n")
            out.flush()
    log(f"peft_peer.py: generated {dst} in {time.perf_counter() - t:.1f}s")


def main():
    ap = argparse.ArgumentParser(description="LoRA SFT peer of loom finetune (transformers + PEFT).")
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--epochs", type=float, help="instead of --steps: passes over the records")
    ap.add_argument("--batch", type=int, default=4, help="sequences per micro step")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--lora-targets", default="q,v")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--clip", type=float, default=1.0, help="clip the gradient's global norm (0: off)")
    ap.add_argument("--threads", "-t", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--append-eos", action="store_true", help="end each completion with EOS")
    ap.add_argument("--generate", nargs=2, metavar=("IN", "OUT"),
                    help="after training, greedy-complete IN's prompts (--max-tokens) into OUT")
    ap.add_argument("--max-tokens", type=int, default=48)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--tokens", action="store_true", help="print token counts per record and exit")
    mode.add_argument("--score", action="store_true", help="print mean NLL per record's text and exit")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    model, tok, add_bos, cfg = load_model(a.model)
    bos_id, eos_id = cfg.bos_token_id, cfg.eos_token_id
    records = read_records(a.data)

    if a.tokens:
        for r in records:
            if "text" in r:
                print(json.dumps({"n_tokens": len(tok.encode(r["text"], add_special_tokens=False).ids)}))
            else:
                _, _, np_, nc = encode_pair(tok, r, add_bos, bos_id, eos_id, a.append_eos, 1 << 30)
                print(json.dumps({"prompt_tokens": np_, "completion_tokens": nc}))
        return
    if a.score:
        with torch.no_grad():
            for r in records:
                ids = tok.encode(r["text"], add_special_tokens=False).ids
                if add_bos:
                    ids = [bos_id] + ids
                x = torch.tensor([ids])
                logits = model(input_ids=x).logits[0, :-1].float()
                nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum").item()
                n = len(ids) - 1
                print(json.dumps({"tokens": n, "sum": -nll, "mean": -nll / n, "perplexity": math.exp(nll / n)}))
        return

    from peft import LoraConfig, get_peft_model
    names = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
             "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
    wanted = list(names) if a.lora_targets == "all" else a.lora_targets.split(",")
    try:
        targets = [names[t] for t in wanted]
    except KeyError as e:
        raise SystemExit(f"peft_peer.py: unknown LoRA target {e} (q,k,v,o,gate,up,down or all)")
    lcfg = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=0.0, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr,
                            weight_decay=0.0)
    seqs = [encode_pair(tok, r, add_bos, bos_id, eos_id, a.append_eos, a.ctx) for r in records]
    if not seqs:
        raise SystemExit("peft_peer.py: no records")
    if a.epochs is not None:
        a.steps = max(1, math.ceil(a.epochs * len(seqs) / (a.batch * a.grad_accum)))
    load_s = time.perf_counter() - t0
    log(f"peft_peer.py: loaded in {load_s:.1f}s; {len(seqs)} records; trainable {trainable}")

    cursor = 0
    tokens = loss_tokens = n_seqs = 0
    first_loss = last_loss = None
    t1 = time.perf_counter()
    for step in range(a.steps):
        if step < a.warmup:
            lr = a.lr * (step + 1) / a.warmup
        else:
            span = max(1, a.steps - a.warmup)
            lr = a.lr * 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / span))
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        micro = []
        for _ in range(a.grad_accum):
            batch = []
            for _ in range(a.batch):
                batch.append(seqs[cursor % len(seqs)])
                cursor += 1
            micro.append(batch)
        step_loss_tokens = sum(sum(1 for l in b[1] if l != -100) for mb in micro for b in mb)
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for batch in micro:
            width = max(len(b[0]) for b in batch)
            ids = torch.full((len(batch), width), eos_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (x, y, _, _) in enumerate(batch):
                ids[i, :len(x)] = torch.tensor(x)
                labels[i, :len(y)] = torch.tensor(y)
                mask[i, :len(x)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            # Mean over the whole step's completion tokens (so grad-accum matches one big batch).
            loss_sum = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum")
            (loss_sum / max(step_loss_tokens, 1)).backward()
            step_loss += loss_sum.item()
            tokens += int(mask.sum())
            n_seqs += len(batch)
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], a.clip)
        opt.step()
        loss_tokens += step_loss_tokens
        last_loss = step_loss / max(step_loss_tokens, 1)
        if first_loss is None:
            first_loss = last_loss
        if (step + 1) % 8 == 0 or step + 1 == a.steps:
            log(f"step {step + 1}/{a.steps} loss {last_loss:.4f} "
                f"{tokens / (time.perf_counter() - t1):.1f} tok/s")
    secs = time.perf_counter() - t1
    if a.generate:
        generate(model, tok, add_bos, bos_id, eos_id, a.generate[0], a.generate[1], a.max_tokens)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "steps": a.steps, "sequences": n_seqs, "tokens": tokens, "loss_tokens": loss_tokens,
        "seconds": round(secs, 3), "tokens_per_s": round(tokens / secs, 2),
        "load_seconds": round(load_s, 3), "first_loss": round(first_loss, 5),
        "final_loss": round(last_loss, 5), "trainable_params": trainable, "threads": a.threads,
        "max_rss_mib": round(rss_kib / 1024, 1)}))


if __name__ == "__main__":
    main()
