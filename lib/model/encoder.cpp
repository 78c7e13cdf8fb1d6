// BERT-family encoders: loading (Hugging Face folder, GGUF) and the forward pass.
#include "loom/model/encoder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/json.h"
#include "loom/model/decoder.h"
#include "loom/model/encoder_backend.h"
#include "loom/model/models_dir.h"
#include "loom/tensor/dequant.h"
#include "loom/tensor/safetensors.h"

namespace loom::model {

namespace fs = std::filesystem;

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::Mean: return "mean";
    case Pooling::Cls: return "cls";
    case Pooling::Last: return "last";
    case Pooling::Max: return "max";
    case Pooling::MeanSqrtLen: return "mean_sqrt_len";
  }
  return "?";
}

void l2_normalize(float* v, size_t n) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(v[i]) * v[i];
  const float d = std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
  for (size_t i = 0; i < n; ++i) v[i] /= d;
}

namespace {

// A small JSON file read whole (config.json and friends).
class JsonFile {
 public:
  explicit JsonFile(const fs::path& p) : name_(p.string()) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw usage_error(fmt::format("{}: cannot read", name_));
    std::stringstream ss;
    ss << in.rdbuf();
    text_ = simdjson::padded_string(ss.str());
    if (auto err = parser_.parse(text_).get(root_)) throw input_error(fmt::format("not valid JSON: {}", simdjson::error_message(err)), name_);
  }
  simdjson::dom::element root() const { return root_; }
  Error bad(const std::string& what) const { return input_error(what, name_); }
  // An integer field (nullopt when absent or null).
  std::optional<int64_t> integer(simdjson::dom::element o, const char* key) const {
    auto v = o[key];
    if (v.error() || v.is_null()) return std::nullopt;
    int64_t x;
    if (v.get(x)) throw bad(fmt::format("\"{}\" is not an integer", key));
    return x;
  }
  std::optional<double> number(simdjson::dom::element o, const char* key) const {
    auto v = o[key];
    if (v.error() || v.is_null()) return std::nullopt;
    double x;
    if (v.get(x)) throw bad(fmt::format("\"{}\" is not a number", key));
    return x;
  }
  std::optional<std::string> string(simdjson::dom::element o, const char* key) const {
    auto v = o[key];
    if (v.error() || v.is_null()) return std::nullopt;
    std::string_view x;
    if (v.get(x)) throw bad(fmt::format("\"{}\" is not a string", key));
    return std::string(x);
  }
  bool flag(simdjson::dom::element o, const char* key, bool def = false) const {
    auto v = o[key];
    if (v.error() || v.is_null()) return def;
    bool x;
    if (v.get(x)) throw bad(fmt::format("\"{}\" is not true or false", key));
    return x;
  }
  uint32_t need(simdjson::dom::element o, const char* key) const {
    auto v = integer(o, key);
    if (!v || *v <= 0 || *v > (1 << 24)) throw bad(fmt::format("\"{}\" is missing or not a positive integer", key));
    return static_cast<uint32_t>(*v);
  }

 private:
  std::string name_;
  simdjson::padded_string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

// A WordPiece tokenizer.json built from vocab.txt, as transformers converts a slow BertTokenizer.
std::string bert_tokenizer_json(const fs::path& vocab, bool lowercase) {
  std::ifstream in(vocab, std::ios::binary);
  if (!in) throw usage_error(fmt::format("{}: cannot read", vocab.string()));
  json::Writer w;
  w.begin_object();
  std::string line;
  int64_t id = 0;
  std::vector<std::pair<std::string, int64_t>> specials;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == "[PAD]" || line == "[UNK]" || line == "[CLS]" || line == "[SEP]" || line == "[MASK]") specials.emplace_back(line, id);
    w.key(line);
    w.value(id++);
  }
  w.end_object();
  auto id_of = [&](const char* t) -> int64_t {
    for (auto& [s, i] : specials)
      if (s == t) return i;
    throw input_error(fmt::format("no {} token in the vocabulary", t), vocab.string());
  };
  std::string added = "[";
  for (size_t i = 0; i < specials.size(); ++i)
    added += fmt::format("{}{{\"id\":{},\"content\":\"{}\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}}",
                         i ? "," : "", specials[i].second, specials[i].first);
  added += "]";
  return fmt::format(
      R"({{"version":"1.0","added_tokens":{},"normalizer":{{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":{}}},)"
      R"("pre_tokenizer":{{"type":"BertPreTokenizer"}},"post_processor":{{"type":"TemplateProcessing","single":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}}],)"
      R"("pair":[],"special_tokens":{{"[CLS]":{{"id":"[CLS]","ids":[{}],"tokens":["[CLS]"]}},"[SEP]":{{"id":"[SEP]","ids":[{}],"tokens":["[SEP]"]}}}}}},)"
      R"("decoder":{{"type":"WordPiece","prefix":"##","cleanup":true}},"model":{{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{}}}}})",
      added, lowercase ? "true" : "false", id_of("[CLS]"), id_of("[SEP]"), w.str());
}

}  // namespace

