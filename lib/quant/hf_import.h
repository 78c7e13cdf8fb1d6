// Hugging Face folder → GGUF: what llama.cpp's convert_hf_to_gguf.py writes for the same folder
// and the same --outtype (the converter vendored in llama-cpp-python 0.3.36, gguf-py 0.19.0),
// behind `loom quantize --from-hf DIR OUT --type F32|F16|BF16`.
//
//   quant::import_hf("SmolLM2-135M-Instruct/", "smollm2-f16.gguf", GgmlType::F16);
//
// Reads from DIR:
//   config.json                    architectures[0] picks the GGUF architecture:
//                                    LlamaForCausalLM  → llama    Qwen2ForCausalLM → qwen2
//                                    Qwen3ForCausalLM  → qwen3    Gemma3ForCausalLM → gemma3
//                                    BertModel, BertForMaskedLM → bert
//   model.safetensors, or model-0000X-of-0000N.safetensors listed by model.safetensors.index.json
//                                  tensors F32, F16 or BF16
//   tokenizer.model (SentencePiece; the decoders' converters try it first) or tokenizer.json
//                                  (byte-level BPE for the decoders, WordPiece for bert);
//                                  tokenizer_config.json, added_tokens.json, chat_template.jinja
//                                  / .json, generation_config.json, modules.json + its Pooling
//                                  config (sentence-transformers) when present
//
// Writes (atomically, one tensor in memory at a time) the converter's file:
//   metadata  general.architecture/type, general.sampling.* (generation_config.json),
//             general.name/version/organization/finetune/basename/size_label (the converter's
//             heuristics on _name_or_path and the folder's name), {arch}.block_count, context_length,
//             embedding_length, feed_forward_length, attention.head_count(_kv),
//             rope.freq_base(_swa), rope.scaling.*, attention.layer_norm_(rms_)epsilon,
//             attention.key_length/value_length (when config.json has head_dim), vocab_size and
//             rope.dimension_count (llama), attention.causal + pooling_type (bert),
//             attention.sliding_window (gemma3), general.file_type, general.quantization_version,
//             tokenizer.ggml.* (model gpt2/bert/llama, pre, tokens, scores, token_type, merges,
//             special token ids, add_bos/eos/sep, add_space_prefix, normalizer flags),
//             tokenizer.chat_template — in the converter's order, with its types (u32 counts,
//             f32 floats);
//   tensors   the converter's names, in its order (shard by shard, names sorted), ne = the torch
//             shape reversed; F32 for 1-D tensors, *_norm.weight, position_embd, token_types and
//             every non-".weight" tensor, `wtype` for the rest. Data as the converter computes it:
//             llama's q/k rows permuted for ggml's RoPE, gemma3's norm weights + 1 (in the
//             checkpoint's precision: float16 stays float16, bfloat16 becomes float32 first),
//             llama 3's rope_freqs.weight.
//
// Where loom decides differently (documented, not hidden):
//   - tokenizer.ggml.pre: the converter hashes the tokens of a check text against its table of
//     known models and refuses any other tokenizer. loom hashes the same text's tokens (its own
//     tokenizer on tokenizer.json) against the part of that table naming pre-tokenizers loom's
//     GGUF reader knows and BERT vocabularies; for any other tokenizer it names the
//     pre-tokenizer from the structure: WordPiece → "default"; the Llama 3 Split regex →
//     "llama-bpe"; Qwen2's → "qwen2"; Digits(individual) + ByteLevel → "smollm"; a lone
//     ByteLevel with its regex → "gpt-2"; anything else is refused.
//   - general.*: no model-card fields (README.md: license, tags, languages, base models,
//     datasets), which the converter adds when the folder has one.
//   - Gemma 3 from tokenizer.json with config.json's vocab_size above the tokenizer's tokens: the
//     converter pads the token list to vocab_size but cuts the embedding to the tokenizer's
//     tokens, a file llama.cpp refuses to load (the embedding's rows must be the tokens); loom
//     keeps every row. (A tokenizer.model folder, as Gemma 3 ships, gets neither: both match.)
//   - tokenizer.json's added tokens with "normalized": false are written as they are (the
//     converter writes what transformers decodes them back to, the same text for ordinary ones).
//   - not recognized or refused: Qwen3 rerankers, Eagle-3 drafts, LlamaModel/Qwen2Model without
//     their "model." prefix, MoE, quantized (FP8, NVFP4, GPTQ) checkpoints, pytorch_model.bin,
//     configs nested under text_config.
// Errors: loom::Error (Usage) for a missing file or folder; (BadInput) naming the file for an
// architecture loom does not import, a tensor missing or of the wrong shape, an unsupported dtype,
// a tensor the index lists but no shard holds, malformed JSON or safetensors.
#pragma once
#include <string>
#include <string_view>

#include "kernels/cpu/ggml_blocks.h"

namespace loom::quant {

using kernels::GgmlType;

struct HfImportOptions {
  // Name written as general.name; empty: derived from the folder's name as the converter does.
  std::string name;
};

// Converts the Hugging Face folder `dir` to the GGUF `out_gguf` with weights of type `wtype`
// (F32, F16 or BF16; loom::Error (Usage) for another type).
void import_hf(const std::string& dir, const std::string& out_gguf, GgmlType wtype, const HfImportOptions& opt = {});

// The converter's tokenizer check hash (get_vocab_base_pre's chkhsh): SHA-256 of the Python
// list of the token ids loom's tokenizer gives its check text, special tokens added.
// loom::Error when tokenizer.json cannot be read.
std::string tokenizer_check_hash(const std::string& tokenizer_json);


}  // namespace loom::quant
