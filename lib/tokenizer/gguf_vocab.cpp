// Tokenizer::from_gguf_file(): the vocabulary of a GGUF model file (tokenizer.ggml.*), loaded
// the way llama.cpp loads it (src/llama-vocab.cpp, llama_vocab::impl::load) so that it tokenizes
// exactly as llama.cpp does: the same defaults per tokenizer model, the same token attributes
// (including the control tokens llama.cpp recognizes by their text), the same special-token
// order. The tokenization itself is in gguf_models.cpp.
//
// Supported: tokenizer.ggml.model "llama" (SentencePiece-style, score-merged: Llama 2, Gemma),
// "gpt2" (byte-level BPE) with the pre-tokenizers listed in kPreTypes, and "bert" (WordPiece).
// Anything else is a clear error naming the file and the value. Differences from llama.cpp, where
// it would go on with a warning: a special token id out of range is an error here.
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/tokenizer/gguf_llama.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::tok {

namespace {

using namespace llamacpp;

// BPE pre-tokenizer names (tokenizer.ggml.pre) and what llama.cpp does for each.
struct PreType {
  const char* name;
  Pre pre;
  bool clean_spaces, ignore_merges, add_bos;
};
const PreType kPreTypes[] = {
    {"default", Pre::Default, true, false, false},
    {"gpt-2", Pre::Gpt2, true, false, false},
    {"gpt2", Pre::Gpt2, true, false, false},  // not a llama.cpp name; accepted for GPT-2 itself
    {"phi-2", Pre::Gpt2, true, false, false},
    {"mpt", Pre::Gpt2, true, false, false},
    {"olmo", Pre::Gpt2, true, false, false},
    {"smollm", Pre::Smollm, false, false, false},
    {"starcoder", Pre::Smollm, true, false, false},
    {"refact", Pre::Smollm, true, false, false},
    {"codeshell", Pre::Smollm, true, false, false},
    {"command-r", Pre::Smollm, false, false, false},
    {"llama3", Pre::Llama3, true, true, true},
    {"llama-v3", Pre::Llama3, true, true, true},
    {"llama-bpe", Pre::Llama3, true, true, true},
    {"falcon3", Pre::Llama3, true, true, true},
    {"dbrx", Pre::Llama3, true, false, false},
    {"smaug-bpe", Pre::Llama3, true, false, false},
    {"qwen2", Pre::Qwen2, false, false, false},
    {"deepseek-r1-qwen", Pre::Qwen2, false, false, false},
    {"stablelm2", Pre::Qwen2, true, false, false},
};

std::string supported_pre_types() {
  std::string s;
  for (const PreType& p : kPreTypes) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type) as attributes.
uint32_t attr_of_type(int64_t t) {
  switch (t) {
    case 1: return kNormal;
    case 2: return kUnknown;
    case 3: return kControl;
    case 4: return kUserDefined;
    case 5: return kUnused;
    case 6: return kByte;
    default: return kUndefined;
  }
}

// Texts llama.cpp takes for end-of-generation tokens and therefore marks as control tokens,
// whatever type the file gives them (Gemma 3's "</s>" is user-defined in the file). Its search
// for end-of-turn and end-of-message tokens by text marks a subset of these.
const char* const kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "[e~[",
};
// Fill-in-the-middle tokens, recognized (and made control) by text when the file names none of
// that role; one list per role, one token taken (llama.cpp takes the first its hash map yields;
// here the first of the list: they differ only for a vocabulary with two candidates for a role).
struct FimRole {
  const char* key;
  std::vector<const char*> texts;
};
const FimRole kFimRoles[] = {
    {"tokenizer.ggml.fim_pre_token_id", {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>"}},
    {"tokenizer.ggml.fim_suf_token_id", {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>"}},
    {"tokenizer.ggml.fim_mid_token_id", {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>"}},
    {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"}},
    {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
};

class Loader {
 public:
  Loader(const gguf::File& f, const std::string& path) : f_(f), path_(path) {}

  Tokenizer load() {
    auto v = std::make_shared<Vocab>();
    read_kind(*v);
    read_tokens(*v);
    if (v->kind == Kind::Bpe) read_merges(*v);
    read_special_ids(*v);
    mark_attributes(*v);
    build_caches(*v);

    Tokenizer::Parts p;
    for (size_t id = 0; id < v->text.size(); ++id)
      if (v->attr[id] & (kControl | kUnknown)) p.added.push_back({v->text[id], static_cast<TokenId>(id), true});
    if (v->kind == Kind::Wpm) {
      // llama.cpp frames every WordPiece sequence as [CLS] ... [SEP] whatever the add_* flags say
      // (add_sep_token is about pairs; convert_hf_to_gguf.py writes it false for BERT)
      p.prefix.push_back(v->bos);
      p.suffix.push_back(v->sep);
    } else {
      if (v->add_bos) p.prefix.push_back(v->bos);
      if (v->add_eos) p.suffix.push_back(v->eos);
    }
    std::shared_ptr<const Vocab> cv = v;
    p.model = make_model(cv);
    p.decoder = make_decoder(cv);
    return Tokenizer::from_parts(std::move(p));
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw input_error(what, path_); }

  std::optional<bool> flag(const char* key) const {
    const gguf::Value* x = f_.find(key);
    if (!x) return std::nullopt;
    if (x->type != gguf::Type::Bool) fail(fmt::format("{} is a {}, not a bool", key, gguf::type_name(x->type)));
    return x->u != 0;
  }

  const gguf::Value* array(const char* key, std::initializer_list<gguf::Type> elems) const {
    const gguf::Value* x = f_.find(key);
    if (!x) return nullptr;
    bool ok = x->type == gguf::Type::Array && std::find(elems.begin(), elems.end(), x->elem) != elems.end();
    if (!ok)
      fail(fmt::format("{} is a {}{}{}, not an array of {}", key, gguf::type_name(x->type), x->type == gguf::Type::Array ? " of " : "",
                       x->type == gguf::Type::Array ? gguf::type_name(x->elem) : "", gguf::type_name(*elems.begin())));
    return x;
  }

  void read_kind(Vocab& v) {
    const gguf::Value* m = f_.find("tokenizer.ggml.model");
    if (!m) fail("no tokenizer.ggml.model: the file has no vocabulary");
    if (m->type != gguf::Type::String) fail(fmt::format("tokenizer.ggml.model is a {}, not a string", gguf::type_name(m->type)));
    const std::string& model = m->s;
    // defaults per model, as llama.cpp sets them before reading the file's own values
    if (model == "llama") {
      v.kind = Kind::Spm;
      v.bos = 1, v.eos = 2, v.unk = 0;
      v.add_space_prefix = true, v.add_bos = true;
    } else if (model == "gpt2") {
      v.kind = Kind::Bpe;
      v.bos = 11, v.eos = 11;
      auto pre = f_.get_string("tokenizer.ggml.pre");
      std::string name = pre.value_or("");
      if (name.empty()) name = "default";  // llama.cpp's choice (with a warning) for a file without one
      const PreType* t = nullptr;
      for (const PreType& x : kPreTypes)
        if (name == x.name) t = &x;
      if (!t)
        fail(fmt::format("tokenizer.ggml.pre \"{}\" (the BPE pre-tokenizer) is not supported; supported: {}", name,
                         supported_pre_types()));
      v.pre = t->pre;
      v.clean_spaces = t->clean_spaces;
      v.ignore_merges = t->ignore_merges;
      v.add_bos = t->add_bos;
    } else if (model == "bert") {
      v.kind = Kind::Wpm;
      v.bos = 101, v.unk = 100, v.sep = 102;
      v.add_bos = true, v.add_sep = true, v.clean_spaces = true;
    } else {
      fail(fmt::format("tokenizer.ggml.model \"{}\" is not supported; supported: llama (SentencePiece), gpt2 (byte-level BPE), "
                       "bert (WordPiece)",
                       model));
    }
    if (auto x = flag("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *x;
  }

  void read_tokens(Vocab& v) {
    const gguf::Value* tokens = array("tokenizer.ggml.tokens", {gguf::Type::String});
    if (!tokens) fail("no tokenizer.ggml.tokens array: the file has no vocabulary");
    size_t n = tokens->size();
    if (n == 0) fail("tokenizer.ggml.tokens is empty");
    const gguf::Value* scores = array("tokenizer.ggml.scores", {gguf::Type::F32, gguf::Type::I32});
    if (scores && scores->size() < n)
      fail(fmt::format("tokenizer.ggml.scores has {} values for {} tokens", scores->size(), n));
    const gguf::Value* types = array("tokenizer.ggml.token_type", {gguf::Type::I32});
    if (types && types->size() < n)
      fail(fmt::format("tokenizer.ggml.token_type has {} values for {} tokens", types->size(), n));
    v.text.resize(n);
    v.score.assign(n, 0.0f);
    v.attr.assign(n, kNormal);
    v.ids.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      std::string t(tokens->str(i));
      if (t.empty()) t = fmt::format("[EMPTY_{}]", i);
      auto [it, fresh] = v.ids.emplace(t, static_cast<TokenId>(i));
      if (!fresh) fail(fmt::format("token {} (\"{}\") repeats token {}", i, t, it->second));
      v.max_token_len = std::max(v.max_token_len, t.size());
      v.text[i] = std::move(t);
      if (scores) {
        const gguf::Value s = scores->at(i);
        v.score[i] = scores->elem == gguf::Type::F32 ? static_cast<float>(s.f) : static_cast<float>(s.i);
      }
      if (types) v.attr[i] = attr_of_type(types->at(i).as_int().value_or(0));
    }
  }

  void read_merges(Vocab& v) {
    const gguf::Value* merges = array("tokenizer.ggml.merges", {gguf::Type::String});
    if (!merges) fail("no tokenizer.ggml.merges: a gpt2 (BPE) vocabulary needs its merges");
    v.ranks.reserve(merges->size());
    for (size_t r = 0; r < merges->size(); ++r) {
      const std::string_view m = merges->str(r);
      size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos) continue;  // llama.cpp keeps it as ("", ""), which never matches
      v.ranks.emplace(m, static_cast<int32_t>(r));  // "left right"; the first of duplicates wins
    }
  }

  void read_special_ids(Vocab& v) {
    size_t n = v.text.size();
    struct Key {
      const char* key;
      TokenId* id;
    };
    TokenId eot = kNull, eom = kNull, pad = kNull, mask = kNull;
    const Key keys[] = {
        {"tokenizer.ggml.bos_token_id", &v.bos},         {"tokenizer.ggml.eos_token_id", &v.eos},
        {"tokenizer.ggml.eot_token_id", &eot},           {"tokenizer.ggml.eom_token_id", &eom},
        {"tokenizer.ggml.unknown_token_id", &v.unk},     {"tokenizer.ggml.seperator_token_id", &v.sep},
        {"tokenizer.ggml.padding_token_id", &pad},       {"tokenizer.ggml.mask_token_id", &mask},
    };
    for (const Key& k : keys) {
      if (*k.id != kNull && static_cast<size_t>(*k.id) >= n) *k.id = kNull;  // a default the vocabulary is too small for
      const gguf::Value* x = f_.find(k.key);
      if (!x) continue;
      auto id = x->as_int();
      if (!id) fail(fmt::format("{} is a {}, not a token id", k.key, gguf::type_name(x->type)));
      if (*id < 0 || static_cast<uint64_t>(*id) >= n)
        fail(fmt::format("{} is {}, out of range for a vocabulary of {} tokens", k.key, *id, n));
      *k.id = static_cast<TokenId>(*id);
    }
    if (auto x = flag("tokenizer.ggml.add_bos_token")) v.add_bos = *x;
    if (auto x = flag("tokenizer.ggml.add_eos_token")) v.add_eos = *x;
    if (auto x = flag("tokenizer.ggml.add_sep_token")) v.add_sep = *x;
    if (v.add_bos && v.bos == kNull) fail("tokenizer.ggml.add_bos_token is true but there is no bos_token_id");
    if (v.add_eos && v.eos == kNull) fail("tokenizer.ggml.add_eos_token is true but there is no eos_token_id");
    if (v.kind == Kind::Wpm && (v.bos == kNull || v.sep == kNull))
      fail("a WordPiece vocabulary needs bos_token_id ([CLS]) and seperator_token_id ([SEP])");
    if (auto x = flag("tokenizer.ggml.normalizer.lowercase")) v.lowercase = *x;
    v.strip_accents = v.lowercase;
    if (auto x = flag("tokenizer.ggml.normalizer.strip_accents")) v.strip_accents = *x;
  }

  // Attributes llama.cpp changes after reading the token types.
  void mark_attributes(Vocab& v) {
    auto control = [&](TokenId id) { v.attr[static_cast<size_t>(id)] |= kControl; };
    auto by_text = [&](const char* t) { return v.find(t); };
    for (const FimRole& role : kFimRoles) {
      if (f_.find(role.key)) continue;
      for (const char* t : role.texts)
        if (TokenId id = by_text(t); id != kNull) {
          control(id);
          break;
        }
    }
    for (const char* t : kEogTexts)
      if (TokenId id = by_text(t); id != kNull) control(id);
    // gpt-oss: these are always rendered
    for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
      if (TokenId id = by_text(t); id != kNull) v.attr[static_cast<size_t>(id)] = kUserDefined;
    // o200k_harmony / solar-open: "<|end|>" is an ordinary user-defined token there
    bool has_return = by_text("<|return|>") != kNull, has_call = by_text("<|call|>") != kNull || by_text("<|calls|>") != kNull;
    bool has_flush = by_text("<|flush|>") != kNull;
    if (TokenId end = by_text("<|end|>"); end != kNull && has_call && (has_return || has_flush))
      v.attr[static_cast<size_t>(end)] = kUserDefined;
    // Gemma 4: "</s>" is an ordinary token when "<|tool_response>" exists
    if (TokenId s = by_text("</s>"); s != kNull && by_text("<|tool_response>") != kNull) v.attr[static_cast<size_t>(s)] = kNormal;
  }

  void build_caches(Vocab& v) {
    // llama.cpp's special-token order: ids ascending, then std::sort by length, longest first
    // (std::sort is not stable: the same call on the same input gives llama.cpp's tie order)
    std::vector<TokenId> order;
    for (size_t id = 0; id < v.text.size(); ++id)
      if (v.attr[id] & (kControl | kUserDefined | kUnknown)) order.push_back(static_cast<TokenId>(id));
    std::sort(order.begin(), order.end(),
              [&](TokenId a, TokenId b) { return v.text[static_cast<size_t>(a)].size() > v.text[static_cast<size_t>(b)].size(); });
    for (TokenId id : order)
      if (!(v.attr[static_cast<size_t>(id)] & (kControl | kUnknown))) v.cut_order.push_back(id);
    for (int b = 0; b < 256; ++b) {
      TokenId id = v.find(fmt::format("<0x{:02X}>", b));
      if (id == kNull) id = v.find(std::string(1, static_cast<char>(b)));
      v.byte_token[b] = id;
    }
    v.piece.resize(v.text.size());
    for (size_t id = 0; id < v.text.size(); ++id) v.piece[id] = token_piece(v, static_cast<TokenId>(id));
    if (v.kind == Kind::Spm)  // which characters some token joins to a following U+2581
      for (const std::string& t : v.text)
        for (size_t at = t.find("\xE2\x96\x81", 1); at != std::string::npos; at = t.find("\xE2\x96\x81", at + 1)) {
          size_t lead = at - 1;
          while (lead > 0 && (static_cast<unsigned char>(t[lead]) & 0xC0) == 0x80) --lead;
          v.before_marker.insert(t.substr(lead, at - lead));
        }
  }

  const gguf::File& f_;
  const std::string& path_;
};

}  // namespace

Tokenizer Tokenizer::from_gguf_file(const std::string& path) {
  gguf::File f = gguf::File::open(path);
  return from_gguf(f, path);
}

Tokenizer Tokenizer::from_gguf(const gguf::File& f, const std::string& name) { return Loader(f, name).load(); }

}  // namespace loom::tok