struct Encoder::Impl {
  std::string path;
  EncoderConfig cfg;
  std::optional<tok::Tokenizer> tok_;  // set by the loaders
  std::unique_ptr<safetensors::File> st;
  std::unique_ptr<gguf::File> gg;
  std::deque<std::vector<float>> store;  // weights converted to f32 (views point into it)

  struct Layer {
    Mat qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, up_w, up_b, down_w, down_b, ln2_w, ln2_b;
  };
  Mat word, pos, type, emb_ln_w, emb_ln_b;
  std::vector<Layer> layers;
  Mat pool_w, pool_b, cls_w, cls_b;  // classification head (pool_w empty: no pooler)
  struct Dense {
    Mat w, b;
    bool tanh = false;
  };
  std::vector<Dense> dense;
  std::unique_ptr<EncoderBackend> be;
  // a decoder model used as an embedder (a GGUF that declares {arch}.pooling_type)
  std::shared_ptr<gguf::File> dec_file;
  std::unique_ptr<Decoder> dec;

  Mat own(std::vector<float> v, size_t rows, size_t cols) {
    store.push_back(std::move(v));
    return Mat{store.back().data(), rows, cols};
  }
  // q, k, v stacked into one matrix (one product for all three); vectors end to end
  Mat stack(const std::vector<Mat>& parts) {
    std::vector<float> v;
    size_t rows = 0, cols = 0;
    for (const Mat& m : parts) {
      v.insert(v.end(), m.data, m.data + m.rows * m.cols);
      if (m.rows == 1) rows = 1, cols += m.cols;
      else rows += m.rows, cols = m.cols;
    }
    return own(std::move(v), rows, cols);
  }

  // The names of a layer's parts (each "<name>.weight" and "<name>.bias"): q, k, v, attention
  // output, its layer norm, FFN up, down, and the output layer norm.
  using LayerNames = std::array<const char*, 8>;
  // Reads every layer through tensor(name, rows, cols) (rows 0: a vector); `prefix` has a {} for
  // the layer number.
  template <typename TensorFn>
  void read_layers(const char* prefix, const LayerNames& n, TensorFn&& tensor) {
    const size_t E = cfg.n_embd, F = cfg.n_ff;
    for (uint32_t l = 0; l < cfg.n_layer; ++l) {
      const std::string p = fmt::format(fmt::runtime(prefix), l);
      auto w = [&](int i, size_t rows, size_t cols) { return tensor(p + n[i] + ".weight", rows, cols); };
      auto b = [&](int i, size_t cols) { return tensor(p + n[i] + ".bias", 0, cols); };
      Layer L;
      L.qkv_w = stack({w(0, E, E), w(1, E, E), w(2, E, E)});
      L.qkv_b = stack({b(0, E), b(1, E), b(2, E)});
      L.o_w = w(3, E, E), L.o_b = b(3, E);
      L.ln1_w = w(4, 0, E), L.ln1_b = b(4, E);
      L.up_w = w(5, F, E), L.up_b = b(5, F);
      L.down_w = w(6, E, F), L.down_b = b(6, E);
      L.ln2_w = w(7, 0, E), L.ln2_b = b(7, E);
      layers.push_back(L);
    }
  }

  void load_folder(const fs::path& dir);
  void load_st_modules(const fs::path& dir);
  void load_gguf(const std::string& file, const EncoderOptions& opt);
  void load_decoder(const std::string& file, const std::string& arch, const EncoderOptions& opt);
  void embed_decoder(const std::vector<EncoderInput>& batch, Pooling pooling, float* out);
  void check_input(const EncoderInput& in) const;
  Act forward(const std::vector<EncoderInput>& batch);
};

// ---- Hugging Face folder ----------------------------------------------------------------------

