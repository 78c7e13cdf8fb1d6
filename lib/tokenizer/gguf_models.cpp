// llama.cpp's tokenizers for GGUF vocabularies, reimplemented: the SentencePiece-style merge by
// score (SPM), byte-level BPE with llama.cpp's pre-tokenizers, WordPiece (WPM), the cutting of
// user-defined tokens out of text, and detokenization. Behaviour follows llama.cpp (commit
// 0c1e570, as vendored by llama-cpp-python 0.3.36) including its corner cases; each is named
// where it is handled. See gguf_llama.h for how the work is split with Tokenizer::encode().
#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/tokenizer/gguf_llama.h"
#include "loom/tokenizer/parts.h"

namespace loom::tok::llamacpp {

namespace {

// ---- code points and their classes, as llama.cpp's unicode tables define them ------------------

// Class bits of a code point (llama.cpp's unicode_cpt_flags): its general category, plus
// whitespace. Every code point has exactly one category bit, so a zero means "outside the text".
enum : uint16_t {
  fUndefined = 1,
  fNumber = 2,
  fLetter = 4,
  fSeparator = 8,
  fMark = 16,
  fPunct = 32,
  fSymbol = 64,
  fControl = 128,
  fSpace = 256,
};

// The Unicode White_Space property (what llama.cpp's \s and is_whitespace mean).
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

uint16_t category_flag(uint32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return fLetter;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: return fMark;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return fNumber;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO: return fPunct;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK: case UTF8PROC_CATEGORY_SO: return fSymbol;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: return fSeparator;
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO: return fControl;
    default: return fUndefined;
  }
}

struct FlagTable {
  uint16_t ascii[128];
  FlagTable() {
    for (uint32_t c = 0; c < 128; ++c) ascii[c] = static_cast<uint16_t>(category_flag(c) | (is_space(c) ? fSpace : 0));
  }
};

uint16_t flags_of(uint32_t c) {
  static const FlagTable t;
  if (c < 128) return t.ascii[c];
  if (c > 0x10FFFF) return fUndefined;
  return static_cast<uint16_t>(category_flag(c) | (is_space(c) ? fSpace : 0));
}

// Decodes one code point the way llama.cpp does (unicode_cpt_from_utf8): only the lead byte's
// length and the continuation bits are checked (overlong forms and surrogates pass); anything
// else is U+FFFD for one byte. Code points above U+10FFFF, which llama.cpp cannot encode back,
// count as invalid too.
uint32_t next_cpt(std::string_view s, size_t& i) {
  auto c = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (c(k) & 0xC0) == 0x80; };
  unsigned char b0 = c(i);
  if (!(b0 & 0x80)) {
    ++i;
    return b0;
  }
  if ((b0 & 0x40) && !(b0 & 0x20) && cont(i + 1)) {
    uint32_t r = ((b0 & 0x1Fu) << 6) | (c(i + 1) & 0x3Fu);
    i += 2;
    return r;
  }
  if ((b0 & 0x60) == 0x60 && !(b0 & 0x10) && cont(i + 1) && cont(i + 2)) {
    uint32_t r = ((b0 & 0x0Fu) << 12) | ((c(i + 1) & 0x3Fu) << 6) | (c(i + 2) & 0x3Fu);
    i += 3;
    return r;
  }
  if ((b0 & 0x70) == 0x70 && !(b0 & 0x08) && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
    uint32_t r = ((b0 & 0x07u) << 18) | ((c(i + 1) & 0x3Fu) << 12) | ((c(i + 2) & 0x3Fu) << 6) | (c(i + 3) & 0x3Fu);
    if (r <= 0x10FFFF) {
      i += 4;
      return r;
    }
  }
  ++i;
  return 0xFFFD;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Length of the sequence a byte starts, from its top four bits only (llama.cpp's unicode_len_utf8:
// a stray continuation byte is 1, 0xF8..0xFF are 4).
size_t lead_length(unsigned char b) {
  static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return len[b >> 4];
}

bool c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Code points of a fragment with the byte span of each in the segment.
struct Cpts {
  std::vector<uint32_t> cp;
  std::vector<uint32_t> b, e;
};

Cpts decode_fragment(std::string_view seg, size_t from, size_t to) {
  Cpts c;
  std::string_view s = seg.substr(0, to);
  for (size_t i = from; i < to;) {
    size_t start = i;
    c.cp.push_back(next_cpt(s, i));
    c.b.push_back(static_cast<uint32_t>(start));
    c.e.push_back(static_cast<uint32_t>(i));
  }
  return c;
}

// ---- BPE pre-tokenizers: code point ranges [b, e) -> words ----------------------------------

struct Range {
  size_t b, e;
};
constexpr uint32_t kOutside = 0xFFFFFFFF;

// GPT-2's regex as llama.cpp matches it by hand:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const std::vector<uint32_t>& cp, Range r, std::vector<Range>& out) {
  auto at = [&](size_t p) { return p < r.e ? cp[p] : kOutside; };
  auto fl = [&](size_t p) -> uint16_t { return p < r.e ? flags_of(cp[p]) : 0; };
  const uint16_t word = fSpace | fLetter | fNumber;
  size_t p = r.b;
  auto emit = [&](size_t end) {
    if (end > p) out.push_back({p, end});
    p = end;
  };
  while (p < r.e) {
    uint32_t c = cp[p];
    if (c == '\'' && p + 1 < r.e) {
      uint32_t n1 = cp[p + 1];
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        emit(p + 2);
        continue;
      }
      if (p + 2 < r.e) {
        uint32_t n2 = cp[p + 2];
        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
          emit(p + 3);
          continue;
        }
      }
    }
    size_t q = p + (c == ' ' ? 1 : 0);  // after the optional space
    uint16_t f = c == ' ' ? fl(p + 1) : fl(p);
    if (f & (fLetter | fNumber)) {
      uint16_t kind = f & fLetter ? fLetter : fNumber;
      while (fl(q) & kind) ++q;
      emit(q);
      continue;
    }
    if (f && !(f & word)) {
      while (fl(q) && !(fl(q) & word)) ++q;
      emit(q);
      continue;
    }
    size_t n = 0;
    while (fl(p + n) & fSpace) ++n;
    if (n > 1 && at(p + n) != kOutside) emit(p + n - 1);  // \s+(?!\S): leave the last one
    else if (n > 0) emit(p + n);
    else emit(p + 1);
  }
}

