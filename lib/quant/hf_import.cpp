// Hugging Face folder → GGUF as llama.cpp's convert_hf_to_gguf.py writes it (see hf_import.h for
// what is covered and where loom decides differently).
//
// The file is built in four steps, each mirroring one stage of the converter:
//   1. hparams     config.json, with the transformers class defaults the converter sees through
//                  AutoConfig for the keys it writes;
//   2. tensors     every shard's tensors (shards in sorted order, names sorted within each), mapped
//                  to GGUF names, shapes checked against the config, types chosen;
//   3. metadata    general.*, the architecture's keys, then the vocabulary (tokenizer.ggml.*) and
//                  the special tokens as gguf-py's SpecialVocab reads them;
//   4. write       gguf::Writer streams the tensors, converting each one when the file reaches it.
#include "loom/quant/hf_import.h"

#include <sentencepiece_processor.h>
#include <simdjson.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numbers>
#include <regex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/core/sha256.h"
#include "loom/gguf/writer.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"
#include "loom/tensor/safetensors.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::quant {

namespace {

namespace fs = std::filesystem;
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

// ---- JSON files -----------------------------------------------------------------------------------

class Json {
 public:
  explicit Json(const fs::path& p) : name_(p.string()), parser_(std::make_unique<simdjson::dom::parser>()) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw usage_error(fmt::format("{}: cannot read", name_));
    std::stringstream ss;
    ss << in.rdbuf();
    text_ = simdjson::padded_string(ss.str());
    if (auto err = parser_->parse(text_).get(root_)) throw input_error(fmt::format("not valid JSON: {}", simdjson::error_message(err)), name_);
  }
  element root() const { return root_; }
  const std::string& name() const { return name_; }
  Error bad(const std::string& what) const { return input_error(what, name_); }

 private:
  std::string name_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::padded_string text_;
  element root_;
};

std::optional<element> field(element o, std::string_view key) {
  if (!o.is_object()) return std::nullopt;
  element v;
  if (o[key].get(v) || v.is_null()) return std::nullopt;
  return v;
}
std::optional<std::string> str_field(element o, std::string_view key) {
  auto v = field(o, key);
  std::string_view s;
  if (!v || v->get(s)) return std::nullopt;
  return std::string(s);
}
// An integer (JSON integers only; a bool is not one).
std::optional<int64_t> int_field(element o, std::string_view key) {
  auto v = field(o, key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64().value();
  if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64().value());
  return std::nullopt;
}
std::optional<double> num_field(element o, std::string_view key) {
  auto v = field(o, key);
  if (!v || !v->is_number()) return std::nullopt;
  double d;
  if (v->get(d)) return std::nullopt;
  return d;
}
std::optional<bool> bool_field(element o, std::string_view key) {
  auto v = field(o, key);
  bool b;
  if (!v || v->get(b)) return std::nullopt;
  return b;
}

// ---- step 1: hparams ------------------------------------------------------------------------------

enum class Arch { Llama, Qwen2, Qwen3, Gemma3, Bert };

struct ArchInfo {
  const char* hf;
  Arch arch;
  const char* name;
};
constexpr ArchInfo kArchs[] = {
    {"LlamaForCausalLM", Arch::Llama, "llama"},   {"Qwen2ForCausalLM", Arch::Qwen2, "qwen2"},
    {"Qwen3ForCausalLM", Arch::Qwen3, "qwen3"},   {"Gemma3ForCausalLM", Arch::Gemma3, "gemma3"},
    {"BertModel", Arch::Bert, "bert"},            {"BertForMaskedLM", Arch::Bert, "bert"},
};