void Encoder::Impl::load_folder(const fs::path& dir) {
  std::error_code ec;
  auto need_file = [&](const char* name) {
    fs::path p = dir / name;
    if (!fs::is_regular_file(p, ec))
      throw usage_error(fmt::format("{}: the model folder has no {}", dir.string(), name));
    return p;
  };
  JsonFile config(need_file("config.json"));
  auto root = config.root();
  auto mt = config.string(root, "model_type");
  if (!mt || *mt != "bert")
    throw config.bad(fmt::format("model_type \"{}\" is not supported (supported encoders: bert — BERT, MiniLM, BGE, E5 shapes)", mt.value_or("")));
  cfg.arch = "bert";
  cfg.n_vocab = config.need(root, "vocab_size");
  cfg.n_embd = config.need(root, "hidden_size");
  cfg.n_ff = config.need(root, "intermediate_size");
  cfg.n_layer = config.need(root, "num_hidden_layers");
  cfg.n_head = config.need(root, "num_attention_heads");
  cfg.n_pos = config.need(root, "max_position_embeddings");
  cfg.n_types = static_cast<uint32_t>(config.integer(root, "type_vocab_size").value_or(2));
  cfg.ln_eps = static_cast<float>(config.number(root, "layer_norm_eps").value_or(1e-12));
  if (cfg.n_embd % cfg.n_head) throw config.bad(fmt::format("hidden_size {} is not a multiple of num_attention_heads {}", cfg.n_embd, cfg.n_head));
  if (auto act = config.string(root, "hidden_act"); act && *act != "gelu")
    throw config.bad(fmt::format("hidden_act \"{}\" is not supported (supported: gelu)", *act));
  if (auto pe = config.string(root, "position_embedding_type"); pe && *pe != "absolute")
    throw config.bad(fmt::format("position_embedding_type \"{}\" is not supported (supported: absolute)", *pe));

  // tokenizer: tokenizer.json, or vocab.txt (with tokenizer_config.json's do_lower_case)
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
    tok_ = tok::Tokenizer::from_json_file((dir / "tokenizer.json").string());
  } else if (fs::is_regular_file(dir / "vocab.txt", ec)) {
    bool lower = true;
    if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
      JsonFile tc(dir / "tokenizer_config.json");
      lower = tc.flag(tc.root(), "do_lower_case", true);
    }
    tok_ = tok::Tokenizer::from_json(bert_tokenizer_json(dir / "vocab.txt", lower), (dir / "vocab.txt").string());
  } else {
    throw usage_error(fmt::format("{}: the model folder has no tokenizer.json or vocab.txt", dir.string()));
  }
  if (tok_->vocab_size() > cfg.n_vocab)
    throw input_error(fmt::format("the tokenizer has {} tokens but the model's vocab_size is {}: they do not belong together",
                                  tok_->vocab_size(), cfg.n_vocab),
                      dir.string());

  st = std::make_unique<safetensors::File>(safetensors::File::open(need_file("model.safetensors").string()));
  // BertModel saves "embeddings...", the task models "bert.embeddings..."
  std::string prefix;
  for (const char* p : {"", "bert.", "model."})
    if (st->find(std::string(p) + "embeddings.word_embeddings.weight")) {
      prefix = p;
      break;
    }
  auto tensor = [&](const std::string& name, size_t rows, size_t cols, bool full_name = false) -> Mat {
    const std::string n = full_name ? name : prefix + name;
    const safetensors::Tensor* t = st->find(n);
    if (!t) throw input_error(fmt::format("no tensor \"{}\"", n), st->name());
    // rows == 0: a vector of `cols` values
    const uint64_t want_rows = rows, want_cols = cols;
    bool ok = rows == 0 ? (t->shape.size() == 1 && t->shape[0] == want_cols)
                        : (t->shape.size() == 2 && t->shape[0] == want_rows && t->shape[1] == want_cols);
    if (!ok)
      throw input_error(fmt::format("tensor \"{}\" has shape [{}], expected [{}]", n, fmt::join(t->shape, ", "),
                                    rows == 0 ? std::to_string(cols) : fmt::format("{}, {}", rows, cols)),
                        st->name());
    rows = std::max<size_t>(rows, 1);
    std::string_view bytes = st->data(*t);
    if (t->dtype == safetensors::DType::F32 && reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) == 0)
      return Mat{reinterpret_cast<const float*>(bytes.data()), rows, cols};
    return own(st->to_f32(*t), rows, cols);
  };
  const size_t E = cfg.n_embd;
  word = tensor("embeddings.word_embeddings.weight", cfg.n_vocab, E);
  pos = tensor("embeddings.position_embeddings.weight", cfg.n_pos, E);
  type = tensor("embeddings.token_type_embeddings.weight", cfg.n_types, E);
  emb_ln_w = tensor("embeddings.LayerNorm.weight", 0, E);
  emb_ln_b = tensor("embeddings.LayerNorm.bias", 0, E);
  // a layer's tensors, in the order read_layers takes them
  static const LayerNames kHf = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                                 "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
  read_layers("encoder.layer.{}.", kHf, tensor);
  // BertForSequenceClassification: pooler (dense + tanh on [CLS]) and classifier
  if (const safetensors::Tensor* c = st->find("classifier.weight")) {
    if (c->shape.size() != 2 || c->shape[0] == 0 || c->shape[0] > 65536)
      throw input_error("tensor \"classifier.weight\" is not a [labels, hidden] matrix", st->name());
    cfg.n_labels = static_cast<uint32_t>(c->shape[0]);
    cls_w = tensor("classifier.weight", cfg.n_labels, E, true);
    cls_b = tensor("classifier.bias", 0, cfg.n_labels, true);
    pool_w = tensor("pooler.dense.weight", E, E);
    pool_b = tensor("pooler.dense.bias", 0, E);
  }
  cfg.out_dims = cfg.n_embd;
  cfg.max_tokens = cfg.n_pos;
  load_st_modules(dir);
}