// Llama 3's regex as llama.cpp matches it by hand (max_digits 3); with max_digits 1 it is also what
// llama.cpp's std::regex makes of Qwen2's regex:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const std::vector<uint32_t>& cp, Range r, size_t max_digits, std::vector<Range>& out) {
  auto at = [&](size_t p) { return p < r.e ? cp[p] : kOutside; };
  auto fl = [&](size_t p) -> uint16_t { return p < r.e ? flags_of(cp[p]) : 0; };
  auto lower = [](uint32_t c) { return c < 0x80 && c >= 'A' && c <= 'Z' ? c + 32 : c; };
  auto nl = [](uint32_t c) { return c == '\r' || c == '\n'; };
  const uint16_t word = fSpace | fLetter | fNumber;
  size_t p = r.b;
  auto emit = [&](size_t end) {
    if (end > p) out.push_back({p, end});
    p = end;
  };
  while (p < r.e) {
    uint32_t c = cp[p];
    uint16_t f = fl(p);
    if (c == '\'' && p + 1 < r.e) {
      uint32_t n1 = lower(cp[p + 1]);
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        emit(p + 2);
        continue;
      }
      if (p + 2 < r.e) {
        uint32_t n2 = lower(cp[p + 2]);
        if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
          emit(p + 3);
          continue;
        }
      }
    }
    if (!nl(c) && !(f & fNumber) && ((f & fLetter) || (fl(p + 1) & fLetter))) {
      size_t q = p + 1;
      while (fl(q) & fLetter) ++q;
      emit(q);
      continue;
    }
    if (f & fNumber) {
      size_t q = p;
      while (fl(q) & fNumber) {
        ++q;
        if (q - p >= max_digits) emit(q);
      }
      emit(q);
      continue;
    }
    uint16_t f2 = c == ' ' ? fl(p + 1) : f;
    if (f && !(f2 & word)) {
      size_t q = p + (c == ' ' ? 1 : 0);
      while (fl(q) && !(fl(q) & word)) ++q;
      while (nl(at(q))) ++q;
      emit(q);
      continue;
    }
    size_t n = 0, after_nl = 0;
    for (; fl(p + n) & fSpace; ++n)
      if (nl(cp[p + n])) after_nl = p + n + 1;
    if (after_nl) emit(after_nl);                            // \s*[\r\n]+
    else if (n > 1 && at(p + n) != kOutside) emit(p + n - 1);  // \s+(?!\S)
    else if (n > 0) emit(p + n);                             // \s+
    else emit(p + 1);
  }
}