// config.json's values as the converter sees them: the file, then (for the classes transformers
// 4.41 knows: llama, qwen2, bert) the class defaults AutoConfig fills in for the keys written.
class Hparams {
 public:
  Hparams(const Json& cfg, Arch arch) : cfg_(cfg) {
    // LlamaConfig / Qwen2Config / BertConfig defaults (transformers 4.41) of the keys the
    // converter writes; qwen3 and gemma3 configs are read as the file says (AutoConfig fails on
    // them there and the converter falls back to the raw config.json).
    switch (arch) {
      case Arch::Llama:
        defaults_ = {{"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}};
        break;
      case Arch::Qwen2:
        defaults_ = {{"max_position_embeddings", 32768}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                     {"num_key_value_heads", 32}};
        break;
      case Arch::Bert:
        defaults_ = {{"max_position_embeddings", 512}, {"layer_norm_eps", 1e-12}, {"type_vocab_size", 2}};
        break;
      default:
        break;
    }
    if ((arch == Arch::Llama) && !has("num_key_value_heads")) {
      if (auto h = integer("num_attention_heads")) defaults_["num_key_value_heads"] = static_cast<double>(*h);
    }
  }
  bool has(std::string_view k) const { return field(cfg_.root(), k).has_value() || defaults_.count(std::string(k)); }
  std::optional<int64_t> integer(std::string_view k) const {
    if (field(cfg_.root(), k)) {
      auto v = int_field(cfg_.root(), k);
      if (!v) throw cfg_.bad(fmt::format("\"{}\" is not an integer", k));
      return v;
    }
    auto it = defaults_.find(std::string(k));
    if (it != defaults_.end()) return static_cast<int64_t>(it->second);
    return std::nullopt;
  }
  std::optional<double> number(std::string_view k) const {
    if (field(cfg_.root(), k)) {
      auto v = num_field(cfg_.root(), k);
      if (!v) throw cfg_.bad(fmt::format("\"{}\" is not a number", k));
      return v;
    }
    auto it = defaults_.find(std::string(k));
    if (it != defaults_.end()) return it->second;
    return std::nullopt;
  }
  uint32_t need(std::string_view k) const {
    auto v = integer(k);
    if (!v || *v <= 0 || *v > (int64_t{1} << 31)) throw cfg_.bad(fmt::format("\"{}\" is missing or not a positive integer", k));
    return static_cast<uint32_t>(*v);
  }
  element root() const { return cfg_.root(); }
  const Json& json() const { return cfg_; }

 private:
  const Json& cfg_;
  std::map<std::string, double> defaults_;
};

// ---- step 2: tensors ------------------------------------------------------------------------------

enum class Op { None, PermuteQ, PermuteK, NormPlus1 };

struct Planned {
  std::string name;            // GGUF name
  std::vector<uint64_t> shape; // torch order (outermost first), after the converter's changes
  GgmlType type = GgmlType::F32;
  size_t shard = 0;
  const safetensors::Tensor* src = nullptr;  // null: generated (data below)
  Op op = Op::None;
  uint64_t keep_rows = 0;      // rows kept of the source (gemma3's embedding); 0: all
  std::vector<float> generated;
};

struct Dims {
  uint64_t V = 0, E = 0, F = 0, L = 0, H = 0, KV = 0, D = 0, P = 0, T = 0;
};

// HF name → GGUF name and the torch shape it must have; nullopt for a name the converter skips.
// Throws for a name loom does not know.
struct Mapped {
  std::string name;
  std::vector<uint64_t> shape;
  bool skip = false;
};

Mapped skipped() {
  Mapped m;
  m.skip = true;
  return m;
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<Mapped> map_decoder(Arch arch, const std::string& hf, const Dims& d) {
  const std::string_view n = hf;
  auto ends = [&](std::string_view s) { return n.size() >= s.size() && n.substr(n.size() - s.size()) == s; };
  if (ends(".rotary_emb.inv_freq") || ends(".attention.masked_bias") || ends(".attention.bias")) return skipped();
  if (n == "model.embed_tokens.weight") return Mapped{"token_embd.weight", {d.V, d.E}};
  if (n == "lm_head.weight") return Mapped{"output.weight", {d.V, d.E}};
  if (n == "model.norm.weight") return Mapped{"output_norm.weight", {d.E}};
  constexpr std::string_view kLayers = "model.layers.";
  if (n.substr(0, kLayers.size()) != kLayers) return std::nullopt;
  std::string_view rest = n.substr(kLayers.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || !is_digits(rest.substr(0, dot))) return std::nullopt;
  const std::string bid(rest.substr(0, dot));
  if (std::stoull(bid) >= d.L) return std::nullopt;
  std::string_view leaf = rest.substr(dot + 1);
  std::string_view suffix = leaf.size() > 5 && leaf.substr(leaf.size() - 5) == ".bias" ? ".bias" : ".weight";
  if (!(leaf.size() > suffix.size() && leaf.substr(leaf.size() - suffix.size()) == suffix)) return std::nullopt;
  std::string_view mod = leaf.substr(0, leaf.size() - suffix.size());
  const bool bias = suffix == ".bias";
  const bool gemma = arch == Arch::Gemma3;
  struct Row {
    std::string_view hf;
    const char* gguf;
    std::vector<uint64_t> shape;  // of the weight; a bias is its first dimension
  };
  const std::vector<Row> rows = {
      {"input_layernorm", "attn_norm", {d.E}},
      {"self_attn.q_proj", "attn_q", {d.H * d.D, d.E}},
      {"self_attn.k_proj", "attn_k", {d.KV * d.D, d.E}},
      {"self_attn.v_proj", "attn_v", {d.KV * d.D, d.E}},
      {"self_attn.o_proj", "attn_output", {d.E, d.H * d.D}},
      {"self_attn.q_norm", "attn_q_norm", {d.D}},
      {"self_attn.k_norm", "attn_k_norm", {d.D}},
      {"post_attention_layernorm", gemma ? "post_attention_norm" : "ffn_norm", {d.E}},
      {"pre_feedforward_layernorm", "ffn_norm", {d.E}},
      {"post_feedforward_layernorm", "post_ffw_norm", {d.E}},
      {"mlp.gate_proj", "ffn_gate", {d.F, d.E}},
      {"mlp.up_proj", "ffn_up", {d.F, d.E}},
      {"mlp.down_proj", "ffn_down", {d.E, d.F}},
  };
  for (const Row& r : rows) {
    if (r.hf != mod) continue;
    if (!gemma && (mod == "pre_feedforward_layernorm" || mod == "post_feedforward_layernorm")) return std::nullopt;
    if (bias && r.shape.size() == 1) return std::nullopt;  // norms have no bias here
    return Mapped{fmt::format("blk.{}.{}{}", bid, r.gguf, suffix), bias ? std::vector<uint64_t>{r.shape[0]} : r.shape};
  }
  return std::nullopt;
}

std::optional<Mapped> map_bert(std::string hf, const Dims& d) {
  // the converter's renames first: no "bert." prefix, gamma/beta as weight/bias
  if (hf.rfind("bert.", 0) == 0) hf = hf.substr(5);
  auto ends = [&](std::string_view s) { return hf.size() >= s.size() && std::string_view(hf).substr(hf.size() - s.size()) == s; };
  if (ends(".gamma")) hf = hf.substr(0, hf.size() - 6) + ".weight";
  if (ends(".beta")) hf = hf.substr(0, hf.size() - 5) + ".bias";
  if (hf == "embeddings.position_ids" || hf == "pooler.dense.weight" || hf == "pooler.dense.bias" || hf.rfind("cls.predictions", 0) == 0 ||
      hf.rfind("cls.seq_relationship", 0) == 0)
    return skipped();
  if (ends(".attention.masked_bias") || ends(".attention.bias") || ends(".rotary_emb.inv_freq")) return skipped();
  if (hf == "embeddings.word_embeddings.weight") return Mapped{"token_embd.weight", {d.V, d.E}};
  if (hf == "embeddings.position_embeddings.weight") return Mapped{"position_embd.weight", {d.P, d.E}};
  if (hf == "embeddings.token_type_embeddings.weight") return Mapped{"token_types.weight", {d.T, d.E}};
  if (hf == "embeddings.LayerNorm.weight") return Mapped{"token_embd_norm.weight", {d.E}};
  if (hf == "embeddings.LayerNorm.bias") return Mapped{"token_embd_norm.bias", {d.E}};
  constexpr std::string_view kLayers = "encoder.layer.";
  std::string_view n = hf;
  if (n.substr(0, kLayers.size()) != kLayers) return std::nullopt;
  std::string_view rest = n.substr(kLayers.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || !is_digits(rest.substr(0, dot))) return std::nullopt;
  const std::string bid(rest.substr(0, dot));
  if (std::stoull(bid) >= d.L) return std::nullopt;
  std::string_view leaf = rest.substr(dot + 1);
  const bool bias = leaf.size() > 5 && leaf.substr(leaf.size() - 5) == ".bias";
  std::string_view suffix = bias ? ".bias" : ".weight";
  if (!(leaf.size() > suffix.size() && leaf.substr(leaf.size() - suffix.size()) == suffix)) return std::nullopt;
  std::string_view mod = leaf.substr(0, leaf.size() - suffix.size());
  struct Row {
    std::string_view hf;
    const char* gguf;
    std::vector<uint64_t> shape;
  };
  const std::vector<Row> rows = {
      {"attention.self.query", "attn_q", {d.E, d.E}},     {"attention.self.key", "attn_k", {d.E, d.E}},
      {"attention.self.value", "attn_v", {d.E, d.E}},     {"attention.output.dense", "attn_output", {d.E, d.E}},
      {"attention.output.LayerNorm", "attn_output_norm", {d.E}},
      {"intermediate.dense", "ffn_up", {d.F, d.E}},       {"output.dense", "ffn_down", {d.E, d.F}},
      {"output.LayerNorm", "layer_output_norm", {d.E}},
  };
  for (const Row& r : rows) {
    if (r.hf != mod) continue;
    return Mapped{fmt::format("blk.{}.{}{}", bid, r.gguf, suffix), bias ? std::vector<uint64_t>{r.shape[0]} : r.shape};
  }
  return std::nullopt;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The converter's choice of type for a tensor it writes (prepare_tensors).
GgmlType choose_type(const std::string& name, size_t n_dims, GgmlType wtype) {
  auto ends = [&](std::string_view s) { return name.size() >= s.size() && std::string_view(name).substr(name.size() - s.size()) == s; };
  if (n_dims <= 1 || ends("_norm.weight")) return GgmlType::F32;
  if (name == "position_embd.weight" || name == "token_types.weight") return GgmlType::F32;
  if (!ends(".weight")) return GgmlType::F32;
  return wtype;
}

// ---- step 3: vocabulary ---------------------------------------------------------------------------

// Token types (llama.cpp's llama_token_type).
constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

bool looks_special(std::string_view t) {
  auto starts = [&](std::string_view s) { return t.substr(0, s.size()) == s; };
  auto ends = [&](std::string_view s) { return t.size() >= s.size() && t.substr(t.size() - s.size()) == s; };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // <｜ ... ｜>
  if (starts("<unused") && ends(">")) return true;
  return false;
}

// A tokenizer_config.json special-token entry: absent/null, a string, or {"content": ...}.
// A user-defined token's text with each U+2581 (the metaspace) back as a space, as the converter
// writes pre-normalized added tokens.
std::string spaces_for_metaspace(std::string_view tok) {
  std::string out;
  for (size_t p = 0; p < tok.size();) {
    if (tok.compare(p, 3, "\xe2\x96\x81") == 0) {
      out += ' ';
      p += 3;
    } else {
      out += tok[p++];
    }
  }
  return out;
}

struct TokEntry {
  enum Kind { None, Str, Dict } kind = None;
  std::string s;  // the string, or the dict's content (empty when it has none)
  bool truthy() const { return kind == Dict || (kind == Str && !s.empty()); }
  bool is(const std::optional<std::string>& v) const { return v && kind == Str && s == *v; }
  static TokEntry of(const std::string& v) { return {Str, v}; }
};

TokEntry tok_entry(element tc, std::string_view key) {
  auto v = field(tc, key);
  if (!v) return {};
  std::string_view s;
  if (!v->get(s)) return {TokEntry::Str, std::string(s)};
  if (v->is_object()) {
    TokEntry e{TokEntry::Dict, {}};
    if (auto c = str_field(*v, "content")) e.s = *c;
    else e.kind = TokEntry::Dict, e.s.clear();
    return e;
  }
  return {};
}

// An insertion-ordered map of small string keys (Python dict semantics for the few keys here).
template <class V>
struct Ordered {
  std::vector<std::pair<std::string, V>> items;
  V* find(const std::string& k) {
    for (auto& [key, v] : items)
      if (key == k) return &v;
    return nullptr;
  }
  void set(const std::string& k, V v) {
    if (V* p = find(k)) *p = v;
    else items.emplace_back(k, v);
  }
  void setdefault(const std::string& k, V v) {
    if (!find(k)) items.emplace_back(k, v);
  }
};

struct AddedTok {
  int64_t id;
  std::string content;
  bool special;
};

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  std::string pre;
  std::vector<float> scores;  // SentencePiece vocabularies only
  std::string model_type;     // tokenizer.json model.type
  uint64_t n_real = 0;     // model vocab + added tokens (gemma3's embedding rows)
};

// The converter's check text (get_vocab_base_pre's chktxt): its tokens, hashed, name the
// pre-tokenizer.
constexpr std::string_view kCheckText = "\x0a \x0a\x0a \x0a\x0a\x0a \x09 \x09\x09 \x09\x0a  \x0a   \x0a    \x0a     \x0a\xf0\x9f\x9a\x80 (normal) \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f (multiple emojis concatenated) \xe2\x9c\x85 \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b\xe1\x9e\x8f\xe1\x9f\x82\xe1\x9e\x96\xe1\x9e\xb7\xe1\x9e\x9f\xe1\x9f\x81\xe1\x9e\x9f\xe1\x9e\xa2\xe1\x9e\xb6\xe1\x9e\x85\xf0\x9f\x98\x81 ?\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8""apple\xe5\xb7\xa5\xe4\xbd\x9c""1314151\xe5\xa4\xa9\xef\xbd\x9e ------======= \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd\xd0\xb0 \xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81\xd0\xba\xd0\xb8 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

// The converter's table of hashes, for the pre-tokenizers loom's GGUF vocabulary reader knows and
// the BERT vocabularies (when a hash is listed twice, the converter's last name wins; that is the
// one given here). Source of each: the model the converter's table cites.
struct KnownHash {
  const char* sha256;
  const char* pre;
};
constexpr KnownHash kKnownHashes[] = {
    {"0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"},         // Meta-Llama-3-8B
    {"c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d", "smaug-bpe"},         // Smaug-Llama-3-70B
    {"9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e", "falcon3"},           // Falcon3-7B-Base
    {"a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e", "dbrx"},              // dbrx-base
    {"e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"},             // Qwen1.5-7B
    {"d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"},             // Qwen3-Embedding-0.6B
    {"b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen"},  // DeepSeek-R1-Distill-Qwen
    {"32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3", "stablelm2"},         // stablelm-2-zephyr-1_6b
    {"855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm"},            // SmolLM-135M
    {"35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34", "starcoder"},         // starcoder2-3b
    {"6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff", "refact"},            // Refact-1_6-base
    {"7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f", "codeshell"},         // CodeShell-7B
    {"9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8", "command-r"},         // c4ai-command-r-v01
    {"3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"},             // gpt2
    {"0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"},             // ruGPT3XL
    {"fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085", "phi-2"},             // phi-2
    {"b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo"},              // mpt-7b, OLMo-1.7-7B
    {"0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "jina-v2-en"},        // bge-small-en-v1.5, jina-v2-base-en
    {"8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7", "bert-bge-large"},    // bge-large-zh-v1.5
    {"c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448", "jina-v1-en"},        // jina-reranker-v1-tiny-en
    {"171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643", "jina-v2-es"},        // jina-embeddings-v2-base-es
    {"27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6", "jina-v2-de"},        // jina-embeddings-v2-base-de
    {"b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df", "jina-v2-de"},        // German_Semantic_V3
    {"7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a", "jina-v2-code"},      // jina-embeddings-v2-base-code
};

// What the converter would name the BPE pre-tokenizer (see hf_import.h: by structure).
std::string pre_by_structure(const Json& tj) {
  element root = tj.root();
  auto model = field(root, "model");
  auto type = model ? str_field(*model, "type") : std::nullopt;
  if (type && *type == "WordPiece") return "default";
  static const std::string kLlama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static const std::string kQwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  std::vector<element> parts;
  if (auto pre = field(root, "pre_tokenizer")) {
    array arr;
    if (auto seq = field(*pre, "pretokenizers"); seq && !seq->get(arr)) {
      for (element p : arr) parts.push_back(p);
    } else {
      parts.push_back(*pre);
    }
  }
  bool digits_individual = false, byte_level_regex = false;
  for (element p : parts) {
    auto t = str_field(p, "type");
    if (!t) continue;
    if (*t == "Split") {
      auto pat = field(p, "pattern");
      auto rx = pat ? str_field(*pat, "Regex") : std::nullopt;
      if (rx && *rx == kLlama3) return "llama-bpe";
      if (rx && *rx == kQwen2) return "qwen2";
    } else if (*t == "Digits") {
      digits_individual = bool_field(p, "individual_digits").value_or(false);
    } else if (*t == "ByteLevel") {
      byte_level_regex = bool_field(p, "use_regex").value_or(true);
    }
  }
  if (parts.size() == 2 && digits_individual && byte_level_regex) return "smollm";
  if (parts.size() == 1 && byte_level_regex) return "gpt-2";
  throw tj.bad("the BPE pre-tokenizer is not one loom can name for llama.cpp (supported: the Llama 3 and Qwen2 Split regexes, "
               "Digits + ByteLevel as SmolLM's, a lone ByteLevel as GPT-2's)");
}

// tokenizer.ggml.pre: the converter's name when the check text's tokens (loom's tokenizer on
// tokenizer.json, special tokens added as transformers' encode() adds them) hash to one in its
// table; otherwise the name by structure.
std::string pre_name(const Json& tj) {
  try {
    const std::string h = tokenizer_check_hash(tj.name());
    for (const KnownHash& k : kKnownHashes)
      if (h == k.sha256) return k.pre;
  } catch (const Error&) {
    // a tokenizer.json loom cannot run: named by structure, or refused there
  }
  return pre_by_structure(tj);
}

Vocab read_vocab(const Json& tj, uint64_t vocab_size, bool bert) {
  Vocab v;
  element root = tj.root();
  auto model = field(root, "model");
  if (!model) throw tj.bad("no \"model\" object");
  auto type = str_field(*model, "type");
  if (!type || (*type != "BPE" && *type != "WordPiece"))
    throw tj.bad(fmt::format("model type \"{}\" is not one loom imports (BPE, WordPiece)", type.value_or("")));
  if (bert && *type != "WordPiece") throw tj.bad("a bert model needs a WordPiece tokenizer");
  if (!bert && *type != "BPE") throw tj.bad("a decoder needs a BPE tokenizer.json");
  v.model_type = *type;
  object vocab;
  auto vf = field(*model, "vocab");
  if (!vf || vf->get(vocab)) throw tj.bad("model.vocab is not an object of token → id");
  std::map<int64_t, std::string> by_id;
  uint64_t n_model = 0;
  for (auto [k, val] : vocab) {
    int64_t id;
    if (val.get(id) || id < 0) throw tj.bad(fmt::format("model.vocab: the id of \"{}\" is not a non-negative integer", std::string(k)));
    by_id[id] = std::string(k);
    ++n_model;
  }
  std::vector<AddedTok> added;
  std::set<std::string> added_contents;
  if (auto at = field(root, "added_tokens")) {
    array arr;
    if (at->get(arr)) throw tj.bad("added_tokens is not an array");
    for (element a : arr) {
      auto id = int_field(a, "id");
      auto content = str_field(a, "content");
      if (!id || !content || *id < 0) throw tj.bad("an added token without an id or content");
      added.push_back({*id, *content, bool_field(a, "special").value_or(false)});
      by_id[*id] = *content;
      added_contents.insert(*content);
    }
  }
  v.n_real = n_model + added.size();
  if (!by_id.empty() && static_cast<uint64_t>(by_id.rbegin()->first) >= vocab_size)
    throw tj.bad(fmt::format("token id {} is not below config.json's vocab_size {}", by_id.rbegin()->first, vocab_size));
  std::map<int64_t, const AddedTok*> added_by_id;
  for (const AddedTok& a : added) added_by_id[a.id] = &a;
  v.tokens.reserve(vocab_size);
  v.types.reserve(vocab_size);
  for (uint64_t i = 0; i < vocab_size; ++i) {
    auto it = by_id.find(static_cast<int64_t>(i));
    if (it == by_id.end()) {
      v.tokens.push_back(fmt::format("[PAD{}]", i));
      v.types.push_back(kUnused);
      continue;
    }
    std::string tok = it->second;
    int32_t type_id = kNormal;
    if (added_contents.count(tok)) {
      auto a = added_by_id.find(static_cast<int64_t>(i));
      const bool special = a != added_by_id.end() && a->second->special;
      if (special || looks_special(tok)) {
        type_id = kControl;
      } else {
        tok = spaces_for_metaspace(tok);  // pre-normalized user-defined spaces, as the converter writes them
        type_id = kUserDefined;
      }
    }
    v.tokens.push_back(std::move(tok));
    v.types.push_back(type_id);
  }
  if (bert) {  // WordPiece as llama.cpp's phantom-space vocabulary
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.types[i] == kControl) continue;
      std::string& t = v.tokens[i];
      t = t.rfind("##", 0) == 0 ? t.substr(2) : "\xe2\x96\x81" + t;
    }
  }
  if (!bert) {
    if (auto m = field(*model, "merges")) {
      array arr;
      if (m->get(arr)) throw tj.bad("model.merges is not an array");
      for (element e : arr) {
        std::string_view s;
        if (!e.get(s)) {
          v.merges.emplace_back(s);
          continue;
        }
        array pair;
        if (e.get(pair) || pair.size() != 2) throw tj.bad("a merge is neither \"a b\" nor [\"a\", \"b\"]");
        std::string joined;
        for (element part : pair) {
          std::string_view ps;
          if (part.get(ps)) throw tj.bad("a merge part is not a string");
          if (!joined.empty()) joined += ' ';
          for (char c : ps) {
            if (c == ' ') joined += "\xc4\xa0";  // a space inside a part: U+0120, as the converter encodes it
            else joined += c;
          }
        }
        v.merges.push_back(std::move(joined));
      }
    }
  }
  v.pre = pre_name(tj);
  return v;
}

// A SentencePiece tokenizer.model as the converter reads it (_create_vocab_sentencepiece): every
// piece with its score and type, then added_tokens.json and tokenizer_config.json's
// added_tokens_decoder over them; ids up to config.json's vocab_size ([PADi] where nothing is).
Vocab read_spm_vocab(const fs::path& dir, uint64_t vocab_size, const Json* tc) {
  constexpr int32_t kUnknown = 2, kByte = 6;
  const std::string path = (dir / "tokenizer.model").string();
  sentencepiece::SentencePieceProcessor sp;
  if (auto st = sp.Load(path); !st.ok()) throw input_error(fmt::format("not a SentencePiece model: {}", st.ToString()), path);
  Vocab v;
  v.model_type = "SentencePiece";
  v.pre = "default";
  v.tokens.resize(vocab_size);
  for (uint64_t i = 0; i < vocab_size; ++i) v.tokens[i] = fmt::format("[PAD{}]", i);
  v.scores.assign(vocab_size, -10000.0f);
  v.types.assign(vocab_size, kUnused);
  const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(sp.GetPieceSize()), vocab_size);
  for (uint64_t i = 0; i < n; ++i) {
    const int id = static_cast<int>(i);
    v.tokens[i] = sp.IdToPiece(id);
    v.scores[i] = sp.GetScore(id);
    v.types[i] = sp.IsUnknown(id) ? kUnknown : sp.IsControl(id) ? kControl : sp.IsUnused(id) ? kUnused : sp.IsByte(id) ? kByte : kNormal;
  }
  if (fs::is_regular_file(dir / "added_tokens.json")) {
    Json at(dir / "added_tokens.json");
    object o;
    if (at.root().get(o)) throw at.bad("not an object of token → id");
    for (auto [k, val] : o) {
      int64_t id;
      if (val.get(id) || id < 0) throw at.bad(fmt::format("the id of \"{}\" is not a non-negative integer", std::string(k)));
      if (static_cast<uint64_t>(id) >= vocab_size) continue;
      v.tokens[id] = std::string(k);
      v.scores[id] = -1000.0f;
      v.types[id] = kUserDefined;
    }
  }
  if (tc) {
    if (auto atd = field(tc->root(), "added_tokens_decoder")) {
      object o;
      if (atd->get(o)) throw tc->bad("added_tokens_decoder is not an object");
      for (auto [k, val] : o) {
        std::string key(k);
        if (!is_digits(key) || key.size() > 12) throw tc->bad(fmt::format("added_tokens_decoder: \"{}\" is not a token id", key));
        const uint64_t id = std::stoull(key);
        auto content = str_field(val, "content");
        if (!content) throw tc->bad(fmt::format("added_tokens_decoder: token {} has no content", key));
        if (id >= vocab_size) continue;
        std::string tok = *content;
        if (bool_field(val, "special").value_or(false) || looks_special(tok)) {
          v.types[id] = kControl;
        } else {
          tok = spaces_for_metaspace(tok);
          v.types[id] = kUserDefined;
        }
        v.scores[id] = -1000.0f;
        v.tokens[id] = tok;
      }
    }
  }
  v.n_real = vocab_size;
  return v;
}

// gguf-py's SpecialVocab: special token ids, add_*_token flags, chat template, normalizer flags.
struct Specials {
  Ordered<int64_t> ids;
  Ordered<bool> add;
  std::optional<std::string> chat_template;
  std::vector<std::pair<std::string, std::string>> named_templates;  // a list-valued chat_template
  bool template_list = false;
  std::optional<bool> lowercase, strip_accents;
};

void parse_normalizer(element n, Specials& s) {
  auto type = str_field(n, "type");
  if (!type) return;
  if (*type == "Lowercase") {
    s.lowercase = true;
  } else if (*type == "StripAccents") {
    s.strip_accents = true;
  } else if (*type == "BertNormalizer") {
    element v;
    if (!n["lowercase"].get(v)) s.lowercase = v.is_bool() ? std::optional<bool>(v.get_bool().value()) : std::nullopt;
    if (!n["strip_accents"].get(v)) s.strip_accents = v.is_bool() ? std::optional<bool>(v.get_bool().value()) : std::nullopt;
  } else if (*type == "Sequence") {
    array arr;
    if (auto ns = field(n, "normalizers"); ns && !ns->get(arr))
      for (element e : arr) parse_normalizer(e, s);
  }
}

std::optional<std::string> special_id_of(element item) {
  auto st = field(item, "SpecialToken");
  if (!st) return std::nullopt;
  auto id = str_field(*st, "id");
  if (id && id->empty()) return std::nullopt;
  return id;
}
std::optional<std::string> sequence_id_of(element item) {
  auto sq = field(item, "Sequence");
  return sq ? str_field(*sq, "id") : std::nullopt;
}

Specials read_specials(const fs::path& dir, const Json* tj, const Json* tc_json, const Json& cfg, std::optional<uint64_t> n_vocab) {
  Specials sp;
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  element root = tj ? tj->root() : element();
  if (auto n = tj ? field(root, "normalizer") : std::nullopt) parse_normalizer(*n, sp);
  std::vector<AddedTok> added;
  if (auto at = tj ? field(root, "added_tokens") : std::nullopt) {
    array arr;
    if (!at->get(arr))
      for (element a : arr) {
        auto id = int_field(a, "id");
        auto c = str_field(a, "content");
        if (id && c) added.push_back({*id, *c, false});
      }
  }
  // tokenizer_config.json's entries, updated as the converter updates its copy
  element tc;
  bool tc_truthy = false;
  if (tc_json) {
    tc = tc_json->root();
    object o;
    tc_truthy = !tc.get(o) && o.size() > 0;
  }
  std::map<std::string, TokEntry> entry;
  for (const char* t : {"bos", "eos", "unk", "sep", "pad", "cls", "mask"})
    entry[t] = tc_json ? tok_entry(tc, std::string(t) + "_token") : TokEntry{};
  TokEntry &bos = entry["bos"], &cls = entry["cls"], &eos = entry["eos"], &sep = entry["sep"];
  if (tj && !bos.truthy() && cls.truthy() && tc_truthy) bos = cls;
  if (tj && !eos.truthy() && sep.truthy() && tc_truthy) eos = sep;
  if (auto pp = tj ? field(root, "post_processor") : std::nullopt) {
    std::vector<element> procs;
    array arr;
    if (auto ps = field(*pp, "processors"); ps && !ps->get(arr)) {
      for (element p : arr) procs.push_back(p);
    } else {
      procs.push_back(*pp);
    }
    for (element proc : procs) {
      auto ptype = str_field(proc, "type").value_or("");
      if (ptype == "ByteLevel") {
        sp.add.setdefault("bos", false);
        sp.add.setdefault("eos", false);
      } else if (ptype == "RobertaProcessing") {
        sp.add.set("bos", true);
        sp.add.set("eos", true);
        sp.add.set("sep", true);
        auto first_of = [&](const char* key) -> std::optional<std::string> {
          array a;
          auto f = field(proc, key);
          if (!f || f->get(a) || a.size() == 0) return std::nullopt;
          std::string_view s;
          if (a.at(0).get(s)) return std::nullopt;
          return std::string(s);
        };
        if (!cls.truthy() && tc_truthy) {
          auto c = first_of("cls");
          cls = c ? TokEntry::of(*c) : bos;
        }
        if (!sep.truthy() && tc_truthy) {
          auto s = first_of("sep");
          sep = s ? TokEntry::of(*s) : eos;
        }
      } else if (ptype == "TemplateProcessing") {
        std::vector<element> single, pair;
        array a;
        if (auto f = field(proc, "single"); f && !f->get(a))
          for (element e : a) single.push_back(e);
        if (auto f = field(proc, "pair"); f && !f->get(a))
          for (element e : a) pair.push_back(e);
        std::optional<std::string> first, last;
        if (single.size() > 1) {
          first = special_id_of(single.front());
          if (first) {
            if (!tc_truthy) {
              bos = TokEntry::of(*first);
            } else if (!bos.is(first) && !cls.is(first)) {
              if (!bos.truthy()) bos = TokEntry::of(*first);
              if (!cls.truthy()) cls = TokEntry::of(*first);
            }
            sp.add.set("bos", bos.is(first) || cls.is(first));
          }
          last = special_id_of(single.back());
          if (last) {
            if (!tc_truthy) {
              eos = TokEntry::of(*last);
            } else if (!eos.is(last)) {
              if (std::find(types.begin(), types.end(), "eot") == types.end()) {
                types.push_back("eot");
                entry["eot"] = eos;
              } else if (std::find(types.begin(), types.end(), "eom") == types.end()) {
                types.push_back("eom");
                entry["eom"] = eos;
              }
              eos = TokEntry::of(*last);
            }
            sp.add.set("eos", eos.is(last));
          }
        }
        if (!pair.empty()) {
          size_t b = (first && special_id_of(pair.front()) == first) ? 1 : 0;
          size_t e = (last && special_id_of(pair.back()) == last) ? pair.size() - 1 : pair.size();
          if (b < e) {
            std::vector<element> mid(pair.begin() + b, pair.begin() + e);
            auto ta = sequence_id_of(mid.front()), tb = sequence_id_of(mid.back());
            if (ta == std::optional<std::string>("A") && tb == std::optional<std::string>("B") && mid.size() > 2) {
              std::vector<element> inner(mid.begin() + 1, mid.end() - 1);
              bool add_sep = false;
              if (auto s0 = special_id_of(inner[0]))
                if ((sep.is(s0) || eos.is(s0)) && !last) add_sep = true;
              if (inner.size() == 2)
                if (auto s1 = special_id_of(inner[1]))
                  if (sep.is(s1) || eos.is(s1)) add_sep = true;
              sp.add.set("sep", add_sep);
              if (add_sep && !sep.truthy() && tc_truthy) sep = eos;
            }
          }
        }
      }
    }
  }
  auto set_special = [&](const std::string& typ, int64_t id) {
    if (id < 0) throw input_error(fmt::format("invalid id {} for special token type {}", id, typ), (dir / "config.json").string());
    if (n_vocab && static_cast<uint64_t>(id) >= *n_vocab) return;
    if (sp.ids.find(typ)) return;
    sp.ids.set(typ, id);
  };
  if (tc_truthy) {
    // chat template: tokenizer_config.json's, else chat_template.jinja, else chat_template.json's
    std::optional<element> ct = field(tc, "chat_template");
    bool ct_key = false;
    {
      element tmp;
      ct_key = !tc["chat_template"].get(tmp);
    }
    std::unique_ptr<Json> alt_json;
    std::optional<std::string> alt;
    if (fs::is_regular_file(dir / "chat_template.jinja")) {
      std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      alt = ss.str();
    } else if (fs::is_regular_file(dir / "chat_template.json")) {
      alt_json = std::make_unique<Json>(dir / "chat_template.json");
      alt = str_field(alt_json->root(), "chat_template");
    }
    if (ct_key) {
      std::string_view s;
      array list;
      if (ct && !ct->get(s)) {
        sp.chat_template = std::string(s);
      } else if (ct && !ct->get(list)) {
        sp.template_list = true;
        for (element c : list) {
          auto name = str_field(c, "name").value_or("");
          auto tmpl = str_field(c, "template");
          for (char& ch : name)
            if (!std::isalnum(static_cast<unsigned char>(ch)) || static_cast<unsigned char>(ch) >= 0x80) ch = '_';
          if (!name.empty() && tmpl) sp.named_templates.emplace_back(name, *tmpl);
        }
      }
    } else if (alt) {
      sp.chat_template = alt;
    }
    for (const std::string& typ : types) {
      if (auto a = bool_field(tc, "add_" + typ + "_token")) sp.add.setdefault(typ, *a);
      const TokEntry& e = entry[typ];
      if (e.kind == TokEntry::None || (e.kind == TokEntry::Dict && e.s.empty())) continue;
      for (const AddedTok& a : added)
        if (a.content == e.s) {
          set_special(typ, a.id);
          break;
        }
    }
  }
  element croot = cfg.root();
  for (const std::string& typ : types) {
    auto id = int_field(croot, typ + "_token_id");
    if (!id) {
      if (auto text = field(croot, "text_config")) id = int_field(*text, typ + "_token_id");
    }
    if (id) set_special(typ, *id);
  }
  return sp;
}

void write_specials(gguf::Writer& w, const Specials& sp, const std::vector<std::string>& merges) {
  if (!merges.empty()) w.set_strings("tokenizer.ggml.merges", merges);
  static const std::map<std::string, std::string> kIdKeys = {
      {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
      {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
      {"pad", "tokenizer.ggml.padding_token_id"}, {"mask", "tokenizer.ggml.mask_token_id"},
      {"eot", "tokenizer.ggml.eot_token_id"},     {"eom", "tokenizer.ggml.eom_token_id"},
  };  // no key for cls: gguf-py has none and skips it
  for (const auto& [typ, id] : sp.ids.items) {
    auto it = kIdKeys.find(typ);
    if (it != kIdKeys.end()) w.set(it->second, gguf::u32(static_cast<uint32_t>(id)));
  }
  for (const auto& [typ, on] : sp.add.items)
    if (typ == "bos" || typ == "eos" || typ == "sep") w.set("tokenizer.ggml.add_" + typ + "_token", gguf::boolean(on));
  if (sp.template_list) {
    std::optional<std::string> def;
    std::vector<std::string> names;
    for (const auto& [name, tmpl] : sp.named_templates) {
      if (name == "default") {
        def = tmpl;
      } else {
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        w.set_string("tokenizer.chat_template." + name, tmpl);
      }
    }
    if (!names.empty()) w.set_strings("tokenizer.chat_templates", names);
    if (def) w.set_string("tokenizer.chat_template", *def);
  } else if (sp.chat_template) {
    w.set_string("tokenizer.chat_template", *sp.chat_template);
  }
  if (sp.lowercase) w.set("tokenizer.ggml.normalizer.lowercase", gguf::boolean(*sp.lowercase));
  if (sp.strip_accents) w.set("tokenizer.ggml.normalizer.strip_accents", gguf::boolean(*sp.strip_accents));
}

// sentence-transformers pooling (modules.json → its Pooling folder's config.json): 1 mean,
// 2 cls, 3 last token; nullopt without one.
std::optional<uint32_t> pooling_type(const fs::path& dir) {
  if (!fs::is_regular_file(dir / "modules.json")) return std::nullopt;
  Json mods(dir / "modules.json");
  array arr;
  if (mods.root().get(arr)) throw mods.bad("not an array of modules");
  for (element m : arr) {
    auto type = str_field(m, "type").value_or("");
    if (type.size() < 7 || type.substr(type.size() - 7) != "Pooling") continue;
    Json pc(dir / str_field(m, "path").value_or("") / "config.json");
    element r = pc.root();
    if (bool_field(r, "pooling_mode_mean_tokens").value_or(false)) return 1;
    if (bool_field(r, "pooling_mode_cls_token").value_or(false)) return 2;
    if (bool_field(r, "pooling_mode_lasttoken").value_or(false)) return 3;
    auto mode = str_field(r, "pooling_mode").value_or("");
    if (mode == "mean") return 1;
    if (mode == "cls") return 2;
    if (mode == "lasttoken") return 3;
    throw pc.bad("only mean, cls and last-token pooling can be written to a GGUF");
  }
  return std::nullopt;
}

// ---- general.* ------------------------------------------------------------------------------------

// Python's str.islower() and str.title() for ASCII words (other bytes are left alone).
bool py_islower(std::string_view w) {
  bool cased = false;
  for (char c : w) {
    if (c >= 'A' && c <= 'Z') return false;
    if (c >= 'a' && c <= 'z') cased = true;
  }
  return cased;
}
std::string py_title(std::string_view w) {
  std::string r;
  bool prev_letter = false;
  for (char c : w) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter) r += prev_letter ? static_cast<char>(std::tolower(c)) : static_cast<char>(std::toupper(c));
    else r += c;
    prev_letter = letter;
  }
  return r;
}
bool version_like(std::string_view w) {
  // ^(v\d+(?:\.\d+)*|\d.*)$
  if (!w.empty() && w[0] >= '0' && w[0] <= '9') return true;
  if (w.size() < 2 || w[0] != 'v') return false;
  bool need_digit = true;
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i] >= '0' && w[i] <= '9') {
      need_digit = false;
    } else if (w[i] == '.' && !need_digit) {
      need_digit = true;
    } else {
      return false;
    }
  }
  return !need_digit;
}
// gguf-py's Metadata.id_to_title.
std::string id_to_title(std::string s) {
  for (char& c : s)
    if (c == '-') c = ' ';
  std::istringstream in(s);
  std::string w, out;
  while (in >> w) {
    if (!out.empty()) out += ' ';
    out += (py_islower(w) && !version_like(w)) ? py_title(w) : w;
  }
  return out;
}