// The sentence-transformers files: pooling, normalization, Dense layers, max_seq_length, prompts.
void Encoder::Impl::load_st_modules(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "sentence_bert_config.json", ec)) {
    JsonFile sb(dir / "sentence_bert_config.json");
    if (auto m = sb.integer(sb.root(), "max_seq_length")) {
      if (*m <= 0) throw sb.bad("\"max_seq_length\" is not a positive integer");
      cfg.max_tokens = static_cast<uint32_t>(std::min<int64_t>(*m, cfg.n_pos));
    }
    if (sb.flag(sb.root(), "do_lower_case"))
      throw sb.bad("\"do_lower_case\": true (lowercasing before the tokenizer) is not supported");
  }
  if (fs::is_regular_file(dir / "config_sentence_transformers.json", ec)) {
    JsonFile cst(dir / "config_sentence_transformers.json");
    simdjson::dom::object prompts;
    if (!cst.root()["prompts"].get(prompts))
      for (auto [k, v] : prompts) {
        std::string_view s;
        if (v.get(s)) throw cst.bad(fmt::format("prompt \"{}\" is not a string", std::string(k)));
        cfg.prompts.emplace_back(std::string(k), std::string(s));
      }
  }
  if (!fs::is_regular_file(dir / "modules.json", ec)) return;  // plain transformers folder: mean pooling
  JsonFile mods(dir / "modules.json");
  simdjson::dom::array arr;
  if (mods.root().get(arr)) throw mods.bad("not a JSON array of modules");
  for (auto m : arr) {
    auto type = mods.string(m, "type").value_or("");
    auto sub = dir / mods.string(m, "path").value_or("");
    const std::string t = type.substr(type.rfind('.') == std::string::npos ? 0 : type.rfind('.') + 1);
    if (t == "Transformer") continue;
    if (t == "Normalize") {
      cfg.normalize = true;
    } else if (t == "Pooling") {
      JsonFile pc(sub / "config.json");
      auto r = pc.root();
      std::vector<Pooling> modes;
      if (pc.flag(r, "pooling_mode_cls_token")) modes.push_back(Pooling::Cls);
      if (pc.flag(r, "pooling_mode_mean_tokens")) modes.push_back(Pooling::Mean);
      if (pc.flag(r, "pooling_mode_max_tokens")) modes.push_back(Pooling::Max);
      if (pc.flag(r, "pooling_mode_mean_sqrt_len_tokens")) modes.push_back(Pooling::MeanSqrtLen);
      if (pc.flag(r, "pooling_mode_lasttoken")) modes.push_back(Pooling::Last);
      if (pc.flag(r, "pooling_mode_weightedmean_tokens")) throw pc.bad("weighted mean pooling is not supported");
      if (modes.size() != 1)
        throw pc.bad(fmt::format("{} pooling modes are set; loom supports exactly one (cls, mean, max, mean_sqrt_len, lasttoken)", modes.size()));
      if (!pc.flag(r, "include_prompt", true)) throw pc.bad("\"include_prompt\": false is not supported");
      cfg.pooling = modes[0];
    } else if (t == "Dense") {
      JsonFile dc(sub / "config.json");
      const uint32_t in = dc.need(dc.root(), "in_features"), out = dc.need(dc.root(), "out_features");
      if (in != cfg.out_dims) throw dc.bad(fmt::format("in_features {} does not follow the previous module's {} dimensions", in, cfg.out_dims));
      auto act = dc.string(dc.root(), "activation_function").value_or("torch.nn.modules.linear.Identity");
      Dense d;
      if (act == "torch.nn.modules.activation.Tanh") d.tanh = true;
      else if (act != "torch.nn.modules.linear.Identity") throw dc.bad(fmt::format("activation_function \"{}\" is not supported (Tanh, Identity)", act));
      fs::path wf = sub / "model.safetensors";
      if (!fs::is_regular_file(wf, ec)) throw usage_error(fmt::format("{}: the Dense module has no model.safetensors", sub.string()));
      auto f = safetensors::File::open(wf.string());
      auto get = [&](const char* name, size_t rows, size_t cols) {
        const safetensors::Tensor* x = f.find(name);
        if (!x || x->n_elements() != rows * cols) throw input_error(fmt::format("no tensor \"{}\" of {} values", name, rows * cols), wf.string());
        return own(f.to_f32(*x), rows, cols);
      };
      d.w = get("linear.weight", out, in);
      if (dc.flag(dc.root(), "bias", true)) d.b = get("linear.bias", 1, out);
      dense.push_back(d);
      cfg.out_dims = out;
    } else {
      throw mods.bad(fmt::format("module \"{}\" is not supported (supported: Transformer, Pooling, Dense, Normalize)", type));
    }
  }
}