// A pattern llama.cpp runs through std::regex: every leftmost, longest-run match becomes a word
// and so does the text between matches. `match(p)` is the end of a match starting at p, or p.
template <class Match>
void split_matches(Range r, Match match, std::vector<Range>& out) {
  size_t gap = r.b;
  for (size_t p = r.b; p < r.e;) {
    size_t q = match(p);
    if (q == p) {
      ++p;
      continue;
    }
    if (p > gap) out.push_back({gap, p});
    out.push_back({p, q});
    p = gap = q;
  }
  if (gap < r.e) out.push_back({gap, r.e});
}

// The words of code points [0, n) for a pre-tokenizer type: each regex of llama.cpp's list
// splits the pieces the one before left.
std::vector<Range> pre_tokenize(Pre pre, const std::vector<uint32_t>& cp) {
  std::vector<Range> cur = {{0, cp.size()}}, next;
  auto stage = [&](auto&& split) {
    next.clear();
    for (const Range& r : cur) split(r, next);
    cur.swap(next);
  };
  auto number = [&](size_t p) { return (flags_of(cp[p]) & fNumber) != 0; };
  auto gpt2 = [&](Range r, std::vector<Range>& o) { split_gpt2(cp, r, o); };
  switch (pre) {
    case Pre::Default: {
      // [\p{P}\$\+<=>\^~\|]+ : non-ASCII punctuation, ASCII punctuation and symbols but '`'
      auto punct = [&](size_t p) {
        uint32_t c = cp[p];
        if (c < 128) return c > 32 && c < 127 && c != '`' && !((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'));
        uint16_t f = flags_of(c);
        return !(f & fSpace) && (f & 0xFF) == fPunct;
      };
      stage([&](Range r, std::vector<Range>& o) {
        split_matches(r, [&](size_t p) { while (p < r.e && punct(p)) ++p; return p; }, o);
      });
      stage(gpt2);
      stage([&](Range r, std::vector<Range>& o) {  // \p{N}+
        split_matches(r, [&](size_t p) { while (p < r.e && number(p)) ++p; return p; }, o);
      });
      stage([&](Range r, std::vector<Range>& o) {  // [0-9][0-9][0-9]
        auto digit = [&](size_t p) { return cp[p] >= '0' && cp[p] <= '9'; };
        split_matches(r, [&](size_t p) { return p + 3 <= r.e && digit(p) && digit(p + 1) && digit(p + 2) ? p + 3 : p; }, o);
      });
      break;
    }
    case Pre::Gpt2: stage(gpt2); break;
    case Pre::Smollm:
      stage([&](Range r, std::vector<Range>& o) {  // \p{N}
        split_matches(r, [&](size_t p) { return number(p) ? p + 1 : p; }, o);
      });
      stage(gpt2);
      break;
    case Pre::Llama3: stage([&](Range r, std::vector<Range>& o) { split_llama3(cp, r, 3, o); }); break;
    case Pre::Qwen2: stage([&](Range r, std::vector<Range>& o) { split_llama3(cp, r, 1, o); }); break;
  }
  return cur;
}

// ---- the tokenizers -------------------------------------------------------------------------

// Output of one fragment: ids and their byte spans in the segment.
struct Sink {
  std::vector<TokenId>& ids;
  std::vector<Span>& spans;
  size_t base;  // where the segment starts in the text the spans refer to
  void push(TokenId id, size_t b, size_t e) {
    ids.push_back(id);
    spans.push_back({base + b, base + e});
  }
};

// SPM (llama.cpp's llm_tokenizer_spm): the text's UTF-8 characters are merged pairwise, always the
// adjacent pair whose concatenation is the token of highest score (leftmost on a tie); a final
// piece that is no token becomes byte tokens. `src[i]` is the segment byte that byte i of `t` came from.
// One piece of the text, bytes [from, from + t.size()) of it; remembered per thread.
void spm_piece(const Vocab& v, std::string_view t, size_t from, const std::vector<uint32_t>& src, Sink& out) {
  struct Tok {
    TokenId id;
    uint32_t first, last;  // bytes of the piece it covers, first to last
  };
  struct Cache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<Tok>, StringHash, std::equal_to<>> map;
  };
  thread_local Cache cache;
  if (cache.owner != v.serial) {
    cache.map.clear();
    cache.owner = v.serial;
  }
  bool cacheable = t.size() <= 256;
  if (cacheable)
    if (auto it = cache.map.find(t); it != cache.map.end()) {
      for (const Tok& k : it->second) out.push(k.id, src[from + k.first], src[from + k.last] + 1);
      return;
    }
  std::vector<Tok> seen;
  auto emit = [&](TokenId id, size_t first, size_t last) {
    out.push(id, src[from + first], src[from + last] + 1);
    if (cacheable) seen.push_back({id, static_cast<uint32_t>(first), static_cast<uint32_t>(last)});
  };
  struct Sym {
    uint32_t start, n;
    int32_t prev, next;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::vector<Sym> sym;
  for (size_t i = 0; i < t.size();) {
    size_t n = std::min(lead_length(static_cast<unsigned char>(t[i])), t.size() - i);
    int32_t k = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n), k - 1, i + n == t.size() ? -1 : k + 1});
    i += n;
  }
  if (sym.empty()) return;
  std::priority_queue<Bigram> queue;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const Sym& a = sym[static_cast<size_t>(l)];
    uint32_t size = a.n + sym[static_cast<size_t>(r)].n;
    TokenId id = v.find(t.substr(a.start, size));
    if (id == kNull) return;
    queue.push({v.score[static_cast<size_t>(id)], l, r, size});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_pair(i - 1, i);
  while (!queue.empty()) {
    Bigram g = queue.top();
    queue.pop();
    Sym& l = sym[static_cast<size_t>(g.left)];
    Sym& r = sym[static_cast<size_t>(g.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != g.size) continue;  // one side changed since queued
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = g.left;
    try_pair(l.prev, g.left);
    try_pair(g.left, l.next);
  }
  // (every merged piece is a token, so only single characters can be missing from the vocabulary)
  for (int32_t i = 0; i != -1; i = sym[static_cast<size_t>(i)].next) {
    const Sym& s = sym[static_cast<size_t>(i)];
    TokenId id = v.find(t.substr(s.start, s.n));
    if (id != kNull) {
      emit(id, s.start, s.start + s.n - 1);
      continue;
    }
    for (uint32_t k = s.start; k < s.start + s.n; ++k) {
      unsigned char byte = static_cast<unsigned char>(t[k]);
      if (v.byte_token[byte] == kNull)
        throw input_error(fmt::format("the vocabulary has no token for the byte 0x{:02X} (no <0x{:02X}>)", byte, byte));
      emit(v.byte_token[byte], k, k);
    }
  }
  if (cacheable) {
    if (cache.map.size() >= (1u << 16)) cache.map.clear();
    cache.map.emplace(std::string(t), std::move(seen));
  }
}

