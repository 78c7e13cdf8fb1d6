// loom-quantize — a GGUF model to another tensor type, as llama-quantize does (with or without --pure).
//
// Every weight tensor that llama.cpp would quantize (2-D and 3-D tensors whose name ends in
// "weight", except norms, position embeddings, token types and a few small ones: the rules of
// tensor_allows_quantization in llama.cpp's llama-quant.cpp) gets a target type: the type of the
// first --tensor-type pattern its name matches, else the default type of the file type (--type),
// which, without --pure, llama.cpp's mix rules (llama_tensor_get_type_impl, mirrored by mix_type
// below for the file types loom can write) may raise for some tensors: output.weight (and
// token_embd when the embeddings are tied) to Q6_K, attn_v and ffn_down of some layers for the
// K-quant mixes. A tensor whose row length is not a whole number of blocks of its target falls back
// as llama.cpp's tensor_type_fallback does (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16 when
// even that does not fit). Source tensors are dequantized to float32 (lib/tensor) and quantized row
// by row (lib/quant, bytes identical to ggml's quantizers); a tensor whose type does not change is
// copied. Metadata is copied, general.quantization_version (2) and general.file_type (llama.h's
// LLAMA_FTYPE_*) set at the end, as llama.cpp writes them. The output is written atomically.
//
// With --imatrix FILE (an importance matrix, lib/quant/imatrix.h), the types that take weights are
// quantized weighted by each matrix's mean squared activations, as llama-quantize --imatrix does
// (and its Q4_0 / Q5_0 mixes then keep the first eighth of the ffn_down tensors at Q4_1 / Q5_1).
// `loom quantize imatrix` collects such a matrix (imatrix_main below).
//
// Not implemented: the mixes built on Q2_K / Q3_K (loom cannot write those types) and IQ types.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>

#include <unistd.h>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/eval/perplexity.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/io/json.h"
#include "loom/io/stream.h"
#include "loom/model/decoder.h"
#include "loom/model/models_dir.h"
#include "loom/quant/hf_import.h"
#include "loom/quant/imatrix.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"
#include "loom/tokenizer/tokenizer.h"

using namespace loom;
using kernels::GgmlType;