// ---- GGUF (llama.cpp's bert) -------------------------------------------------------------------

void Encoder::Impl::load_gguf(const std::string& file, const EncoderOptions& opt) {
  gg = std::make_unique<gguf::File>(gguf::File::open(file));
  auto arch = gg->get_string("general.architecture").value_or("");
  if (arch != "bert") return load_decoder(file, arch, opt);
  auto need = [&](const std::string& key) -> uint32_t {
    auto v = gg->get_int(key);
    if (!v || *v <= 0 || *v > (1 << 24)) throw input_error(fmt::format("metadata \"{}\" is missing or not a positive integer", key), file);
    return static_cast<uint32_t>(*v);
  };
  cfg.n_embd = need("bert.embedding_length");
  cfg.n_ff = need("bert.feed_forward_length");
  cfg.n_layer = need("bert.block_count");
  cfg.n_head = need("bert.attention.head_count");
  cfg.n_pos = need("bert.context_length");
  if (cfg.n_embd % cfg.n_head) throw input_error("bert.embedding_length is not a multiple of bert.attention.head_count", file);
  if (const gguf::Value* e = gg->find("bert.attention.layer_norm_epsilon"); e && e->as_float()) cfg.ln_eps = static_cast<float>(*e->as_float());
  int64_t pt = gg->get_int("bert.pooling_type").value_or(1);
  if (pt == 1) cfg.pooling = Pooling::Mean;
  else if (pt == 2) cfg.pooling = Pooling::Cls;
  else if (pt == 3) cfg.pooling = Pooling::Last;
  else throw input_error(fmt::format("bert.pooling_type {} is not supported (1 mean, 2 cls, 3 last)", pt), file);
  cfg.normalize = true;
  tok_ = tok::Tokenizer::from_gguf(*gg, file);

  auto tensor = [&](const std::string& name, size_t rows, size_t cols) -> Mat {
    const gguf::TensorInfo* t = gg->find_tensor(name);
    if (!t) throw input_error(fmt::format("no tensor \"{}\"", name), file);
    // rows == 0: a vector of `cols` values
    bool ok = t->ne.size() >= 1 && t->ne[0] == cols && (rows == 0 ? t->n_elements() == cols : t->ne.size() >= 2 && t->ne[1] == rows && t->n_elements() == rows * cols);
    if (!ok) throw input_error(fmt::format("tensor \"{}\" has shape [{}], expected {} x {}", name, fmt::join(t->ne, ", "), cols, rows), file);
    rows = std::max<size_t>(rows, 1);
    std::string_view bytes = gg->tensor_data(*t);
    auto type = static_cast<kernels::GgmlType>(t->ggml_type);
    if (type == kernels::GgmlType::F32 && reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) == 0)
      return Mat{reinterpret_cast<const float*>(bytes.data()), rows, cols};
    if (!tensor::can_dequantize(type)) throw input_error(fmt::format("tensor \"{}\" has a type loom cannot read", name), file);
    std::vector<float> v(rows * cols);
    tensor::dequantize_row(type, bytes.data(), v.data(), v.size());
    return own(std::move(v), rows, cols);
  };
  const gguf::TensorInfo* te = gg->find_tensor("token_embd.weight");
  if (!te || te->ne.size() < 2) throw input_error("no tensor \"token_embd.weight\"", file);
  cfg.n_vocab = static_cast<uint32_t>(te->ne[1]);
  const gguf::TensorInfo* tt = gg->find_tensor("token_types.weight");
  cfg.n_types = tt && tt->ne.size() >= 2 ? static_cast<uint32_t>(tt->ne[1]) : 0;
  if (tok_->vocab_size() > cfg.n_vocab)
    throw input_error(fmt::format("the vocabulary has {} tokens but token_embd.weight has {} rows", tok_->vocab_size(), cfg.n_vocab), file);
  const size_t E = cfg.n_embd;
  word = tensor("token_embd.weight", cfg.n_vocab, E);
  pos = tensor("position_embd.weight", cfg.n_pos, E);
  if (cfg.n_types) type = tensor("token_types.weight", cfg.n_types, E);
  else {
    cfg.n_types = 1;
    type = own(std::vector<float>(E, 0.0f), 1, E);
  }
  emb_ln_w = tensor("token_embd_norm.weight", 0, E);
  emb_ln_b = tensor("token_embd_norm.bias", 0, E);
  static const LayerNames kGguf = {"attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down",
                                   "layer_output_norm"};
  read_layers("blk.{}.", kGguf, tensor);
  cfg.out_dims = cfg.n_embd;
  cfg.max_tokens = cfg.n_pos;
}