// The escaped text cut before each U+2581 whose preceding character ends no token's "x\u2581"
// (no symbol can span such a cut: every merged symbol is a token), the pieces merged apart.
void spm_tokenize(const Vocab& v, const std::string& t, const std::vector<uint32_t>& src, Sink& out) {
  static constexpr std::string_view kMarker = "\xE2\x96\x81";
  size_t start = 0;
  for (size_t i = 1; i + 3 <= t.size(); ++i) {
    if (static_cast<unsigned char>(t[i]) != 0xE2 || t.compare(i, 3, kMarker) != 0) continue;
    size_t k = i;
    size_t lead = k - 1;
    while (lead > 0 && (static_cast<unsigned char>(t[lead]) & 0xC0) == 0x80) --lead;
    if (v.before_marker.count(t.substr(lead, k - lead))) continue;
    spm_piece(v, std::string_view(t).substr(start, i - start), start, src, out);
    start = i;
    i += 2;
  }
  spm_piece(v, std::string_view(t).substr(start), start, src, out);
}



// GPT-2's byte-to-character map undone: character (UTF-8) -> byte.
const StringMap<uint8_t>& byte_of_char() {
  static const StringMap<uint8_t> m = [] {
    StringMap<uint8_t> r;
    for (int b = 0; b < 256; ++b) r.emplace(byte_level_char(static_cast<unsigned char>(b)), static_cast<uint8_t>(b));
    return r;
  }();
  return m;
}

