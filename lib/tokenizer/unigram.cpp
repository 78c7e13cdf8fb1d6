// Unigram language-model tokenization (SentencePiece's "unigram", Hugging Face's Unigram model):
// a word is cut into vocabulary pieces along the path of highest total score (Viterbi over the
// lattice of every piece that matches at every character boundary). A character no piece starts
// with gets an "unknown" node scored min_score - 10; adjacent unknowns are fused into one token.
//
// Exactly as Hugging Face `tokenizers` does it: ties keep the first candidate found (earlier start,
// then shorter piece), a boundary no path reaches counts as score 0, a piece string that occurs
// twice in the vocabulary means its last id, and an unknown run becomes <0xXX> byte tokens when
// byte_fallback is set and every byte has one.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/text/utf8.h"
#include "loom/tokenizer/flat_map.h"
#include "loom/tokenizer/parts_extra.h"

namespace loom::tok {

namespace {

constexpr double kUnkPenalty = 10.0;

class Unigram final : public Model {
 public:
  Unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<TokenId> unk, bool byte_fallback)
      : unk_(unk), byte_fallback_(byte_fallback) {
    static std::atomic<uint64_t> serial{0};
    serial_ = ++serial;
    pieces_.reserve(vocab.size());
    scores_.reserve(vocab.size());
    double min_score = std::numeric_limits<double>::infinity();
    for (size_t id = 0; id < vocab.size(); ++id) {
      auto& [piece, score] = vocab[id];
      min_score = std::min(min_score, score);
      // trie of the piece's bytes
      int32_t node = 0;
      for (unsigned char c : piece) {
        int32_t fresh = static_cast<int32_t>(node_id_.size());
        node = trie_.emplace(edge(node, c), fresh);
        if (node == fresh) node_id_.push_back(-1);
      }
      node_id_[static_cast<size_t>(node)] = static_cast<TokenId>(id);  // a repeated piece: its last id
      pieces_.push_back(std::move(piece));
      scores_.push_back(score);
    }
    unk_score_ = min_score - kUnkPenalty;
    for (int c = 0; c < 256; ++c) byte_ids_[c] = find(fmt::format("<0x{:02X}>", c));
  }
  Unigram(const Unigram&) = delete;
  Unigram& operator=(const Unigram&) = delete;

  void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const override {
    std::string_view w = text.substr(word.b, word.e - word.b);
    if (w.empty()) return;
    // each thread remembers the tokens of the words it has seen (the result depends on the word alone)
    struct Tok {
      TokenId id;
      uint32_t b, e;  // span within the word
    };
    struct Cache {
      uint64_t owner = 0;
      std::unordered_map<std::string, std::vector<Tok>> map;
    };
    thread_local Cache cache;
    if (cache.owner != serial_) {
      cache.map.clear();
      cache.owner = serial_;
    }
    bool cacheable = w.size() <= 64;
    if (cacheable)
      if (auto it = cache.map.find(std::string(w)); it != cache.map.end()) {
        for (const Tok& t : it->second) {
          ids.push_back(t.id);
          spans.push_back({word.b + t.b, word.b + t.e});
        }
        return;
      }
    size_t first = ids.size();
    encode_fresh(w, word.b, ids, spans);
    if (cacheable) {
      std::vector<Tok> toks;
      for (size_t i = first; i < ids.size(); ++i)
        toks.push_back({ids[i], static_cast<uint32_t>(spans[spans.size() - (ids.size() - i)].b - word.b),
                        static_cast<uint32_t>(spans[spans.size() - (ids.size() - i)].e - word.b)});
      if (cache.map.size() >= (1u << 16)) cache.map.clear();
      cache.map.emplace(std::string(w), std::move(toks));
    }
  }

  size_t vocab_size() const override { return pieces_.size(); }
  const std::string& piece(TokenId id) const override { return pieces_[static_cast<size_t>(id)]; }

 private:
  // The id of a piece (the last id of a repeated one), or -1.
  TokenId find(std::string_view s) const {
    int32_t node = 0;
    for (unsigned char c : s) {
      node = trie_.find(edge(node, c));
      if (node < 0) return -1;
    }
    return node_id_[static_cast<size_t>(node)];
  }