// ---- a decoder as an embedder ------------------------------------------------------------------

// A decoder GGUF (llama, qwen2, qwen3, gemma3) embeds when it says how: {arch}.pooling_type
// (llama.cpp's: 1 mean, 2 cls = first token, 3 last), as embedding models converted by llama.cpp
// do. Vectors are the hidden states after the output norm, normalized by default (llama.cpp's
// embedding tool normalizes them).
void Encoder::Impl::load_decoder(const std::string& file, const std::string& arch, const EncoderOptions& opt) {
  auto pt = gg->get_int(arch + ".pooling_type");
  if (!pt)
    throw input_error(fmt::format("a \"{}\" model that does not declare {}.pooling_type: not an embedding model (loom embed takes bert "
                                  "encoders, and decoder models that declare their pooling; generation is loom generate)",
                                  arch, arch),
                      file);
  if (*pt == 1) cfg.pooling = Pooling::Mean;
  else if (*pt == 2) cfg.pooling = Pooling::Cls;
  else if (*pt == 3) cfg.pooling = Pooling::Last;
  else throw input_error(fmt::format("{}.pooling_type {} is not supported (1 mean, 2 cls, 3 last)", arch, *pt), file);
  dec_file = std::shared_ptr<gguf::File>(std::move(gg));
  tok_ = tok::Tokenizer::from_gguf(*dec_file, file);
  const uint32_t ctx = static_cast<uint32_t>(dec_file->get_int(arch + ".context_length").value_or(2048));
  cfg.arch = arch;
  cfg.n_pos = cfg.max_tokens = std::min<uint32_t>(ctx, 8192);
  dec = std::make_unique<Decoder>(dec_file, DecoderOptions{.n_ctx = cfg.n_pos, .threads = opt.threads, .n_seq = 8, .embeddings = true});
  cfg.n_vocab = dec->config().n_vocab;
  cfg.n_embd = cfg.out_dims = dec->config().n_embd;
  cfg.n_layer = dec->config().n_layer;
  cfg.n_types = 1;
  cfg.normalize = true;
}