// BPE over one word (llama.cpp's llm_tokenizer_bpe_session): the word's bytes as GPT-2's
// characters, merged by rank (lowest first, leftmost on a tie). A final piece that is no token is
// looked up byte by byte, and bytes that are no token either are dropped — which is what llama.cpp
// does with a character whose byte the vocabulary lacks (SmolLM2 has no token for 0x04, 0x06, ...).
void bpe_word(const Vocab& v, const Cpts& c, Range w, Sink& out) {
  std::string enc;                // the word, each byte as GPT-2's character
  std::vector<uint32_t> enc_cp;   // code point (index in c) of each byte of enc
  std::string utf8;
  for (size_t k = w.b; k < w.e; ++k) {
    utf8.clear();
    append_utf8(utf8, c.cp[k]);
    for (unsigned char byte : utf8) {
      const std::string& ch = byte_level_char(byte);
      enc += ch;
      enc_cp.insert(enc_cp.end(), ch.size(), static_cast<uint32_t>(k));
    }
  }
  // Each thread remembers the tokens of the words it has seen (the result depends on the word alone).
  struct Tok {
    TokenId id;
    uint32_t first, last;  // code points of the word it covers, first to last
  };
  struct Cache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<Tok>> map;
  };
  thread_local Cache cache;
  if (cache.owner != v.serial) {
    cache.map.clear();
    cache.owner = v.serial;
  }
  bool cacheable = enc.size() <= 256;
  if (cacheable)
    if (auto it = cache.map.find(enc); it != cache.map.end()) {
      for (const Tok& t : it->second) out.push(t.id, c.b[w.b + t.first], c.e[w.b + t.last]);
      return;
    }
  std::vector<Tok> seen;
  auto emit = [&](TokenId id, size_t from, size_t n) {
    out.push(id, c.b[enc_cp[from]], c.e[enc_cp[from + n - 1]]);
    if (cacheable) seen.push_back({id, static_cast<uint32_t>(enc_cp[from] - w.b), static_cast<uint32_t>(enc_cp[from + n - 1] - w.b)});
  };
  auto remember = [&] {
    if (!cacheable) return;
    if (cache.map.size() >= (1u << 16)) cache.map.clear();
    cache.map.emplace(enc, std::move(seen));
  };
  if (v.ignore_merges) {
    if (TokenId id = v.find(enc); id != kNull) {
      emit(id, 0, enc.size());
      remember();
      return;
    }
  }
  struct Sym {
    uint32_t start, n;
    int32_t prev, next;
  };
  struct Bigram {
    int32_t rank, left, right;
    uint32_t left_n, right_n;
    bool operator<(const Bigram& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
  };
  std::vector<Sym> sym;
  for (size_t i = 0; i < enc.size();) {
    size_t n = std::min(lead_length(static_cast<unsigned char>(enc[i])), enc.size() - i);
    int32_t k = static_cast<int32_t>(sym.size());
    sym.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n), k - 1, i + n == enc.size() ? -1 : k + 1});
    i += n;
  }
  std::priority_queue<Bigram> queue;
  std::string key;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const Sym& a = sym[static_cast<size_t>(l)];
    const Sym& b = sym[static_cast<size_t>(r)];
    key.assign(enc, a.start, a.n);
    key += ' ';
    key.append(enc, b.start, b.n);
    auto it = v.ranks.find(key);
    if (it != v.ranks.end()) queue.push({it->second, l, r, a.n, b.n});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_pair(i - 1, i);
  while (!queue.empty()) {
    Bigram g = queue.top();
    queue.pop();
    Sym& l = sym[static_cast<size_t>(g.left)];
    Sym& r = sym[static_cast<size_t>(g.right)];
    if (l.n != g.left_n || r.n != g.right_n) continue;  // merged since it was queued
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = g.left;
    try_pair(l.prev, g.left);
    try_pair(g.left, l.next);
  }
  for (int32_t i = sym.empty() ? -1 : 0; i != -1; i = sym[static_cast<size_t>(i)].next) {
    const Sym& s = sym[static_cast<size_t>(i)];
    std::string_view piece = std::string_view(enc).substr(s.start, s.n);
    if (TokenId id = v.find(piece); id != kNull) {
      emit(id, s.start, s.n);
      continue;
    }
    for (uint32_t k = 0; k < s.n; ++k)
      if (TokenId id = v.find(piece.substr(k, 1)); id != kNull) emit(id, s.start + k, 1);
  }
  remember();
}

