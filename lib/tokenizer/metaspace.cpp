// Metaspace (SentencePiece's "▁" for spaces) pre-tokenizer and decoder, and WhitespaceSplit.
//
// The reference's Metaspace pre-tokenizer rewrites each piece it is given (' ' -> ▁, a ▁
// prepended per the scheme) and then splits it before every ▁. A loom pre-tokenizer only splits,
// so the rewrite is a normalizer (the last step of normalization: the text the pre-tokenizer and
// model see is the same as the reference's) and the split a pre-tokenizer; tokenizer.cpp's loader
// assembles the two from one "Metaspace" entry.
#include "loom/text/utf8.h"
#include "loom/tokenizer/parts_extra.h"

namespace loom::tok {

namespace {

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

class MetaspaceRewrite final : public Normalizer {
 public:
  MetaspaceRewrite(MetaspaceConfig cfg, bool after_ws, std::unique_ptr<Normalizer> inner)
      : cfg_(std::move(cfg)), after_ws_(after_ws), inner_(std::move(inner)) {}

  Normalized normalize(std::string_view original) const override { return normalize_at(original, 0); }
  // prepend_scheme "first" prepends only at the start of the whole input, not after an added token
  Normalized normalize_at(std::string_view original, size_t base) const override {
    if (!inner_) return rewrite(Normalized::identity(original), base == 0);
    return rewrite(inner_->normalize(original), base == 0);
  }

 private:
  // The rewrite of `in` (aligned to the original), aligned to the original.
  Normalized rewrite(const Normalized& in, bool input_start) const {
    std::string_view text = in.text;
    Normalized n;
    n.text.reserve(text.size() + text.size() / 4 + 3);
    std::string_view rep = cfg_.replacement;
    for (size_t i = 0; i < text.size();) {
      // one piece: the whole text, or (after WhitespaceSplit) a run of non-whitespace
      size_t b = i;
      char32_t c = text::utf8::next(text, i);
      if (after_ws_ && is_white_space(c)) {
        n.push(c, static_cast<uint32_t>(b), static_cast<uint32_t>(i));
        continue;
      }
      size_t e = after_ws_ ? i : text.size();
      while (e < text.size()) {
        size_t k = e;
        if (is_white_space(text::utf8::next(text, k))) break;
        e = k;
      }
      bool starts_with_rep = c == ' ' || text.substr(b).starts_with(rep);
      bool prepend = !starts_with_rep && (cfg_.prepend == MetaspaceConfig::Always || (cfg_.prepend == MetaspaceConfig::First && input_start && in.src_begin[b] == 0));
      if (prepend)  // aligned with the piece's first character
        for (size_t k = 0; k < rep.size();) n.push(text::utf8::next(rep, k), static_cast<uint32_t>(b), static_cast<uint32_t>(i));
      for (size_t k = b; k < e;) {
        size_t kb = k;
        char32_t ch = text::utf8::next(text, k);
        if (ch == ' ')
          for (size_t r = 0; r < rep.size();) n.push(text::utf8::next(rep, r), static_cast<uint32_t>(kb), static_cast<uint32_t>(k));
        else
          n.push(ch, static_cast<uint32_t>(kb), static_cast<uint32_t>(k));
      }
      i = e;
    }
    for (size_t k = 0; k < n.text.size(); ++k) {  // through `in` back to the original
      n.src_begin[k] = in.src_begin[n.src_begin[k]];
      n.src_end[k] = in.src_end[n.src_end[k] - 1];
    }
    return n;
  }

  MetaspaceConfig cfg_;
  bool after_ws_;
  std::unique_ptr<Normalizer> inner_;
};

// Each replacement character starts a new piece (the reference's MergedWithNext split).
class MetaspaceSplit final : public PreTokenizer {
 public:
  explicit MetaspaceSplit(MetaspaceConfig cfg) : cfg_(std::move(cfg)) {}
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    if (within.b >= within.e) return;
    if (!cfg_.split) {
      out.push_back(within);
      return;
    }
    std::string_view t = std::string_view(n.text).substr(0, within.e);
    const std::string& rep = cfg_.replacement;
    size_t start = within.b;
    for (size_t at = within.b; (at = t.find(rep, at)) != std::string_view::npos; at += rep.size()) {
      if (at > start) out.push_back({start, at});
      start = at;
    }
    if (start < within.e) out.push_back({start, within.e});
  }

 private:
  MetaspaceConfig cfg_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  explicit MetaspaceDecoder(MetaspaceConfig cfg) : cfg_(std::move(cfg)) {}
  std::string decode(const std::vector<std::string>& pieces) const override {
    std::string out;
    const std::string& rep = cfg_.replacement;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string_view p = pieces[i];
      bool drop = i == 0 && cfg_.prepend != MetaspaceConfig::Never;  // every ▁ of the first piece
      for (size_t k = 0; k < p.size();) {
        if (!rep.empty() && p.substr(k).starts_with(rep)) {
          if (!drop) out += ' ';
          k += rep.size();
          continue;
        }
        size_t b = k;
        text::utf8::next(p, k);
        out.append(p.substr(b, k - b));
      }
    }
    return out;
  }

 private:
  MetaspaceConfig cfg_;
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void split(const Normalized& n, Span within, std::vector<Span>& out) const override {
    std::string_view t = n.text;
    size_t word = within.b;
    for (size_t i = within.b; i < within.e;) {
      size_t b = i;
      if (is_white_space(text::utf8::next(t, i))) {
        if (word < b) out.push_back({word, b});
        word = i;
      }
    }
    if (word < within.e) out.push_back({word, within.e});
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_metaspace_rewrite(const MetaspaceConfig& cfg, bool after_whitespace_split, std::unique_ptr<Normalizer> inner) {
  return std::make_unique<MetaspaceRewrite>(cfg, after_whitespace_split, std::move(inner));
}
std::unique_ptr<PreTokenizer> make_metaspace_split(const MetaspaceConfig& cfg) { return std::make_unique<MetaspaceSplit>(cfg); }
std::unique_ptr<Decoder> make_metaspace_decoder(const MetaspaceConfig& cfg) { return std::make_unique<MetaspaceDecoder>(cfg); }
std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer() { return std::make_unique<WhitespaceSplit>(); }

}  // namespace loom::tok