// gguf-py's Metadata.get_model_id_components: a model id ("org/Name-1.5-7B-Instruct") split into
// its name, organization, basename, finetune, version and size label by the converter's rules.
struct IdParts {
  std::optional<std::string> full, org, basename, finetune, version, size_label;
};

bool all_alpha(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
}

IdParts id_components(const std::string& model_id, int64_t total_params) {
  IdParts r;
  if (model_id.find(' ') != std::string::npos) {
    r.full = model_id;
    return r;
  }
  std::string name = model_id;
  if (auto slash = model_id.find('/'); slash != std::string::npos) {
    r.org = model_id.substr(0, slash);
    name = model_id.substr(slash + 1);
    if (!r.org->empty() && (*r.org)[0] == '.') r.org.reset();
  }
  r.full = name;
  std::vector<std::string> parts;
  for (size_t b = 0;;) {
    size_t e = name.find('-', b);
    std::string part = name.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!part.empty()) parts.push_back(part);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  static const std::regex kVersion(R"((v|iter)?\d+([.]\d+)*)", std::regex::icase);
  static const std::regex kType(R"(i?q\d(_\w)*|b?fp?(16|32))", std::regex::icase);
  static const std::regex kSize(R"((([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))", std::regex::icase);
  static const std::regex kFinetune(R"(chat|instruct|vision|lora)", std::regex::icase);
  std::vector<std::set<std::string>> types(parts.size());
  auto isdec = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    if (std::regex_match(part, kVersion)) {
      types[i].insert("version");
    } else if (std::regex_match(part, kType)) {
      types[i].insert("type");
      for (char& c : part) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      parts[i] = part;
    } else if (i > 0 && std::regex_match(part, kSize)) {
      for (char& c : part)
        if (c == '_') c = '.';
      if (isdec(part.back())) part = part.substr(0, part.size() - 2) + "." + part.back() + part[part.size() - 2];  // bloom-7b1
      if (part.size() > 1 && isdec(part[part.size() - 2]) && std::string_view("kmbt").find(part.back()) != std::string_view::npos)
        part.back() = static_cast<char>(std::toupper(static_cast<unsigned char>(part.back())));
      if (total_params != 0) {
        // float(part[:-1]) * 1000 ** " KMBT".find(part[-1]); a part that is no number is kept as is
        const std::string num = part.substr(0, part.size() - 1);
        char* end = nullptr;
        const double x = num.empty() ? 0 : std::strtod(num.c_str(), &end);
        if (!num.empty() && end == num.c_str() + num.size() && std::isfinite(x)) {
          const auto pos = std::string_view(" KMBT").find(part.back());
          const double label = x * std::pow(1000.0, pos == std::string_view::npos ? -1.0 : static_cast<double>(pos));
          const double t = static_cast<double>(total_params);
          if ((total_params < 0 && label < static_cast<double>(std::llabs(total_params) / 8)) ||
              (total_params > 0 && std::fabs(label - t) > static_cast<double>(7 * total_params / 8))) {
            types[i].insert("finetune");  // likely a context length
            part.back() = static_cast<char>(std::tolower(static_cast<unsigned char>(part.back())));
          }
        }
      }
      if (types[i].empty()) types[i].insert("size_label");
      parts[i] = part;
    } else if (i > 0 && std::regex_match(part, kFinetune)) {
      types[i].insert("finetune");
    }
  }
  bool numeric_size = false;
  for (size_t i = 0; i < parts.size(); ++i)
    if (types[i].count("size_label") && std::any_of(parts[i].begin(), parts[i].end(), isdec)) numeric_size = true;
  if (numeric_size)
    for (size_t i = 0; i < parts.size(); ++i)
      if (types[i].count("size_label") && all_alpha(parts[i])) types[i].erase("size_label");
  bool at_start = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (at_start && ((types[i].empty() && std::isalpha(static_cast<unsigned char>(parts[i][0]))) || types[i].count("version"))) {
      types[i].insert("basename");
    } else {
      at_start = false;
      if (types[i].empty()) types[i].insert("finetune");
    }
  }
  for (size_t i = parts.size(); i-- > 0;) {
    if (types[i].count("basename") && types[i].size() > 1) types[i].erase("basename");
    else break;
  }
  auto join = [&](const char* kind, bool dedupe, const char* unless = nullptr) -> std::optional<std::string> {
    std::vector<std::string> got;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!types[i].count(kind) || (unless && types[i].count(unless))) continue;
      if (dedupe && std::find(got.begin(), got.end(), parts[i]) != got.end()) continue;
      got.push_back(parts[i]);
    }
    if (got.empty()) return std::nullopt;
    std::string out;
    for (const std::string& g : got) out += (out.empty() ? "" : "-") + g;
    return out;
  };
  r.basename = join("basename", false);
  r.size_label = join("size_label", true);
  r.finetune = join("finetune", false);
  r.version = join("version", false, "basename");
  if (!r.size_label && !r.finetune && !r.version) r.basename.reset();
  return r;
}