// The first code point of the canonical decomposition (llama.cpp's NFD table keeps only that).
uint32_t nfd_first(uint32_t c) {
  if (c < 0xC0) return c;
  utf8proc_int32_t buf[8];
  int boundclass = 0;
  utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 8, UTF8PROC_DECOMPOSE, &boundclass);
  return n >= 1 ? static_cast<uint32_t>(buf[0]) : c;
}

uint32_t to_lower(uint32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  if (c == 0x130) return c;  // its lowercase is two code points; llama.cpp's table leaves it
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

bool is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// WordPiece (llama.cpp's llm_tokenizer_wpm): lowercase and strip accents, split at whitespace and
// around punctuation, ASCII symbols and CJK ideographs; each word with "▁" in front is matched
// greedily, longest token first; a word with an unmatched position is the unknown token.
void wpm_tokenize(const Vocab& v, std::string_view seg, size_t from, size_t to, Sink& out) {
  struct Word {
    std::string s;
    std::vector<uint32_t> b, e;  // segment span of each byte's code point
  };
  std::vector<Word> words(1);
  auto add = [&](Word& w, uint32_t c, uint32_t b, uint32_t e) {
    size_t n = w.s.size();
    append_utf8(w.s, c);
    w.b.insert(w.b.end(), w.s.size() - n, b);
    w.e.insert(w.e.end(), w.s.size() - n, e);
  };
  std::string_view s = seg.substr(0, to);
  for (size_t i = from; i < to;) {
    uint32_t b = static_cast<uint32_t>(i);
    uint32_t c = next_cpt(s, i);
    if (v.strip_accents) c = nfd_first(c);
    uint16_t f = flags_of(c);
    if (f & fSpace) {
      if (!words.back().s.empty()) words.emplace_back();
      continue;
    }
    if (c == 0 || c == 0xFFFD || (f & fControl)) continue;
    if (v.strip_accents && (f & fMark)) continue;
    uint32_t lc = v.lowercase ? to_lower(c) : c;
    if ((f & fPunct) || (c < 0x7F && (f & fSymbol)) || is_chinese(c)) {
      if (!words.back().s.empty()) words.emplace_back();
      add(words.back(), lc, b, static_cast<uint32_t>(i));
      words.emplace_back();
    } else {
      add(words.back(), lc, b, static_cast<uint32_t>(i));
    }
  }
  const std::string space = "\xE2\x96\x81";
  for (const Word& w : words) {
    if (w.s.empty()) continue;
    std::string s1 = space + w.s;
    auto span_b = [&](size_t k) { return k < 3 ? w.b[0] : w.b[k - 3]; };
    auto span_e = [&](size_t k) { return k < 3 ? w.e[0] : w.e[k - 3]; };
    size_t mark = out.ids.size(), span_mark = out.spans.size();
    size_t n = s1.size();
    for (size_t i = 0; i < n; ++i) {
      bool match = false;
      for (size_t j = std::min(n, i + v.max_token_len + 1); j > i; --j) {
        TokenId id = v.find(std::string_view(s1).substr(i, j - i));
        if (id == kNull) continue;
        out.push(id, span_b(i), span_e(j - 1));
        match = true;
        i = j - 1;
        break;
      }
      if (!match) {
        out.ids.resize(mark);
        out.spans.resize(span_mark);
        break;
      }
    }
    if (out.ids.size() == mark) {
      if (v.unk == kNull) throw input_error("a word is not in the vocabulary and the vocabulary has no unknown token");
      out.push(v.unk, w.b[0], w.e.back());
    }
  }
}

// ---- the Model: one segment of text between the Tokenizer's special-token cuts ----------------

class LlamaModel final : public Model {
 public:
  explicit LlamaModel(std::shared_ptr<const Vocab> v) : v_(std::move(v)) {}

  void encode_word(std::string_view text, Span word, std::vector<TokenId>& ids, std::vector<Span>& spans) const override {
    std::string_view seg = text.substr(word.b, word.e - word.b);
    Sink out{ids, spans, word.b};
    for (const Frag& f : partition(seg)) {
      if (f.id != kNull) out.push(f.id, f.b, f.e);
      else raw(seg, f.b, f.e, out);
    }
  }
  size_t vocab_size() const override { return v_->text.size(); }
  const std::string& piece(TokenId id) const override { return v_->text[static_cast<size_t>(id)]; }

 private:
  struct Frag {
    TokenId id;  // kNull for raw text
    size_t b, e;
  };

  // llama.cpp's tokenizer_st_partition for the user-defined tokens: each token in turn (longest
  // first) is cut out of every raw fragment, at each occurrence from the left; lstrip / rstrip
  // tokens take the whitespace beside them.
  std::vector<Frag> partition(std::string_view seg) const {
    std::vector<Frag> cur = {{kNull, 0, seg.size()}}, next;
    for (TokenId id : v_->cut_order) {
      const std::string& tt = v_->text[static_cast<size_t>(id)];
      uint32_t a = v_->attr[static_cast<size_t>(id)];
      next.clear();
      bool changed = false;
      for (const Frag& f : cur) {
        if (f.id != kNull) {
          next.push_back(f);
          continue;
        }
        size_t b = f.b, e = f.e;
        for (;;) {
          size_t m = seg.substr(0, e).find(tt, b);
          if (m == std::string_view::npos) {
            next.push_back({kNull, b, e});
            break;
          }
          changed = true;
          size_t le = m;
          if (a & kLstrip)
            while (le > b && c_isspace(seg[le - 1])) --le;
          if (le > b) next.push_back({kNull, b, le});
          next.push_back({id, m, m + tt.size()});
          b = m + tt.size();
          if (a & kRstrip)
            while (b < e && c_isspace(seg[b])) ++b;
          if (b >= e) break;
        }
      }
      if (changed) cur.swap(next);
    }
    return cur;
  }

  void raw(std::string_view seg, size_t b, size_t e, Sink& out) const {
    const Vocab& v = *v_;
    switch (v.kind) {
      case Kind::Spm: {
        // every raw fragment comes first or after a token: it gets the space prefix; spaces -> ▁
        std::string t;
        std::vector<uint32_t> src;
        t.reserve((e - b) * 3 / 2 + 3);
        auto put = [&](std::string_view bytes, size_t from) {
          t += bytes;
          src.insert(src.end(), bytes.size(), static_cast<uint32_t>(from));
        };
        if (v.add_space_prefix) put("\xE2\x96\x81", b);
        for (size_t i = b; i < e; ++i) {
          if (seg[i] == ' ') put("\xE2\x96\x81", i);
          else put(seg.substr(i, 1), i);
        }
        spm_tokenize(v, t, src, out);
        break;
      }
      case Kind::Bpe: {
        Cpts c = decode_fragment(seg, b, e);
        for (const Range& w : pre_tokenize(v.pre, c.cp)) bpe_word(v, c, w, out);
        break;
      }
      case Kind::Wpm: wpm_tokenize(v, seg, b, e, out); break;
    }
  }

  std::shared_ptr<const Vocab> v_;
};

// ---- detokenization ---------------------------------------------------------------------------

// llama.cpp's clean_up_tokenization_spaces, byte for byte: " ?" " !" " ." " ," lose the space;
// " ' " becomes "'"; " 's" " 'm" " 're" " 've" lose the space.
std::string clean_spaces(std::string s) {
  auto pass = [](const std::string& in, auto&& step) {
    std::string out;
    out.reserve(in.size());
    if (!in.empty()) out += in[0];
    std::string src = in;  // read side; step may mark bytes of it
    for (size_t i = 1; i < src.size(); ++i) step(src, i, out);
    return out;
  };
  s = pass(s, [](std::string& t, size_t& i, std::string& out) {
    char x = t[i];
    if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) out.pop_back();
    out += x;
  });
  s = pass(s, [](std::string& t, size_t& i, std::string& out) {
    char x = t[i];
    if (x == '\'' && i + 1 < t.size() && t[i - 1] == ' ' && t[i + 1] == ' ') {
      out.pop_back();
      t[++i] = '\0';  // the space after is dropped, and no longer counts as one for the next byte
    }
    out += x;
  });
  s = pass(s, [](std::string& t, size_t& i, std::string& out) {
    char x = t[i];
    if (t[i - 1] == ' ' && x == '\'' && i + 1 < t.size()) {
      char x1 = t[i + 1];
      if (x1 == 't' || x1 == 'd') {
      } else if (x1 == 's' || x1 == 'm') {
        out.pop_back();
      } else if (i + 2 < t.size()) {
        char x2 = t[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) out.pop_back();
      }
    }
    out += x;
  });
  return s;
}