namespace {

struct Options {
  std::string input, output;
  std::string type;
  std::vector<std::string> tensor_types;
  bool pure = false;
  bool dry_run = false;
  std::string eval_file;     // --eval: compare IN and OUT on this text
  uint32_t eval_ctx = 512;   // --eval-ctx
  int64_t eval_chunks = -1;  // --eval-chunks
  std::string imatrix;       // --imatrix: importance weights
  std::string from_hf;       // --from-hf: a Hugging Face folder instead of IN
};

// The tensor types loom writes (for --tensor-type, as llama-quantize's parse_ggml_type).
struct TypeName {
  const char* name;
  GgmlType type;
};
constexpr TypeName kTypes[] = {
    {"F32", GgmlType::F32},   {"F16", GgmlType::F16},   {"BF16", GgmlType::BF16}, {"Q8_0", GgmlType::Q8_0},
    {"Q4_0", GgmlType::Q4_0}, {"Q4_1", GgmlType::Q4_1}, {"Q5_0", GgmlType::Q5_0}, {"Q5_1", GgmlType::Q5_1},
    {"Q4_K", GgmlType::Q4_K}, {"Q5_K", GgmlType::Q5_K}, {"Q6_K", GgmlType::Q6_K},
};

// llama.h's LLAMA_FTYPE_MOSTLY_* numbers of the file types loom writes.
enum Ftype : uint32_t {
  F_F32 = 0, F_F16 = 1, F_Q4_0 = 2, F_Q4_1 = 3, F_Q8_0 = 7, F_Q5_0 = 8, F_Q5_1 = 9,
  F_Q4_K_S = 14, F_Q4_K_M = 15, F_Q5_K_S = 16, F_Q5_K_M = 17, F_Q6_K = 18, F_BF16 = 32,
};

// The file types of --type (llama-quantize's QUANT_OPTIONS names, "Q4_K" and "Q5_K" its aliases
// of Q4_K_M and Q5_K_M), their default tensor type (llama_ftype_get_default_type) and the
// general.file_type written.
struct FileType {
  const char* name;
  GgmlType type;
  uint32_t ftype;
};
constexpr FileType kFileTypes[] = {
    {"F32", GgmlType::F32, F_F32},       {"F16", GgmlType::F16, F_F16},       {"BF16", GgmlType::BF16, F_BF16},
    {"Q8_0", GgmlType::Q8_0, F_Q8_0},    {"Q4_0", GgmlType::Q4_0, F_Q4_0},    {"Q4_1", GgmlType::Q4_1, F_Q4_1},
    {"Q5_0", GgmlType::Q5_0, F_Q5_0},    {"Q5_1", GgmlType::Q5_1, F_Q5_1},    {"Q4_K_S", GgmlType::Q4_K, F_Q4_K_S},
    {"Q4_K_M", GgmlType::Q4_K, F_Q4_K_M}, {"Q4_K", GgmlType::Q4_K, F_Q4_K_M}, {"Q5_K_S", GgmlType::Q5_K, F_Q5_K_S},
    {"Q5_K_M", GgmlType::Q5_K, F_Q5_K_M}, {"Q5_K", GgmlType::Q5_K, F_Q5_K_M}, {"Q6_K", GgmlType::Q6_K, F_Q6_K},
};

// llama-quantize's file types that loom does not write: the mixes built on Q2_K / Q3_K, IQ, TQ ...
constexpr const char* kNotYet[] = {
    "Q2_K",   "Q2_K_S", "Q3_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ1_S",     "IQ1_M", "IQ2_XXS", "IQ2_XS",
    "IQ2_S",  "IQ2_M",  "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M",  "IQ4_NL",    "IQ4_XS", "TQ1_0",  "TQ2_0",
    "MXFP4_MOE", "NVFP4", "COPY",
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

template <class T>
std::string names(const T& table) {
  std::string s;
  for (const auto& p : table) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

const FileType& parse_file_type(const std::string& word) {
  const std::string u = upper(word);
  for (const auto& p : kFileTypes)
    if (u == p.name) return p;
  for (const char* n : kNotYet)
    if (u == n)
      throw usage_error(fmt::format("--type {}: not implemented (it needs tensor types loom cannot write: Q2_K, Q3_K, "
                                    "IQ*, TQ*, ...; valid: {})",
                                    word, names(kFileTypes)));
  throw usage_error(fmt::format("--type {}: unknown type (valid: {})", word, names(kFileTypes)));
}

GgmlType parse_tensor_type(const std::string& arg, const std::string& word) {
  const std::string u = upper(word);
  for (const auto& p : kTypes)
    if (u == p.name) return p.type;
  throw usage_error(fmt::format("--tensor-type {}: unknown type (valid: {})", arg, names(kTypes)));
}

// ggml_n_dims: trailing dimensions of 1 do not count.
size_t n_dims(const gguf::TensorInfo& t) {
  size_t n = t.ne.size();
  while (n > 1 && t.ne[n - 1] == 1) --n;
  return std::max<size_t>(n, 1);
}

// llama.cpp's tensor_allows_quantization (llama-quant.cpp), for the architectures loom runs.
bool allows_quantization(const gguf::TensorInfo& t) {
  if (n_dims(t) < 2) return false;
  const std::string& name = t.name;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  bool q = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
  q &= !has("_norm.weight");
  q &= !has("ffn_gate_inp.weight");
  q &= !has("ffn_gate_tid2eid.weight");
  q &= !has("altup") && !has("laurel") && !has("per_layer_model_proj");
  q &= name != "position_embd.weight" && name != "token_types.weight";
  q &= !has("ssm_conv1d") && !has("shortconv.conv.weight");
  q &= !has("indexer.k_proj.weight") && !has("indexer.q_proj.weight");
  return q;
}

bool is_quantized(GgmlType t) { return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16; }

// llama.cpp's tensor_type_fallback.
GgmlType fallback(GgmlType target, uint64_t ncols) {
  const uint64_t qk = kernels::type_size(target).block_elems;
  if (ncols % qk == 0) return target;
  GgmlType r = target;
  switch (target) {
    case GgmlType::Q4_K: r = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: r = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: r = GgmlType::Q8_0; break;
    default: break;
  }
  if (ncols % kernels::type_size(r).block_elems != 0) r = GgmlType::F16;
  return r;
}

// llama.cpp's tensor_category and tensor_get_category: the first of these names that the tensor's
// name contains (output and token embeddings: the whole name).
enum class Cat { Output, TokenEmbd, AttnQkv, AttnKvB, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

Cat category(const std::string& name) {
  if (name == "output.weight") return Cat::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Cat::TokenEmbd;
  constexpr std::pair<const char*, Cat> kParts[] = {
      {"attn_qkv.weight", Cat::AttnQkv}, {"attn_kv_b.weight", Cat::AttnKvB}, {"attn_v.weight", Cat::AttnV},
      {"attn_k.weight", Cat::AttnK},     {"attn_q.weight", Cat::AttnQ},      {"attn_output.weight", Cat::AttnOutput},
      {"ffn_up", Cat::FfnUp},            {"ffn_gate", Cat::FfnGate},         {"ffn_down", Cat::FfnDown},
  };
  for (const auto& [part, c] : kParts)
    if (name.find(part) != std::string::npos) return c;
  return Cat::Other;
}

// category_is_attn_v: the value projections, which the mixes keep at more bits.
bool is_attn_v(Cat c) { return c == Cat::AttnV || c == Cat::AttnQkv || c == Cat::AttnKvB; }

// What the mix rules read of the model and count along the way (llama.cpp's quantize_state_impl,
// init_quantize_state_counters): the value projections (all of them, and those seen so far) and
// the ffn_down tensors seen so far out of block_count.
struct MixState {
  uint32_t ftype = 0;
  std::string arch;
  int n_expert = 0;          // {arch}.expert_count
  bool is_70b = false;       // llama.cpp's model type LLM_TYPE_70B (load_hparams of each architecture)
  bool tied = true;          // no output.weight: token_embd is also the output projection
  int n_attention_wv = 0, i_attention_wv = 0;
  int n_ffn_down = 0, i_ffn_down = 0;
  bool has_imatrix = false;  // quantizing with an importance matrix
};

MixState mix_state(const gguf::File& f, uint32_t ftype) {
  MixState s;
  s.ftype = ftype;
  s.arch = f.get_string("general.architecture").value_or("");
  auto key = [&](const char* k) {
    try {
      return f.get_int(s.arch + "." + k).value_or(-1);
    } catch (const std::exception&) {
      return int64_t{-1};  // an array (per-layer values)
    }
  };
  s.n_expert = static_cast<int>(std::max<int64_t>(0, key("expert_count")));
  s.n_ffn_down = static_cast<int>(std::max<int64_t>(0, key("block_count")));
  const int64_t heads = key("attention.head_count"), heads_kv = key("attention.head_count_kv");
  s.is_70b = (s.arch == "llama" && s.n_ffn_down == 80 && heads != (heads_kv < 0 ? heads : heads_kv)) ||
             ((s.arch == "qwen2" || s.arch == "deci" || s.arch == "olmo") && s.n_ffn_down == 80) ||
             (s.arch == "jais2" && s.n_ffn_down == 68);
  for (const auto& t : f.tensors()) {
    const Cat c = category(t.name);
    s.n_attention_wv += is_attn_v(c);
    if (c == Cat::Output) s.tied = false;
  }
  return s;
}

// llama.cpp's llama_tensor_get_type_impl, the branches of the file types in kFileTypes (the others
// are IQ / Q2_K / Q3_K mixes, MXFP4 or need an importance matrix): `t` is the default type of the
// file type, the result the type this tensor gets before the fallback. Call it for the tensors in
// llama.cpp's order (the counters of s advance).
GgmlType mix_type(MixState& s, GgmlType t, const gguf::TensorInfo& ti, Cat c) {
  const std::string& name = ti.name;
  const bool falcon = s.arch == "falcon";
  const uint32_t ft = s.ftype;
  // use_more_bits: the first and last eighth of the layers, and every third one between them.
  auto more_bits = [](int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; };
  // glm5-next keeps a few projections at Q8_0 at least.
  if (s.arch == "glm5-next" && (name.find("attn_q_a") != std::string::npos || name.find("attn_q_b") != std::string::npos ||
                                name.find("nextn.eh_proj") != std::string::npos))
    return GgmlType::Q8_0;
  if (c == Cat::Output || (s.tied && c == Cat::TokenEmbd)) {
    // The output projection (and tied embeddings): Q8_0 when the rows are not whole blocks of the
    // default type (or for falcon), otherwise Q6_K unless the file is Q8_0.
    if (falcon || ti.ne[0] % kernels::type_size(t).block_elems != 0) return GgmlType::Q8_0;
    return t == GgmlType::Q8_0 ? t : GgmlType::Q6_K;
  }
  if (c == Cat::TokenEmbd) return t;  // changed only by the IQ / TQ mixes
  if (is_attn_v(c)) {
    if ((ft == F_Q4_K_M || ft == F_Q5_K_M) && more_bits(s.i_attention_wv, s.n_attention_wv))
      t = GgmlType::Q6_K;
    else if (ft == F_Q4_K_S && s.i_attention_wv < 4)
      t = GgmlType::Q5_K;
    if (s.is_70b && t == GgmlType::Q4_K) t = GgmlType::Q5_K;  // 8 heads share each value projection
    if (s.n_expert == 8) t = GgmlType::Q8_0;
    ++s.i_attention_wv;
    return t;
  }
  if (c == Cat::AttnK) return s.n_expert == 8 ? GgmlType::Q8_0 : t;
  if (c == Cat::FfnDown) {
    int i = s.i_ffn_down;
    const int n = s.n_ffn_down;
    if (std::max(1, s.n_expert) > 1) {
      // layer_info: with experts, the layer is read from the name
      if (std::sscanf(name.c_str(), "blk.%d.", &i) != 1 || i < 0 || i >= n)
        throw input_error(fmt::format("tensor {}: cannot tell its layer (of {})", name, n));
    }
    if (ft == F_Q4_K_M) {
      if (falcon)
        t = i < n / 16 ? GgmlType::Q6_K : more_bits(i, n) ? GgmlType::Q5_K : GgmlType::Q4_K;
      else if (more_bits(i, n))
        t = GgmlType::Q6_K;
    } else if (ft == F_Q5_K_M && more_bits(i, n)) {
      t = GgmlType::Q6_K;
    } else if (ft == F_Q4_K_S && !falcon && i < n / 8) {
      t = GgmlType::Q5_K;
    } else if ((ft == F_Q4_0 || ft == F_Q5_0) && s.has_imatrix && i < n / 8) {
      t = ft == F_Q4_0 ? GgmlType::Q4_1 : GgmlType::Q5_1;  // weights do not save these from outliers
    }
    ++s.i_ffn_down;
    return t;
  }
  if (c == Cat::AttnOutput && !falcon && s.n_expert == 8 && (ft == F_Q4_K_S || ft == F_Q4_K_M)) return GgmlType::Q5_K;
  return t;  // attn_q, ffn_gate, ffn_up and the rest: changed only by the IQ / Q2_K / Q3_K mixes
}

struct Override {
  std::regex re;
  GgmlType type;
};

struct Plan {
  const gguf::TensorInfo* t;
  GgmlType from, to;
  uint64_t bytes_before, bytes_after;
  bool fell_back;
  std::vector<float> importance;  // --imatrix weights of the columns (empty: none)
};

uint64_t type_bytes(GgmlType t, uint64_t n) {
  auto ts = kernels::type_size(t);
  return n / ts.block_elems * ts.block_bytes;
}

std::string report(const Options& opt, const FileType& pt, const std::vector<Plan>& plan, bool dry_run) {
  std::string j = "{\"input\":";
  json::append_string(j, opt.from_hf.empty() ? opt.input : opt.from_hf);
  j += ",\"output\":";
  json::append_string(j, opt.output);
  j += ",\"type\":";
  json::append_string(j, pt.name);
  j += ",\"file_type\":";
  json::append_number(j, static_cast<uint64_t>(pt.ftype));
  j += opt.pure ? ",\"pure\":true" : ",\"pure\":false";
  j += dry_run ? ",\"dry_run\":true" : ",\"dry_run\":false";
  j += ",\"tensors\":[";
  uint64_t before = 0, after = 0, elems = 0, fallbacks = 0, changed = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Plan& p = plan[i];
    if (i) j += ',';
    j += "{\"name\":";
    json::append_string(j, p.t->name);
    j += ",\"shape\":[";
    for (size_t d = 0; d < p.t->ne.size(); ++d) {
      if (d) j += ',';
      json::append_number(j, p.t->ne[d]);
    }
    j += "],\"from\":";
    json::append_string(j, kernels::type_name(p.from));
    j += ",\"to\":";
    json::append_string(j, kernels::type_name(p.to));
    j += ",\"bytes_before\":";
    json::append_number(j, p.bytes_before);
    j += ",\"bytes\":";
    json::append_number(j, p.bytes_after);
    if (p.fell_back) j += ",\"fallback\":true";
    j += '}';
    before += p.bytes_before;
    after += p.bytes_after;
    elems += p.t->n_elements();
    fallbacks += p.fell_back;
    changed += p.from != p.to;
  }
  j += "],\"n_tensors\":";
  json::append_number(j, static_cast<uint64_t>(plan.size()));
  j += ",\"n_converted\":";
  json::append_number(j, changed);
  j += ",\"n_fallback\":";
  json::append_number(j, fallbacks);
  j += ",\"n_weights\":";
  json::append_number(j, elems);
  j += ",\"bytes_before\":";
  json::append_number(j, before);
  j += ",\"bytes_after\":";
  json::append_number(j, after);
  j += ",\"bits_per_weight_before\":";
  json::append_number(j, elems ? std::round(800.0 * before / elems) / 100 : 0.0);
  j += ",\"bits_per_weight\":";
  json::append_number(j, elems ? std::round(800.0 * after / elems) / 100 : 0.0);
  j += "}\n";
  return j;
}

// IN against OUT on the text of --eval, as loom eval perplexity windows it (llama-perplexity's
// chunks): both models' perplexity and the divergence of OUT's next-token distributions from IN's
// (eval::compare_models). The report's "eval" member.
// The text of --eval, checked before any work: UTF-8, and long enough for two windows of IN's
// tokens (the same check the evaluation makes).
std::string eval_text(const Options& opt, const gguf::File& in) {
  std::string text = io::read_all(*io::Input::open(opt.eval_file));
  if (!text.empty() && text.back() == '\n') text.pop_back();  // as llama-perplexity -f
  const std::string where = opt.eval_file == "-" ? "<stdin>" : opt.eval_file;
  if (!json::valid_utf8(text)) throw input_error(fmt::format("not UTF-8 (byte {})", json::first_invalid_utf8(text)), where);
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(in, opt.input);
  eval::PerplexityOptions po;
  po.n_ctx = opt.eval_ctx;
  po.chunks = opt.eval_chunks;
  try {
    eval::perplexity_windows(tokenizer.encode(text, {.add_special = true, .parse_special = false}).ids.size(), false, po);
  } catch (Error& e) {
    throw e.at(where);
  }
  return text;
}

std::string evaluate(cli::Tool& tool, const Options& opt, const std::string& text) {
  auto fa = std::make_shared<gguf::File>(gguf::File::open(opt.input));
  auto fb = std::make_shared<gguf::File>(gguf::File::open(opt.output));
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*fa, opt.input);
  const unsigned threads = tool.common().threads;
  model::Decoder a(fa, {.n_ctx = opt.eval_ctx, .threads = threads, .n_seq = 1});
  model::Decoder b(fb, {.n_ctx = opt.eval_ctx, .threads = threads, .n_seq = 1});
  eval::PerplexityOptions po;
  po.n_ctx = opt.eval_ctx;
  po.chunks = opt.eval_chunks;
  po.threads = threads;
  cli::Progress progress(tool, "eval");
  eval::ModelComparison c;
  try {
    c = eval::compare_models(a, b, tokenizer, text, po, [&](size_t done, size_t total, double ppl) {
      progress.tick([&] { return fmt::format("window {}/{}: {:.4f}", done, total, ppl); });
    });
  } catch (Error& e) {
    if (e.kind() == Error::Kind::BadInput) e.at(opt.eval_file == "-" ? "<stdin>" : opt.eval_file);
    throw;
  }
  progress.done();
  const double n = static_cast<double>(c.a.scored_tokens);
  std::string j = "\"eval\":{\"file\":";
  json::append_string(j, opt.eval_file);
  j += fmt::format(",\"ctx\":{},\"chunks\":{},\"tokens\":{},\"tokens_scored\":{}", c.a.n_ctx, c.a.chunks, c.a.tokens,
                   c.a.scored_tokens);
  auto num = [&](const char* key, double v) {
    j += fmt::format(",\"{}\":", key);
    json::append_number(j, v);
  };
  num("ppl_before", c.a.ppl);
  num("ppl_after", c.b.ppl);
  num("ppl_ratio", c.b.ppl / c.a.ppl);
  num("nll_before", c.a.nll_sum / n);
  num("nll_after", c.b.nll_sum / n);
  num("kl_mean", c.kl_mean);
  num("kl_max", c.kl_max);
  num("top1_agreement", c.top1_agreement);
  j += '}';
  return j;
}

// A file removed when the scope ends (the --from-hf conversion).
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::filesystem::remove(path);
  }
};