// general.* as gguf-py's Metadata.load gives them without a model card: config.json's
// _name_or_path when it is a model id ("org/name" or "name"), then the folder's name, each
// filling what is still unknown.
struct GeneralMeta {
  std::optional<std::string> name, org, basename, finetune, version, size_label;
};

GeneralMeta general_meta(const fs::path& dir, element cfg, int64_t total_params) {
  GeneralMeta m;
  auto fill = [&](const IdParts& c) {
    if (!m.name && c.full) m.name = id_to_title(*c.full);
    if (!m.org && c.org) m.org = id_to_title(*c.org);
    if (!m.basename && c.basename) m.basename = c.basename;
    if (!m.finetune && c.finetune) m.finetune = c.finetune;
    if (!m.version && c.version) m.version = c.version;
    if (!m.size_label && c.size_label) m.size_label = c.size_label;
  };
  if (auto n = str_field(cfg, "_name_or_path"); n && std::count(n->begin(), n->end(), '/') <= 1) fill(id_components(*n, total_params));
  std::string p = dir.string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string base = fs::path(p).filename().string();
  if (base == "." || base == "..") base.clear();
  fill(id_components(base, total_params));
  return m;
}

// gguf-py's model_weight_count_rounded_notation(n, min_digits=2).
std::string size_label(uint64_t n) {
  double scaled;
  const char* suffix;
  const double x = static_cast<double>(n);
  if (x > 1e12) scaled = x * 1e-12, suffix = "T";
  else if (x > 1e9) scaled = x * 1e-9, suffix = "B";
  else if (x > 1e6) scaled = x * 1e-6, suffix = "M";
  else scaled = x * 1e-3, suffix = "K";
  // len(str(round(scaled)).lstrip('0')); Python's round() ties to even, as nearbyint does
  const long long r = std::llrint(std::nearbyint(scaled));
  std::string digits = std::to_string(r);
  digits.erase(0, digits.find_first_not_of('0') == std::string::npos ? digits.size() : digits.find_first_not_of('0'));
  const int fix = std::max(2 - static_cast<int>(digits.size()), 0);
  return fmt::format("{:.{}f}{}", scaled, fix, suffix);
}