  void encode_fresh(std::string_view w, size_t base, std::vector<TokenId>& ids, std::vector<Span>& spans) const {
    Span word{base, base + w.size()};
    struct Best {
      TokenId id = 0;
      double score = 0;  // a boundary no path reaches keeps 0, as in the reference
      int64_t start = -1;
    };
    std::vector<Best> best(w.size() + 1);
    for (size_t at = 0; at < w.size();) {
      size_t next = at;
      text::utf8::next(w, next);
      size_t char_len = next - at;
      double here = best[at].score;
      bool single = false;
      int32_t node = 0;
      for (size_t k = at; k < w.size(); ++k) {
        node = trie_.find(edge(node, static_cast<unsigned char>(w[k])));
        if (node < 0) break;
        TokenId id = node_id_[static_cast<size_t>(node)];
        if (id < 0) continue;
        Best& target = best[k + 1];
        double cand = scores_[static_cast<size_t>(id)] + here;
        if (target.start < 0 || cand > target.score) target = {id, cand, static_cast<int64_t>(at)};
        if (k + 1 - at == char_len) single = true;
      }
      if (!single) {
        Best& target = best[next];
        double cand = unk_score_ + here;
        if (target.start < 0 || cand > target.score) {
          if (!unk_) throw input_error("a character is not in the Unigram vocabulary and the model has no unk_id");
          target = {*unk_, cand, static_cast<int64_t>(at)};
        }
      }
      at = next;
    }
    // walk back from the end; adjacent unknowns fuse into one string
    std::vector<std::pair<size_t, size_t>> cuts;  // [b, e) of w, last first
    size_t fused_end = 0;
    bool in_unk = false;
    for (size_t end = w.size(); end > 0;) {
      const Best& n = best[end];
      if (n.start < 0) throw input_error("Unigram: no path through the word");  // unreachable: every boundary is reached
      size_t start = static_cast<size_t>(n.start);
      if (unk_ && n.id == *unk_) {
        if (!in_unk) fused_end = end;
        in_unk = true;
      } else {
        if (in_unk) cuts.push_back({end, fused_end});
        in_unk = false;
        cuts.push_back({start, end});
      }
      end = start;
    }
    if (in_unk) cuts.push_back({0, fused_end});
    for (auto it = cuts.rbegin(); it != cuts.rend(); ++it) {
      auto [b, e] = *it;
      std::string_view s = w.substr(b, e - b);
      Span span{word.b + b, word.b + e};
      if (TokenId found = find(s); found >= 0) {
        ids.push_back(found);
        spans.push_back(span);
        continue;
      }
      if (byte_fallback_ && std::all_of(s.begin(), s.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
        for (char c : s) {
          ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
          spans.push_back(span);  // every byte token spans the whole run, as in the reference
        }
        continue;
      }
      if (!unk_) throw input_error("a character is not in the Unigram vocabulary and the model has no unk_id");
      ids.push_back(*unk_);
      spans.push_back(span);
    }
  }

  static uint64_t edge(int32_t node, unsigned char c) { return (static_cast<uint64_t>(node) << 8) | c; }

  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  uint64_t serial_;
  U64Map trie_;                                  // (node << 8 | byte) -> child node
  std::vector<TokenId> node_id_ = {-1};          // the piece ending at each node, or -1
  std::optional<TokenId> unk_;
  bool byte_fallback_;
  double unk_score_ = 0;
  TokenId byte_ids_[256];
};

}  // namespace

double as_serde_json_reads(double parsed) {
  if (!std::isfinite(parsed)) return parsed;
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, parsed);  // shortest round-trip digits
  if (ec != std::errc()) return parsed;
  std::string_view s(buf, static_cast<size_t>(end - buf));
  bool positive = true;
  size_t i = 0;
  if (i < s.size() && s[i] == '-') {
    positive = false;
    ++i;
  }
  // the significand's digits while they fit in a u64; later integer digits scale, later fraction
  // digits are dropped (serde_json without its float_roundtrip feature)
  uint64_t sig = 0;
  int64_t exponent = 0;
  bool overflowed = false, fraction = false, any_fraction = false;
  for (; i < s.size() && s[i] != 'e' && s[i] != 'E'; ++i) {
    if (s[i] == '.') {
      fraction = true;
      continue;
    }
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (fraction) any_fraction = true;
    if (!overflowed && (sig > UINT64_MAX / 10 || (sig == UINT64_MAX / 10 && digit > UINT64_MAX % 10))) overflowed = true;
    if (overflowed) {
      if (!fraction) ++exponent;
      continue;
    }
    sig = sig * 10 + digit;
    if (fraction) --exponent;
  }
  if (i < s.size()) exponent += std::strtol(std::string(s.substr(i + 1)).c_str(), nullptr, 10);
  if (!fraction && !any_fraction && i == s.size() && !overflowed) {  // an integer
    double v = static_cast<double>(sig);
    return positive ? v : -v;
  }
  static const std::vector<double> kPow10 = [] {
    std::vector<double> t;
    for (int k = 0; k <= 308; ++k) t.push_back(std::strtod(("1e" + std::to_string(k)).c_str(), nullptr));
    return t;
  }();
  double f = static_cast<double>(sig);
  for (;;) {
    uint64_t a = static_cast<uint64_t>(exponent < 0 ? -exponent : exponent);
    if (a < kPow10.size()) {
      if (exponent >= 0) f *= kPow10[a];
      else f /= kPow10[a];
      break;
    }
    if (f == 0.0) break;
    if (exponent >= 0) return parsed;  // out of range there; keep what was parsed
    f /= 1e308;
    exponent += 308;
  }
  return positive ? f : -f;
}

std::unique_ptr<Model> make_unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<TokenId> unk,
                                    bool byte_fallback, const std::string& file) {
  if (unk) {
    if (vocab.empty()) throw input_error("Unigram model: the vocabulary is empty but unk_id needs an entry", file);
    if (*unk < 0 || static_cast<size_t>(*unk) >= vocab.size())
      throw input_error(fmt::format("Unigram model: unk_id {} is outside the vocabulary of {}", *unk, vocab.size()), file);
  }
  return std::make_unique<Unigram>(std::move(vocab), unk, byte_fallback);
}

}  // namespace loom::tok