void Encoder::Impl::embed_decoder(const std::vector<EncoderInput>& batch, Pooling pooling, float* out) {
  const size_t E = cfg.n_embd;
  if (pooling == Pooling::Max || pooling == Pooling::MeanSqrtLen)
    throw usage_error(fmt::format("{} pooling is not available for a decoder model (mean, cls, last)", pooling_name(pooling)));
  for (size_t b = 0; b < batch.size(); b += dec->n_seq()) {
    const size_t e = std::min(batch.size(), b + dec->n_seq());
    std::vector<BatchToken> tokens;
    for (size_t s = b; s < e; ++s) {
      check_input(batch[s]);
      const auto& ids = batch[s].ids;
      for (uint32_t p = 0; p < ids.size(); ++p) {
        const bool keep = pooling == Pooling::Mean || (pooling == Pooling::Last ? p + 1 == ids.size() : p == 0);
        tokens.push_back({.token = ids[p], .pos = p, .seq = static_cast<uint32_t>(s - b), .logits = keep});
      }
    }
    std::vector<float> h = dec->decode(tokens);
    size_t row = 0;
    for (size_t s = b; s < e; ++s) {
      const size_t rows = pooling == Pooling::Mean ? batch[s].ids.size() : 1;
      float* o = out + s * E;
      std::fill(o, o + E, 0.0f);
      for (size_t r = 0; r < rows; ++r, ++row)
        for (size_t c = 0; c < E; ++c) o[c] += h[row * E + c];
      for (size_t c = 0; c < E; ++c) o[c] /= static_cast<float>(rows);
    }
  }
}

// ---- forward pass ------------------------------------------------------------------------------

void Encoder::Impl::check_input(const EncoderInput& in) const {
  if (in.ids.empty()) throw input_error("an empty input sequence (no tokens)");
  if (in.ids.size() > cfg.n_pos)
    throw input_error(fmt::format("{} tokens: more than the model's {} positions", in.ids.size(), cfg.n_pos));
  if (!in.types.empty() && in.types.size() != in.ids.size()) throw input_error("token types and ids differ in number");
  for (int32_t id : in.ids)
    if (id < 0 || static_cast<uint32_t>(id) >= cfg.n_vocab) throw input_error(fmt::format("token id {} is outside the vocabulary", id));
  for (int32_t t : in.types)
    if (t < 0 || static_cast<uint32_t>(t) >= cfg.n_types) throw input_error(fmt::format("token type {} is outside the model's {}", t, cfg.n_types));
}

Act Encoder::Impl::forward(const std::vector<EncoderInput>& batch) {
  std::vector<uint32_t> lengths;
  std::vector<int32_t> ids, types;
  bool any_types = false;
  for (const EncoderInput& in : batch) {
    check_input(in);
    lengths.push_back(static_cast<uint32_t>(in.ids.size()));
    ids.insert(ids.end(), in.ids.begin(), in.ids.end());
    any_types |= !in.types.empty();
  }
  if (any_types)
    for (const EncoderInput& in : batch) {
      if (in.types.empty()) types.insert(types.end(), in.ids.size(), 0);
      else types.insert(types.end(), in.types.begin(), in.types.end());
    }
  const size_t T = ids.size(), E = cfg.n_embd;
  be->begin(lengths);
  Act x = be->alloc(T, E), qkv = be->alloc(T, 3 * E), ctx = be->alloc(T, E), y = be->alloc(T, E), h = be->alloc(T, cfg.n_ff);
  be->embed(ids, types, word, pos, type, x);
  be->layer_norm(x, Act{}, emb_ln_w, emb_ln_b, cfg.ln_eps);
  for (const Layer& L : layers) {
    be->linear(L.qkv_w, L.qkv_b, x, qkv);
    be->attention(qkv, cfg.n_head, ctx);
    be->linear(L.o_w, L.o_b, ctx, y);
    be->layer_norm(x, y, L.ln1_w, L.ln1_b, cfg.ln_eps);
    be->linear_gelu(L.up_w, L.up_b, x, h);
    be->linear(L.down_w, L.down_b, h, y);
    be->layer_norm(x, y, L.ln2_w, L.ln2_b, cfg.ln_eps);
  }
  return x;
}

// ---- Encoder -----------------------------------------------------------------------------------

Encoder::Encoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder& Encoder::operator=(Encoder&&) noexcept = default;
Encoder::~Encoder() = default;

Encoder Encoder::load(const std::string& model, const EncoderOptions& opt) {
  auto found = find_model(model);
  if (!found)
    throw usage_error(fmt::format("no model '{}': not a model folder, a .gguf file, or a model name under {}", model, models_dir()));
  auto impl = std::make_unique<Impl>();
  impl->path = *found;
  std::error_code ec;
  if (fs::is_directory(*found, ec)) impl->load_folder(*found);
  else impl->load_gguf(*found, opt);
  if (!impl->dec) impl->be = make_cpu_encoder_backend(opt.threads);
  return Encoder(std::move(impl));
}

const EncoderConfig& Encoder::config() const { return impl_->cfg; }
const tok::Tokenizer& Encoder::tokenizer() const { return *impl_->tok_; }
const std::string& Encoder::path() const { return impl_->path; }