// ---- tensor data ----------------------------------------------------------------------------------

// A tensor's values as the converter holds them before writing: float16 stays float16 (bits),
// everything else becomes float32.
struct Work {
  bool f16 = false;
  std::vector<uint16_t> h;
  std::vector<float> f;
  size_t size() const { return f16 ? h.size() : f.size(); }
};

// llama's q/k rows: (n_head, 2, rows/n_head/2, cols) with axes 1 and 2 swapped.
template <class T>
void permute_rows(std::vector<T>& v, uint64_t rows, uint64_t cols, uint64_t n_head) {
  if (n_head == 0 || rows % (2 * n_head) != 0) throw input_error(fmt::format("cannot permute {} rows for {} heads", rows, n_head));
  const uint64_t half = rows / n_head / 2;
  std::vector<T> out(v.size());
  for (uint64_t h = 0; h < n_head; ++h)
    for (uint64_t i = 0; i < half; ++i)
      for (uint64_t j = 0; j < 2; ++j) {
        const uint64_t dst = h * 2 * half + i * 2 + j, src = h * 2 * half + j * half + i;
        std::memcpy(&out[dst * cols], &v[src * cols], cols * sizeof(T));
      }
  v.swap(out);
}

}  // namespace

std::string tokenizer_check_hash(const std::string& tokenizer_json) {
  tok::Tokenizer t = tok::Tokenizer::from_json_file(tokenizer_json);
  std::vector<tok::TokenId> ids = t.encode(kCheckText, {.add_special = true}).ids;
  std::string list = "[";  // Python's str() of the list
  for (size_t i = 0; i < ids.size(); ++i) list += (i ? ", " : "") + std::to_string(ids[i]);
  list += "]";
  return sha256_hex(list);
}