class LlamaDecoder final : public Decoder {
 public:
  explicit LlamaDecoder(std::shared_ptr<const Vocab> v) : v_(std::move(v)) {}
  std::string decode(const std::vector<std::string>& pieces) const override {
    std::string out;
    bool first = true;
    for (const std::string& p : pieces) {
      TokenId id = v_->find(p);  // token texts are unique, so a piece names its token
      const std::string& bytes = id == kNull ? p : v_->piece[static_cast<size_t>(id)];
      size_t skip = first && v_->add_space_prefix && !bytes.empty() && bytes[0] == ' ' ? 1 : 0;
      out.append(bytes, skip);
      first = false;
    }
    if (v_->clean_spaces) out = clean_spaces(std::move(out));
    return json::lossy_utf8(out);
  }

 private:
  std::shared_ptr<const Vocab> v_;
};

// The byte a <0xXX> token stands for (llama.cpp reads the two characters after "<0x" as hex).
unsigned char byte_of_token(const std::string& text) {
  if (text.size() < 4) return 0;
  std::string hex = text.substr(3, 2);
  return static_cast<unsigned char>(std::strtol(hex.c_str(), nullptr, 16));
}

}  // namespace

std::string token_piece(const Vocab& v, TokenId id) {
  const std::string& text = v.text[static_cast<size_t>(id)];
  uint32_t a = v.attr[static_cast<size_t>(id)];
  if (a & (kUnknown | kControl | kUserDefined)) return text;
  if (a & kNormal) {
    std::string out;
    if (v.kind != Kind::Bpe) {  // ▁ -> space
      for (size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          i += 2;
        } else {
          out += text[i];
        }
      }
      return out;
    }
    // GPT-2's characters back to bytes; a character outside the map is spelled out as llama.cpp does
    const auto& m = byte_of_char();
    std::string ch;
    for (size_t i = 0; i < text.size();) {
      ch.clear();
      append_utf8(ch, next_cpt(text, i));
      if (auto it = m.find(ch); it != m.end()) {
        out += static_cast<char>(it->second);
      } else {
        out += "[UNK_BYTE_0x";
        for (unsigned char b : ch) out += fmt::format("{:02x}", b);
        out += text + "]";
      }
    }
    return out;
  }
  if (a & kByte) return std::string(1, static_cast<char>(byte_of_token(text)));
  return {};
}

std::unique_ptr<Model> make_model(std::shared_ptr<const Vocab> vocab) { return std::make_unique<LlamaModel>(std::move(vocab)); }
std::unique_ptr<Decoder> make_decoder(std::shared_ptr<const Vocab> vocab) { return std::make_unique<LlamaDecoder>(std::move(vocab)); }

}  // namespace loom::tok::llamacpp