void run(cli::Tool& tool, Options& opt) {
  if (!opt.from_hf.empty()) {  // `--from-hf DIR OUT`: the one positional is OUT
    if (!opt.output.empty())
      throw usage_error(fmt::format("--from-hf {} takes the place of IN: give only OUT (not {} and {})", opt.from_hf,
                                    opt.input, opt.output));
    opt.output = std::move(opt.input);
    opt.input.clear();
  } else if (opt.input.empty()) {
    throw usage_error("IN is required (a GGUF file, or --from-hf DIR)");
  }
  const FileType& pt = parse_file_type(opt.type);
  std::vector<Override> overrides;
  for (const auto& s : opt.tensor_types) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw usage_error(fmt::format("--tensor-type {}: expected REGEX=TYPE", s));
    std::string pat = s.substr(0, eq);
    for (char& c : pat) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // as llama-quantize
    std::regex re;
    try {
      re = std::regex(pat);
    } catch (const std::regex_error& e) {
      throw usage_error(fmt::format("--tensor-type {}: bad regular expression: {}", s, e.what()));
    }
    overrides.push_back({std::move(re), parse_tensor_type(s, s.substr(eq + 1))});
  }
  if (!opt.dry_run && opt.output.empty()) throw usage_error("OUT is required (or --dry-run)");
  if (opt.dry_run && !opt.eval_file.empty()) throw usage_error("--eval needs a written OUT: not with --dry-run");
  if (opt.eval_ctx < 3) throw usage_error(fmt::format("--eval-ctx {}: at least 3", opt.eval_ctx));
  if (opt.eval_chunks == 0 || opt.eval_chunks < -1)
    throw usage_error(fmt::format("--eval-chunks {}: at least 1 (or -1: all)", opt.eval_chunks));
  if (!opt.output.empty()) {
    // OUT is a plain file (no stdout, no compression) and not IN itself (--eval reads IN after)
    std::string_view o = opt.output;
    if (o == "-" || o.ends_with(".zst"))
      throw usage_error(fmt::format("OUT {}: a GGUF file is written as it is (not to stdout, not compressed)", opt.output));
    std::error_code ec;
    if (!opt.input.empty() && std::filesystem::equivalent(opt.input, opt.output, ec))
      throw usage_error(fmt::format("OUT {} is IN: write the quantized model to another file", opt.output));
  }

  // --from-hf: the folder becomes a GGUF first (convert_hf_to_gguf.py's file, lib/quant/hf_import.h),
  // in the float type asked for or else F32 (every source dtype converts to it exactly), written
  // beside OUT (or in the temporary folder for --dry-run) and removed at the end; it is then IN
  // (and --eval's reference: the original float model).
  TempFile converted;
  if (!opt.from_hf.empty()) {
    const bool is_float = pt.type == GgmlType::F32 || pt.type == GgmlType::F16 || pt.type == GgmlType::BF16;
    // named as a temporary of OUT (a run killed here leaves ".OUT.from-hf.tmp-PID", not a GGUF
    // that looks finished)
    const std::filesystem::path out_path = std::filesystem::absolute(opt.output.empty() ? "loom" : opt.output);
    const std::filesystem::path dir = opt.output.empty() ? std::filesystem::temp_directory_path() : out_path.parent_path();
    converted.path = (dir / fmt::format(".{}.from-hf.tmp-{}", out_path.filename().string(), ::getpid())).string();
    cli::Progress progress(tool, "convert");
    progress.tick([&] { return fmt::format("reading {}", opt.from_hf); });
    quant::import_hf(opt.from_hf, converted.path, is_float ? pt.type : GgmlType::F32);
    progress.done();
    opt.input = converted.path;
  }

  gguf::File f = gguf::File::open(opt.input);
  f.validate_tensors();
  const std::string text = opt.eval_file.empty() ? std::string() : eval_text(opt, f);
  quant::Imatrix imatrix;
  if (!opt.imatrix.empty()) {
    imatrix = quant::read_imatrix(opt.imatrix);
    if (imatrix.entries.empty()) throw input_error("the importance matrix has no entries", opt.imatrix);
  }

  // Tensors in llama.cpp's order (llama_model_loader's weight_name_comparer: by layer, the tensors
  // of no layer first, then by name), so that the file is byte for byte llama-quantize's and the
  // mix rules count the layers as llama.cpp does.
  std::vector<const gguf::TensorInfo*> order;
  for (const auto& t : f.tensors()) order.push_back(&t);
  auto layer = [](const std::string& name) {
    int l = -1;
    std::sscanf(name.c_str(), "blk.%d.", &l);
    return l;
  };
  std::stable_sort(order.begin(), order.end(), [&](const gguf::TensorInfo* a, const gguf::TensorInfo* b) {
    const int la = layer(a->name), lb = layer(b->name);
    return la != lb ? la < lb : a->name < b->name;
  });

  // The type of each tensor, as llama.cpp's llama_tensor_get_type: an override, else the file
  // type's default type, which without --pure the mix rules may change (only when that default is
  // a quantized type, and not for an overridden tensor), then the fallback.
  MixState mix = mix_state(f, pt.ftype);
  mix.has_imatrix = !opt.imatrix.empty();
  std::vector<Plan> plan;
  size_t n_fallback = 0;
  for (const gguf::TensorInfo* tp : order) {
    const gguf::TensorInfo& t = *tp;
    const GgmlType from = static_cast<GgmlType>(t.ggml_type);
    GgmlType to = from;
    bool fell_back = false;
    if (allows_quantization(t)) {
      to = pt.type;
      bool manual = false;
      for (const auto& o : overrides)
        if (std::regex_search(t.name, o.re)) {
          to = o.type;
          manual = true;
          break;
        }
      if (!manual && !opt.pure && is_quantized(pt.type)) to = mix_type(mix, to, t, category(t.name));
      const GgmlType fb = is_quantized(to) ? fallback(to, t.ne[0]) : to;
      if (fb != to) {
        to = fb;
        fell_back = true;
        ++n_fallback;
      }
      if (to != from && !tensor::can_dequantize(from))
        throw input_error(fmt::format("tensor {}: type {} cannot be converted (loom reads F32, F16, BF16, Q4_0, Q4_1, "
                                      "Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
                                      t.name, kernels::type_name(from) ? kernels::type_name(from) : "?"),
                          opt.input);
    }
    Plan p{&t, from, to, f.tensor_bytes(t), type_bytes(to, t.n_elements()), fell_back, {}};
    if (to != from && quant::takes_importance(to)) {
      p.importance = imatrix.importance(t.name);
      // llama-quantize refuses a matrix whose entry has another width (but not for token_embd,
      // which an imatrix never covers)
      if (!p.importance.empty() && p.importance.size() != t.ne[0] && t.name != "token_embd.weight")
        throw input_error(fmt::format("the importance matrix has {} columns for {}, which has {}", p.importance.size(),
                                      t.name, t.ne[0]),
                          opt.imatrix);
      if (p.importance.size() != t.ne[0]) p.importance.clear();
      if (n_dims(t) > 2) p.importance.clear();  // expert tensors: one matrix per expert, not read
    }
    plan.push_back(std::move(p));
  }
  if (!opt.imatrix.empty()) {
    size_t weighted = 0, quantized = 0;
    for (const Plan& p : plan)
      if (p.to != p.from && quant::takes_importance(p.to)) {
        ++quantized;
        weighted += !p.importance.empty();
      }
    if (weighted < quantized)
      tool.warn("{} of {} tensors quantized to a weighted type have no entry in {} and are quantized without weights",
                quantized - weighted, quantized, opt.imatrix);
  }

  if (n_fallback)
    tool.warn("{} of {} tensors have rows that are not whole blocks of their type and fell back as llama.cpp does "
              "(\"fallback\" in the report)",
              n_fallback, plan.size());
  if (opt.dry_run) {
    tool.out().write(report(opt, pt, plan, true));
    return;
  }

  gguf::Writer w(f.alignment());
  for (const auto& [key, v] : f.metadata()) {
    if (key == "general.quantization_version" || key == "general.file_type" || key == "split.no" ||
        key == "split.count" || key == "split.tensors.count" ||
        (!opt.imatrix.empty() && key.starts_with("quantize.imatrix.")))  // set again below, at the end
      continue;
    w.set(key, v);
  }
  w.set("general.quantization_version", gguf::u32(2));
  w.set("general.file_type", gguf::u32(pt.ftype));
  if (!opt.imatrix.empty()) {  // as llama-quantize records the matrix it used (strings cut at 127 bytes)
    w.set_string("quantize.imatrix.file", opt.imatrix.substr(0, 127));
    if (!imatrix.datasets.empty()) w.set_string("quantize.imatrix.dataset", imatrix.datasets[0].substr(0, 127));
    w.set("quantize.imatrix.entries_count", gguf::u32(static_cast<uint32_t>(imatrix.entries.size())));
    if (imatrix.chunk_count > 0) w.set("quantize.imatrix.chunks_count", gguf::u32(imatrix.chunk_count));
  }

  // The tensors are converted one at a time as the file is written: memory holds one of them.
  for (const Plan& p : plan) w.add_tensor_info(p.t->name, p.t->ne, static_cast<uint32_t>(p.to));
  ThreadPool pool(tool.common().threads);
  std::string out;
  w.write(opt.output, [&](size_t i) -> std::string_view {
    const Plan& p = plan[i];
    std::string_view src = f.tensor_data(*p.t);
    if (p.from == p.to) return src;
    const uint64_t ncols = p.t->ne[0];
    const uint64_t nrows = p.t->n_elements() / ncols;
    const uint64_t src_row = type_bytes(p.from, ncols), dst_row = type_bytes(p.to, ncols);
    out.resize(p.bytes_after);
    const uint64_t per_task = std::max<uint64_t>(1, (uint64_t{1} << 16) / ncols);
    const size_t tasks = (nrows + per_task - 1) / per_task;
    pool.for_each(tasks, [&](size_t k) {
      thread_local std::vector<float> row;
      row.resize(ncols);
      const uint64_t r0 = k * per_task, r1 = std::min(nrows, r0 + per_task);
      for (uint64_t r = r0; r < r1; ++r) {
        tensor::dequantize_row(p.from, src.data() + r * src_row, row.data(), ncols);
        quant::quantize_rows(p.to, row.data(), out.data() + r * dst_row, 1, ncols,
                             p.importance.empty() ? nullptr : p.importance.data());
      }
    });
    return out;
  });
  std::string r = report(opt, pt, plan, false);
  if (!opt.eval_file.empty()) r.insert(r.size() - 2, "," + evaluate(tool, opt, text));  // before the final "}\n"
  tool.out().write(r);
}