EncoderInput Encoder::encode_text(std::string_view text, uint32_t max_tokens) const {
  const uint32_t max = max_tokens ? std::min(max_tokens, impl_->cfg.n_pos) : impl_->cfg.max_tokens;
  EncoderInput in;
  tok::Encoding e = impl_->tok_->encode(text, {.add_special = true, .parse_special = true});
  in.ids = std::move(e.ids);
  if (in.ids.size() > max) {
    const auto& suf = impl_->tok_->special_suffix();
    const size_t keep = max > suf.size() ? max - suf.size() : 0;
    in.ids.resize(keep);
    in.ids.insert(in.ids.end(), suf.begin(), suf.end());
    in.ids.resize(std::min<size_t>(in.ids.size(), max));
    in.truncated = true;
  }
  return in;
}

EncoderInput Encoder::encode_pair(std::string_view a, std::string_view b, uint32_t max_tokens) const {
  const uint32_t max = max_tokens ? std::min(max_tokens, impl_->cfg.n_pos) : impl_->cfg.max_tokens;
  const auto& pre = impl_->tok_->special_prefix();
  const auto& suf = impl_->tok_->special_suffix();
  std::vector<int32_t> x = impl_->tok_->encode(a, {.add_special = false, .parse_special = true}).ids, y = impl_->tok_->encode(b, {.add_special = false, .parse_special = true}).ids;
  EncoderInput in;
  const size_t fixed = pre.size() + 2 * suf.size();
  size_t nx = x.size(), ny = y.size();
  if (fixed + nx + ny > max) {
    // Hugging Face tokenizers' longest_first: when only the longer part must give up tokens it
    // keeps what the shorter leaves; when both must, the shorter keeps budget/2 and the longer
    // the rest (budget: the positions left after the special tokens)
    in.truncated = true;
    const size_t budget = max > fixed ? max - fixed : 0;
    const bool swap = nx > ny;
    size_t n1 = std::min(nx, ny), n2;
    n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
    if (n1 + n2 > budget) n1 = budget / 2, n2 = n1 + budget % 2;
    if (swap) std::swap(n1, n2);
    nx = std::min(nx, n1), ny = std::min(ny, n2);
  }
  in.ids.insert(in.ids.end(), pre.begin(), pre.end());
  in.ids.insert(in.ids.end(), x.begin(), x.begin() + static_cast<long>(nx));
  in.ids.insert(in.ids.end(), suf.begin(), suf.end());
  in.types.assign(in.ids.size(), 0);
  in.ids.insert(in.ids.end(), y.begin(), y.begin() + static_cast<long>(ny));
  in.ids.insert(in.ids.end(), suf.begin(), suf.end());
  in.types.resize(in.ids.size(), 1);
  return in;
}

void Encoder::embed(const std::vector<EncoderInput>& batch, Pooling pooling, float* out) {
  if (batch.empty()) return;
  Impl& m = *impl_;
  if (m.dec) return m.embed_decoder(batch, pooling, out);
  Act x = m.forward(batch);
  Act pooled = m.be->alloc(batch.size(), m.cfg.n_embd);
  m.be->pool(x, pooling, pooled);
  if (m.dense.empty()) return m.be->read(pooled, out);
  for (const Impl::Dense& d : m.dense) {
    Act next = m.be->alloc(batch.size(), d.w.rows);
    m.be->linear(d.w, d.b, pooled, next);
    if (d.tanh) m.be->tanh(next);
    pooled = next;
  }
  m.be->read(pooled, out);
}

void Encoder::classify(const std::vector<EncoderInput>& batch, float* out) {
  Impl& m = *impl_;
  if (!m.cfg.n_labels || m.dec) throw usage_error(fmt::format("{}: the model has no classification head (classifier.weight): not a cross-encoder", m.path));
  if (batch.empty()) return;
  Act x = m.forward(batch);
  Act cls = m.be->alloc(batch.size(), m.cfg.n_embd), pooled = m.be->alloc(batch.size(), m.cfg.n_embd);
  m.be->pool(x, Pooling::Cls, cls);
  m.be->linear(m.pool_w, m.pool_b, cls, pooled);
  m.be->tanh(pooled);
  Act logits = m.be->alloc(batch.size(), m.cfg.n_labels);
  m.be->linear(m.cls_w, m.cls_b, pooled, logits);
  m.be->read(logits, out);
}

}  // namespace loom::model