void import_hf(const std::string& dir_str, const std::string& out_gguf, GgmlType wtype, const HfImportOptions& opt) {
  if (wtype != GgmlType::F32 && wtype != GgmlType::F16 && wtype != GgmlType::BF16)
    throw usage_error("--from-hf writes F32, F16 or BF16 weights (quantize the result for other types)");
  const fs::path dir(dir_str);
  if (!fs::is_directory(dir)) throw usage_error(fmt::format("{}: not a folder", dir_str));
  const fs::path cfg_path = dir / "config.json";
  if (!fs::is_regular_file(cfg_path)) throw usage_error(fmt::format("{}: no such file (a Hugging Face folder has one)", cfg_path.string()));
  Json cfg(cfg_path);

  // ---- architecture
  std::string hf_arch;
  {
    array archs;
    auto a = field(cfg.root(), "architectures");
    std::string_view s;
    if (!a || a->get(archs) || archs.size() == 0 || archs.at(0).get(s)) throw cfg.bad("no \"architectures\" list naming the model class");
    hf_arch = std::string(s);
  }
  const ArchInfo* info = nullptr;
  for (const ArchInfo& ai : kArchs)
    if (hf_arch == ai.hf) info = &ai;
  if (!info) throw cfg.bad(fmt::format("architectures {} is not one loom imports (llama, qwen2, qwen3, gemma3, bert)", hf_arch));
  const Arch arch = info->arch;
  const std::string A = info->name;
  const bool bert = arch == Arch::Bert;
  Hparams hp(cfg, arch);

  Dims d;
  d.L = hp.need("num_hidden_layers");
  d.E = hp.need("hidden_size");
  d.F = hp.need("intermediate_size");
  d.H = hp.need("num_attention_heads");
  d.V = hp.need("vocab_size");
  if (!bert) {
    d.KV = hp.integer("num_key_value_heads").value_or(arch == Arch::Gemma3 ? 4 : d.H);
    if (auto hd = hp.integer("head_dim")) d.D = static_cast<uint64_t>(*hd);
    else if (arch == Arch::Gemma3) d.D = 256;
    else d.D = d.E / d.H;
    if (d.KV == 0 || d.KV > d.H || d.H % d.KV != 0)
      throw cfg.bad(fmt::format("num_key_value_heads {} does not divide num_attention_heads {}", static_cast<int64_t>(d.KV), d.H));
    if (d.D == 0 || d.D > (uint64_t{1} << 20)) throw cfg.bad(fmt::format("head_dim {} is not a head size", static_cast<int64_t>(d.D)));
  } else {
    d.P = static_cast<uint64_t>(hp.integer("max_position_embeddings").value_or(512));
    d.T = static_cast<uint64_t>(hp.integer("type_vocab_size").value_or(2));
  }

  // ---- tokenizer files (read before the tensors: gemma3's embedding is cut to the vocabulary)
  // (the decoders' converters try a SentencePiece tokenizer.model first, then tokenizer.json)
  const fs::path tj_path = dir / "tokenizer.json";
  const bool spm = !bert && fs::is_regular_file(dir / "tokenizer.model");
  std::unique_ptr<Json> tj;
  if (fs::is_regular_file(tj_path)) tj = std::make_unique<Json>(tj_path);
  else if (!spm) throw usage_error(fmt::format("{}: no such file (the importer needs the tokenizer)", tj_path.string()));
  std::unique_ptr<Json> tc;
  if (fs::is_regular_file(dir / "tokenizer_config.json")) tc = std::make_unique<Json>(dir / "tokenizer_config.json");
  Vocab vocab = spm ? read_spm_vocab(dir, d.V, tc.get()) : read_vocab(*tj, d.V, bert);

  // ---- shards
  std::vector<std::string> part_names;
  std::set<std::string> index_names;
  std::map<std::string, std::string> weight_map;
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index_path)) {
    Json idx(index_path);
    object wm;
    auto f = field(idx.root(), "weight_map");
    if (!f || f->get(wm)) throw idx.bad("no \"weight_map\" object");
    std::set<std::string> parts;
    for (auto [k, v] : wm) {
      std::string_view s;
      if (v.get(s)) throw idx.bad(fmt::format("weight_map: the file of \"{}\" is not a string", std::string(k)));
      parts.insert(std::string(s));
      index_names.insert(std::string(k));
      weight_map[std::string(k)] = std::string(s);
    }
    part_names.assign(parts.begin(), parts.end());
    for (const std::string& p : part_names)
      if (!fs::is_regular_file(dir / p))
        throw input_error(fmt::format("no such file: the shard {} that model.safetensors.index.json lists", p), (dir / p).string());
  } else if (fs::is_regular_file(dir / "model.safetensors")) {
    part_names.push_back("model.safetensors");
  } else {
    // model-0000X-of-0000N.safetensors without an index
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string n = e.path().filename().string();
      if (n.rfind("model-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") part_names.push_back(n);
    }
    std::sort(part_names.begin(), part_names.end());
    if (part_names.empty())
      throw usage_error(fmt::format("{}: no such file (nor model.safetensors.index.json and its shards)", (dir / "model.safetensors").string()));
  }
  std::vector<safetensors::File> files;
  files.reserve(part_names.size());
  for (const std::string& p : part_names) files.push_back(safetensors::File::open((dir / p).string()));
  if (!index_names.empty()) {
    std::set<std::string> in_parts;
    for (const auto& f : files)
      for (const auto& t : f.tensors()) in_parts.insert(t.name);
    for (const std::string& n : index_names)
      if (!in_parts.count(n))
        throw input_error(fmt::format("tensor {} is listed in model.safetensors.index.json but not in its shard", n),
                          (dir / weight_map[n]).string());
  }

  // ---- plan the tensors
  const uint64_t n_head = d.H, n_kv = bert ? d.H : d.KV;
  std::vector<Planned> plan;
  std::set<std::string> seen;
  for (size_t si = 0; si < files.size(); ++si) {
    std::vector<const safetensors::Tensor*> ts;
    for (const auto& t : files[si].tensors()) ts.push_back(&t);
    std::sort(ts.begin(), ts.end(), [](auto* a, auto* b) { return a->name < b->name; });
    for (const safetensors::Tensor* t : ts) {
      const std::string shard_name = (dir / part_names[si]).string();
      std::optional<Mapped> m = bert ? map_bert(t->name, d) : map_decoder(arch, t->name, d);
      if (!m) throw input_error(fmt::format("tensor {} is not one loom knows how to name for {}", t->name, A), shard_name);
      if (m->skip) continue;
      if (t->dtype != safetensors::DType::F32 && t->dtype != safetensors::DType::F16 && t->dtype != safetensors::DType::BF16)
        throw input_error(fmt::format("tensor {} is {}: the importer reads F32, F16 and BF16", t->name, safetensors::dtype_name(t->dtype)), shard_name);
      std::vector<uint64_t> want = m->shape;
      Planned p;
      p.name = m->name;
      p.shard = si;
      p.src = t;
      if (arch == Arch::Gemma3 && m->name == "token_embd.weight") {
        // the converter keeps the rows of the tokenizer's tokens (model vocab + added tokens)
        // (not when the token list itself is padded to vocab_size, as the converter's tokenizer.json
        // path pads it: cutting there gives a file whose embedding has fewer rows than tokens, which
        // llama.cpp refuses to load; loom keeps the rows, one per token written)
        if (t->shape.size() == 2 && t->shape[0] == d.V && vocab.n_real < d.V && vocab.tokens.size() == vocab.n_real)
          p.keep_rows = vocab.n_real;
      }
      if (t->shape != want)
        throw input_error(fmt::format("tensor {} has shape {}; config.json makes it {}", t->name, shape_str(t->shape), shape_str(want)), shard_name);
      p.shape = t->shape;
      if (p.keep_rows) p.shape[0] = p.keep_rows;
      if (!seen.insert(p.name).second) throw input_error(fmt::format("tensor {} is given twice", t->name), shard_name);
      if (arch == Arch::Llama) {
        const std::string_view hn = t->name;
        auto ends = [&](std::string_view s) { return hn.size() >= s.size() && hn.substr(hn.size() - s.size()) == s; };
        if (ends("q_proj.weight") || ends("q_proj.bias")) p.op = Op::PermuteQ;
        if (ends("k_proj.weight") || ends("k_proj.bias")) p.op = Op::PermuteK;
      }
      if (arch == Arch::Gemma3 && p.name.size() >= 11 && p.name.substr(p.name.size() - 11) == "norm.weight") p.op = Op::NormPlus1;
      p.type = choose_type(p.name, p.shape.size(), wtype);
      plan.push_back(std::move(p));
    }
  }
  // required tensors
  {
    std::vector<std::string> need = {"token_embd.weight"};
    if (bert) {
      need.insert(need.end(), {"position_embd.weight", "token_embd_norm.weight"});
      for (uint64_t i = 0; i < d.L; ++i)
        for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down", "layer_output_norm"})
          need.push_back(fmt::format("blk.{}.{}.weight", i, n));
    } else {
      need.push_back("output_norm.weight");
      std::vector<const char*> per = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
      if (arch == Arch::Qwen3 || arch == Arch::Gemma3) per.insert(per.end(), {"attn_q_norm", "attn_k_norm"});
      if (arch == Arch::Gemma3) per.insert(per.end(), {"post_attention_norm", "post_ffw_norm"});
      for (uint64_t i = 0; i < d.L; ++i)
        for (const char* n : per) need.push_back(fmt::format("blk.{}.{}.weight", i, n));
    }
    for (const std::string& n : need)
      if (!seen.count(n))
        throw input_error(fmt::format("no tensor for {} (a {} model with {} layers has one)", n, A, d.L),
                          (dir / (part_names.size() == 1 ? part_names[0] : std::string("model.safetensors.index.json"))).string());
  }

  // ---- rope: the converter's rope parameters (rope_parameters / rope_scaling, mirrored keys)
  std::optional<element> rope_params = field(cfg.root(), "rope_parameters");
  if (!rope_params) rope_params = field(cfg.root(), "rope_scaling");
  if (rope_params && !rope_params->is_object()) rope_params.reset();
  std::optional<element> full = rope_params ? field(*rope_params, "full_attention") : std::nullopt;
  element rp_el = full ? *full : (rope_params ? *rope_params : element());
  const bool have_rp = full.has_value() || rope_params.has_value();
  std::optional<std::string> rope_type;
  if (have_rp) {
    rope_type = str_field(rp_el, "rope_type");
    if (!rope_type) rope_type = str_field(rp_el, "type");
  }
  auto rope_num = [&](const char* k) -> std::optional<double> { return have_rp ? num_field(rp_el, k) : std::nullopt; };
  std::optional<double> rope_theta;
  for (const char* k : {"global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"})
    if (!rope_theta && hp.has(k)) rope_theta = hp.number(k);
  if (auto t = rope_num("rope_theta")) rope_theta = t;  // rope_parameters' own value wins
  std::optional<double> local_theta;
  for (const char* k : {"local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta", "rope_local_base_freq"})
    if (!local_theta && hp.has(k)) local_theta = hp.number(k);
  if (rope_params) {
    if (auto sw = field(*rope_params, "sliding_attention")) local_theta = num_field(*sw, "rope_theta");
  }

  // llama 3's rope_freqs.weight (generate_extra_tensors), first in the file
  if (arch == Arch::Llama && rope_type) {
    std::string lower = *rope_type;
    for (char& c : lower) c = static_cast<char>(std::tolower(c));
    if (lower == "llama3") {
      const float base = static_cast<float>(rope_num("rope_theta").value_or(rope_theta.value_or(10000.0)));
      const uint64_t dim = d.D;
      const float factor = static_cast<float>(rope_num("factor").value_or(8.0));
      const float lo = static_cast<float>(rope_num("low_freq_factor").value_or(1.0));
      const float hi = static_cast<float>(rope_num("high_freq_factor").value_or(4.0));
      const double old_ctx = rope_num("original_max_position_embeddings").value_or(8192.0);
      const double lo_wave = old_ctx / lo, hi_wave = old_ctx / hi;
      Planned p;
      p.name = "rope_freqs.weight";
      for (uint64_t i = 0; i < dim; i += 2) {
        const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
        const float wave = static_cast<float>(2 * std::numbers::pi) / freq;
        float f;
        if (wave < static_cast<float>(hi_wave)) f = 1.0f;
        else if (wave > static_cast<float>(lo_wave)) f = factor;
        else {
          const float smooth = (static_cast<float>(old_ctx) / wave - lo) / (hi - lo);
          f = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
        p.generated.push_back(f);
      }
      p.shape = {p.generated.size()};
      p.type = GgmlType::F32;
      plan.insert(plan.begin(), std::move(p));
    }
  }

  uint64_t total_params = 0;
  for (const Planned& p : plan) {
    uint64_t n = 1;
    for (uint64_t s : p.shape) n *= s;
    // (the size label counts Gemma 3's embedding as the converter cuts it, kept whole or not)
    if (arch == Arch::Gemma3 && p.name == "token_embd.weight" && !p.keep_rows && vocab.n_real < d.V && !p.shape.empty())
      n = n / p.shape[0] * vocab.n_real;
    total_params += n;
  }

  // ---- metadata
  gguf::Writer w;
  w.set_string("general.architecture", A);
  w.set_string("general.type", "model");
  {
    // sampling defaults from generation_config.json (when it is valid JSON), then the names
    if (fs::is_regular_file(dir / "generation_config.json")) {
      try {
        Json gc(dir / "generation_config.json");
        element g = gc.root();
        auto f32_key = [&](const char* key, const char* from, const char* alt = nullptr) {
          auto v = num_field(g, from);
          if (!v && alt) v = num_field(g, alt);
          if (v) w.set(key, gguf::f32(static_cast<float>(*v)));
        };
        auto i32_key = [&](const char* key, const char* from) {
          if (auto v = num_field(g, from)) w.set(key, gguf::i32(static_cast<int32_t>(*v)));
        };
        if (auto v = str_field(g, "sequence")) w.set_string("general.sampling.sequence", *v);
        i32_key("general.sampling.top_k", "top_k");
        f32_key("general.sampling.top_p", "top_p");
        f32_key("general.sampling.min_p", "min_p");
        f32_key("general.sampling.xtc_probability", "xtc_probability");
        f32_key("general.sampling.xtc_threshold", "xtc_threshold");
        f32_key("general.sampling.temp", "temperature");
        i32_key("general.sampling.penalty_last_n", "penalty_last_n");
        f32_key("general.sampling.penalty_repeat", "penalty_repeat", "repetition_penalty");
        i32_key("general.sampling.mirostat", "mirostat");
        f32_key("general.sampling.mirostat_tau", "mirostat_tau");
        f32_key("general.sampling.mirostat_eta", "mirostat_eta");
      } catch (const Error&) {
        // the converter ignores a generation_config.json it cannot parse
      }
    }
    GeneralMeta m = general_meta(dir, cfg.root(), static_cast<int64_t>(total_params));
    w.set_string("general.name", opt.name.empty() ? m.name.value_or("") : opt.name);
    if (m.version) w.set_string("general.version", *m.version);
    if (m.org) w.set_string("general.organization", *m.org);
    if (m.finetune) w.set_string("general.finetune", *m.finetune);
    if (m.basename) w.set_string("general.basename", *m.basename);
    if (m.size_label) w.set_string("general.size_label", *m.size_label);
    else if (total_params > 0) w.set_string("general.size_label", size_label(total_params));
  }
  auto key = [&](const char* k) { return A + "." + k; };
  w.set(key("block_count"), gguf::u32(static_cast<uint32_t>(d.L)));
  for (const char* k : {"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"})
    if (hp.has(k)) {
      w.set(key("context_length"), gguf::u32(static_cast<uint32_t>(hp.integer(k).value_or(0))));
      break;
    }
  w.set(key("embedding_length"), gguf::u32(static_cast<uint32_t>(d.E)));
  w.set(key("feed_forward_length"), gguf::u32(static_cast<uint32_t>(d.F)));
  w.set(key("attention.head_count"), gguf::u32(static_cast<uint32_t>(d.H)));
  if (hp.has("num_key_value_heads"))
    w.set(key("attention.head_count_kv"), gguf::u32(static_cast<uint32_t>(*hp.integer("num_key_value_heads"))));
  if (auto c = bool_field(cfg.root(), "is_causal"); c && !*c) w.set(key("attention.causal"), gguf::boolean(false));
  if (rope_type) {
    auto factor = rope_num("factor");
    if (*rope_type == "linear" && factor) {
      w.set_string(key("rope.scaling.type"), "linear");
      w.set(key("rope.scaling.factor"), gguf::f32(static_cast<float>(*factor)));
    } else if (*rope_type == "yarn" && factor) {
      w.set_string(key("rope.scaling.type"), "yarn");
      w.set(key("rope.scaling.factor"), gguf::f32(static_cast<float>(*factor)));
      auto orig = have_rp ? int_field(rp_el, "original_max_position_embeddings") : std::nullopt;
      if (!orig) orig = int_field(cfg.root(), "original_max_position_embeddings");
      if (!orig) throw cfg.bad("yarn rope scaling without original_max_position_embeddings");
      w.set(key("rope.scaling.original_context_length"), gguf::u32(static_cast<uint32_t>(*orig)));
      if (auto v = rope_num("extrapolation_factor")) w.set(key("rope.scaling.yarn_ext_factor"), gguf::f32(static_cast<float>(*v)));
      auto af = rope_num("attention_factor");
      if (!af) af = rope_num("attn_factor");
      if (af) w.set(key("rope.scaling.yarn_attn_factor"), gguf::f32(static_cast<float>(*af)));
      if (auto v = rope_num("beta_fast")) w.set(key("rope.scaling.yarn_beta_fast"), gguf::f32(static_cast<float>(*v)));
      if (auto v = rope_num("beta_slow")) w.set(key("rope.scaling.yarn_beta_slow"), gguf::f32(static_cast<float>(*v)));
    } else if (*rope_type == "su" || *rope_type == "longrope") {
      w.set_string(key("rope.scaling.type"), "longrope");
    }
  }
  if (rope_theta) w.set(key("rope.freq_base"), gguf::f32(static_cast<float>(*rope_theta)));
  if (local_theta) w.set(key("rope.freq_base_swa"), gguf::f32(static_cast<float>(*local_theta)));
  for (const char* k : {"rms_norm_eps", "norm_eps"})
    if (hp.has(k)) {
      w.set(key("attention.layer_norm_rms_epsilon"), gguf::f32(static_cast<float>(*hp.number(k))));
      break;
    }
  for (const char* k : {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"})
    if (hp.has(k)) {
      w.set(key("attention.layer_norm_epsilon"), gguf::f32(static_cast<float>(*hp.number(k))));
      break;
    }
  if (auto hd = int_field(cfg.root(), "head_dim")) {
    w.set(key("attention.key_length"), gguf::u32(static_cast<uint32_t>(*hd)));
    w.set(key("attention.value_length"), gguf::u32(static_cast<uint32_t>(*hd)));
  }
  const uint32_t file_type = wtype == GgmlType::F32 ? 0 : wtype == GgmlType::F16 ? 1 : 32;
  w.set("general.file_type", gguf::u32(file_type));
  switch (arch) {
    case Arch::Llama:
      w.set(key("vocab_size"), gguf::u32(static_cast<uint32_t>(d.V)));
      w.set(key("rope.dimension_count"), gguf::u32(static_cast<uint32_t>(d.D)));
      break;
    case Arch::Qwen2:
    case Arch::Qwen3:
      if (auto pt = pooling_type(dir)) w.set(key("pooling_type"), gguf::u32(*pt));
      break;
    case Arch::Bert:
      w.set(key("attention.causal"), gguf::boolean(false));
      if (auto pt = pooling_type(dir)) w.set(key("pooling_type"), gguf::u32(*pt));
      break;
    case Arch::Gemma3: {
      element r = cfg.root();
      w.set(key("context_length"), gguf::u32(static_cast<uint32_t>(int_field(r, "max_position_embeddings").value_or(131072))));
      w.set(key("attention.head_count"), gguf::u32(static_cast<uint32_t>(int_field(r, "num_attention_heads").value_or(8))));
      w.set(key("attention.layer_norm_rms_epsilon"), gguf::f32(static_cast<float>(num_field(r, "rms_norm_eps").value_or(1e-6))));
      w.set(key("attention.key_length"), gguf::u32(static_cast<uint32_t>(int_field(r, "head_dim").value_or(256))));
      w.set(key("attention.value_length"), gguf::u32(static_cast<uint32_t>(int_field(r, "head_dim").value_or(256))));
      w.set(key("rope.freq_base"), gguf::f32(static_cast<float>(rope_theta.value_or(1000000.0))));
      if (auto sc = num_field(r, "final_logit_softcapping"); sc && *sc != 0) w.set(key("final_logit_softcapping"), gguf::f32(static_cast<float>(*sc)));
      auto pattern = int_field(r, "sliding_window_pattern");
      if (!pattern || *pattern != 1) {
        auto sw = int_field(r, "sliding_window");
        if (!sw) throw cfg.bad("no \"sliding_window\" (gemma3 needs one unless sliding_window_pattern is 1)");
        w.set(key("attention.sliding_window"), gguf::u32(static_cast<uint32_t>(*sw)));
      }
      w.set(key("attention.head_count_kv"), gguf::u32(static_cast<uint32_t>(int_field(r, "num_key_value_heads").value_or(4))));
      break;
    }
  }
  w.set("general.quantization_version", gguf::u32(2));

  // ---- vocabulary
  if (bert) {
    w.set("tokenizer.ggml.token_type_count", gguf::u32(static_cast<uint32_t>(hp.integer("type_vocab_size").value_or(1))));
    w.set_string("tokenizer.ggml.model", "bert");
  } else {
    if (arch == Arch::Llama && tc) {
      if (auto ap = bool_field(tc->root(), "add_prefix_space")) w.set("tokenizer.ggml.add_space_prefix", gguf::boolean(*ap));
    }
    w.set_string("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  }
  w.set_string("tokenizer.ggml.pre", vocab.pre);
  w.set_strings("tokenizer.ggml.tokens", vocab.tokens);
  if (spm) {
    std::vector<gguf::Value> sc;
    sc.reserve(vocab.scores.size());
    for (float x : vocab.scores) sc.push_back(gguf::f32(x));
    w.set("tokenizer.ggml.scores", gguf::array(gguf::Type::F32, std::move(sc)));
  }
  {
    std::vector<gguf::Value> tt;
    tt.reserve(vocab.types.size());
    for (int32_t t : vocab.types) tt.push_back(gguf::i32(t));
    w.set("tokenizer.ggml.token_type", gguf::array(gguf::Type::I32, std::move(tt)));
  }
  Specials sp = read_specials(dir, tj.get(), tc.get(), cfg, bert || spm ? std::optional<uint64_t>(vocab.tokens.size()) : std::nullopt);
  write_specials(w, sp, bert || spm ? std::vector<std::string>{} : vocab.merges);
  if (arch == Arch::Gemma3 && spm) w.set("tokenizer.ggml.add_space_prefix", gguf::boolean(false));
  if (arch == Arch::Llama && d.V == 49152) w.set("tokenizer.ggml.add_bos_token", gguf::boolean(false));  // granite-small rule

  // ---- tensors
  for (const Planned& p : plan) {
    std::vector<uint64_t> ne(p.shape.rbegin(), p.shape.rend());
    w.add_tensor_info(p.name, ne, static_cast<uint32_t>(p.type));
  }
  std::string buf;
  w.write(out_gguf, [&](size_t i) -> std::string_view {
    const Planned& p = plan[i];
    Work wk;
    if (!p.src) {
      wk.f = p.generated;
    } else {
      const safetensors::File& f = files[p.shard];
      const safetensors::Tensor& t = *p.src;
      if (t.dtype == safetensors::DType::F16) {
        std::string_view raw = f.data(t);
        wk.f16 = true;
        wk.h.resize(raw.size() / 2);
        std::memcpy(wk.h.data(), raw.data(), raw.size());
      } else {
        wk.f = f.to_f32(t);
      }
      const uint64_t cols = t.shape.size() >= 2 ? t.n_elements() / t.shape[0] : 1;
      if (p.keep_rows) {
        if (wk.f16) wk.h.resize(p.keep_rows * cols);
        else wk.f.resize(p.keep_rows * cols);
      }
      if (p.op == Op::PermuteQ || p.op == Op::PermuteK) {
        const uint64_t heads = p.op == Op::PermuteQ ? n_head : (n_head != n_kv ? n_kv : n_head);
        if (wk.f16) permute_rows(wk.h, t.shape[0], cols, heads);
        else permute_rows(wk.f, t.shape[0], cols, heads);
      } else if (p.op == Op::NormPlus1) {
        if (wk.f16)
          for (uint16_t& h : wk.h) h = f32_to_f16(tensor::f16_to_f32(h) + 1.0f);
        else
          for (float& x : wk.f) x += 1.0f;
      }
    }
    const size_t n = wk.size();
    switch (p.type) {
      case GgmlType::F32:
        buf.resize(n * 4);
        if (wk.f16) {
          float* o = reinterpret_cast<float*>(buf.data());
          for (size_t k = 0; k < n; ++k) o[k] = tensor::f16_to_f32(wk.h[k]);
        } else {
          std::memcpy(buf.data(), wk.f.data(), n * 4);
        }
        break;
      case GgmlType::F16:
        buf.resize(n * 2);
        if (wk.f16) {
          std::memcpy(buf.data(), wk.h.data(), n * 2);
        } else {
          uint16_t* o = reinterpret_cast<uint16_t*>(buf.data());
          for (size_t k = 0; k < n; ++k) o[k] = f32_to_f16(wk.f[k]);
        }
        break;
      default: {  // BF16
        buf.resize(n * 2);
        uint16_t* o = reinterpret_cast<uint16_t*>(buf.data());
        for (size_t k = 0; k < n; ++k) o[k] = f32_to_bf16(wk.f16 ? tensor::f16_to_f32(wk.h[k]) : wk.f[k]);
        break;
      }
    }
    return buf;
  });
}

}  // namespace loom::quant