// `loom quantize imatrix`: collects an importance matrix (lib/quant/imatrix.h), as llama-imatrix.
struct ImatrixCmd {
  std::string model, data, output = "imatrix.gguf";
  uint32_t ctx = 512;
  int chunks = -1;
  bool process_output = false;
};

void run_imatrix(cli::Tool& tool, const ImatrixCmd& opt) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (a .gguf file or a model name)");
  if (opt.data.empty()) throw usage_error("--data is required (the calibration text; '-' = stdin)");
  if (opt.output == "-" || std::string_view(opt.output).ends_with(".zst"))
    throw usage_error(fmt::format("-o {}: the matrix is a GGUF file, written as it is (not to stdout, not compressed)",
                                  opt.output));
  const std::string path = model::find_gguf(opt.model);
  const std::string where = opt.data == "-" ? "<stdin>" : opt.data;
  std::string text = io::read_all(*io::Input::open(opt.data));
  if (!text.empty() && text.back() == '\n') text.pop_back();  // as llama-imatrix -f
  if (!json::valid_utf8(text)) throw input_error(fmt::format("not UTF-8 (byte {})", json::first_invalid_utf8(text)), where);
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*file, path);
  cli::Progress progress(tool, "imatrix");
  quant::Imatrix m;
  try {
    m = quant::collect_imatrix(file, tokenizer, text,
                               {.n_ctx = opt.ctx, .chunks = opt.chunks, .threads = tool.common().threads,
                                .process_output = opt.process_output},
                               [&](size_t done, size_t total) {
                                 progress.tick([&] { return fmt::format("chunk {}/{}", done, total); });
                               });
  } catch (Error& e) {
    if (e.kind() == Error::Kind::BadInput) e.at(where);
    throw;
  }
  progress.done();
  m.datasets.push_back(opt.data);
  quant::write_imatrix(m, opt.output);
  std::string j = "{\"imatrix\":";
  json::append_string(j, opt.output);
  j += ",\"model\":";
  json::append_string(j, path);
  j += ",\"data\":";
  json::append_string(j, opt.data);
  j += fmt::format(",\"chunks\":{},\"chunk_size\":{},\"entries\":{}}}\n", m.chunk_count, m.chunk_size, m.entries.size());
  tool.out().write(j);
}

int imatrix_main(int argc, char** argv) {
  cli::Tool tool("quantize imatrix",
                 "Collect an importance matrix for --imatrix: the mean squared input activation of every column of\n"
                 "every weight matrix of MODEL over a calibration text, as llama-imatrix collects it (its GGUF format).\n\n"
                 "The text is cut into chunks of --ctx tokens (it must hold two), each run from position 0 with BOS first;\n"
                 "the weights of the transformer blocks (blk.*) are collected, output.weight with --process-output.\n"
                 "Prints a JSON summary on stdout.");
  ImatrixCmd opt;
  auto& app = tool.app();
  app.add_option("-m,--model", opt.model, "Model: a .gguf file or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("--data", opt.data, "The calibration text ('-' = stdin; one final newline dropped)")->type_name("FILE");
  app.add_option("-o,--output", opt.output, "The matrix to write (GGUF, atomically)")->type_name("FILE")->default_str(opt.output);
  app.add_option("-c,--ctx", opt.ctx, "Tokens per chunk")->type_name("N")->default_str("512");
  app.add_option("--chunks", opt.chunks, "Process at most N chunks (-1: all)")->type_name("N")->default_str("-1");
  app.add_flag("--process-output", opt.process_output, "Also collect output.weight (llama-imatrix --process-output)");
  return tool.run(argc, argv, [&] { run_imatrix(tool, opt); });
}

int quantize_main(int argc, char** argv) {
  cli::Tool tool("quantize",
                 "Convert a GGUF model's weights to another tensor type.\n\n"
                 "As llama-quantize does: every weight matrix gets TYPE's default tensor type (or the type of the first\n"
                 "--tensor-type pattern its name matches), and without --pure llama.cpp's mix rules raise some of them\n"
                 "(output.weight, or tied token embeddings, to Q6_K; for the K mixes attn_v and ffn_down of some layers).\n"
                 "Norms, biases and other 1-D tensors keep their type. A matrix whose rows are not a whole number of its\n"
                 "type's blocks falls back as llama.cpp does (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, else F16). The\n"
                 "quantized bytes are identical to llama.cpp's, with or without an importance matrix (--imatrix; collect\n"
                 "one with `loom quantize imatrix`). Prints a JSON report (per tensor:\n"
                 "name, shape, from, to, bytes; totals and bits per weight) on stdout.\n"
                 "Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M (Q4_K), Q5_K_S, Q5_K_M (Q5_K), Q6_K.\n"
                 "With --eval FILE, IN and OUT are then both run on the text (llama-perplexity's windows) and the report\n"
                 "gets \"eval\": perplexity before and after, mean KL divergence of OUT's next-token distributions from\n"
                 "IN's and top-1 agreement.\n"
                 "The mixes on Q2_K / Q3_K and the IQ types are not implemented.\n\n"
                 "usage: loom quantize IN OUT --type TYPE [options]\n"
                 "       loom quantize imatrix -m MODEL --data TEXT [-o imatrix.gguf]   (loom quantize imatrix --help)");
  Options opt;
  auto& app = tool.app();
  app.add_option("input", opt.input, "The GGUF model to convert (with --from-hf: not given, the one positional is OUT)")
      ->type_name("IN.gguf");
  app.add_option("output", opt.output, "The GGUF file to write (atomically: a temporary name renamed into place)")
      ->type_name("OUT.gguf");
  app.add_option("--type", opt.type, "The file type (llama-quantize's names, any case): " + names(kFileTypes))
      ->type_name("TYPE")
      ->required();
  app.add_flag("--pure", opt.pure,
               "Every weight matrix in TYPE's tensor type (Q4_K for Q4_K_S and Q4_K_M ...), without the mix rules, "
               "as llama-quantize --pure");
  app.add_option("--tensor-type", opt.tensor_types,
                 "A tensor type (" + names(kTypes) +
                     ") for the tensors whose name matches REGEX (searched, lower-cased as llama-quantize does); "
                     "repeatable, the first match wins, the mix rules do not apply to them (unlike llama-quantize, "
                     "also with --type F32, F16 or BF16)")
      ->type_name("REGEX=TYPE")
      ->default_str("");
  app.add_flag("--dry-run", opt.dry_run, "Print the plan (the same JSON report) and write nothing");
  app.add_option("--eval", opt.eval_file,
                 "After writing OUT, run IN and OUT on this text ('-' = stdin; one final newline dropped) with "
                 "llama-perplexity's windows and add \"eval\" to the report: both perplexities, their ratio, and the "
                 "mean and largest KL divergence of OUT's next-token distributions from IN's, and how often their top "
                 "tokens agree")
      ->type_name("FILE");
  app.add_option("--eval-ctx", opt.eval_ctx, "The --eval window in tokens (the text needs at least twice as many)")
      ->type_name("N");
  app.add_option("--eval-chunks", opt.eval_chunks, "Evaluate at most N windows (-1: all)")->type_name("N");
  app.add_option("--from-hf", opt.from_hf,
                 "Convert this Hugging Face folder (config.json, model.safetensors or its shards, tokenizer.json; "
                 "llama, qwen2, qwen3, gemma3, bert) instead of reading IN: the GGUF llama.cpp's convert_hf_to_gguf.py "
                 "writes for that float type (F32 for the quantized types), then quantized to TYPE as that file would be")
      ->type_name("DIR");
  app.add_option("--imatrix", opt.imatrix,
                 "Weigh the quantization error by this importance matrix (loom quantize imatrix, or llama-imatrix's "
                 "GGUF output), as llama-quantize --imatrix: Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K tensors with "
                 "an entry are quantized weighted")
      ->type_name("FILE");
  return tool.run(argc, argv, [&] { run(tool, opt); });
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view first = argc > 1 ? argv[1] : "";
  if (first == "imatrix") return imatrix_main(argc - 1, argv + 1);
  if (first == "--help-man") {  // both option tables, for the man page
    std::printf(".SS loom quantize IN OUT\n");
    std::fflush(stdout);
    quantize_main(argc, argv);
    std::printf(".SS loom quantize imatrix\n");
    std::fflush(stdout);
    return imatrix_main(argc, argv);
  }
  return quantize_main(argc, argv);
}
