// Normalizers of SentencePiece-converted tokenizers: Precompiled (SentencePiece's compiled
// normalization rules), Strip, Lowercase, NFKC, and Replace of a regex run of one character.
//
// Every one reproduces Hugging Face's alignment: the output is described as a list of Changes
// (character + how it relates to the input) and apply_changes() aligns it the way the reference's
// NormalizedString::transform does, including its quirks (an inserted character takes the
// alignment of the byte before it; removals are charged to the character before them).
#include <utf8proc.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/text/utf8.h"
#include "loom/tokenizer/parts_extra.h"

namespace loom::tok {

namespace {

// Rust char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---- Precompiled -----------------------------------------------------------------------------

// SentencePiece's Darts double array: each 32-bit unit packs a label (byte), a has-leaf bit and
// an offset to the children; a leaf unit holds a value (an offset into the replacement strings).
class Precompiled final : public Normalizer {
 public:
  Precompiled(std::string charsmap, const std::string& file) {
    auto bad = [&](const std::string& what) { return input_error("Precompiled normalizer: precompiled_charsmap " + what, file); };
    if (charsmap.size() < 4) throw bad("is too short to hold its trie size");
    uint32_t trie_bytes = 0;
    for (int k = 3; k >= 0; --k) trie_bytes = trie_bytes << 8 | static_cast<unsigned char>(charsmap[static_cast<size_t>(k)]);
    size_t units = trie_bytes / 4;
    if (units > (charsmap.size() - 4) / 4) throw bad(fmt::format("is truncated: its trie needs {} bytes, {} are left", units * 4, charsmap.size() - 4));
    if (units == 0) throw bad("has an empty trie");
    array_.resize(units);
    for (size_t i = 0; i < units; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(charsmap.data() + 4 + 4 * i);
      array_[i] = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    }
    normalized_ = charsmap.substr(4 + 4 * units);
    if (!text::utf8::is_valid(normalized_)) throw bad("holds replacement strings that are not valid UTF-8");
  }

  Normalized normalize(std::string_view text) const override {
    std::vector<Change> changes;
    changes.reserve(text.size());
    bool modified = false;
    auto replace = [&](std::string_view old_part, std::string_view new_part) {
      int64_t old_count = static_cast<int64_t>(text::utf8::count(old_part)), new_count = 0;
      for (size_t i = 0; i < new_part.size(); ++new_count) changes.push_back({text::utf8::next(new_part, i), 0});
      int64_t diff = new_count - old_count;
      if (diff > 0) {
        for (int64_t k = 0; k < diff; ++k) changes[changes.size() - 1 - static_cast<size_t>(k)].change = 1;
      } else if (diff < 0 && !changes.empty()) {
        changes.back().change += diff;  // charged to the character before (none: silently dropped)
      }
    };
    // Grapheme clusters: a cluster under 6 bytes is first looked up whole; otherwise, or when it
    // has no rule, character by character.
    int32_t state = 0;
    size_t g = 0;
    char32_t prev = 0;
    auto cluster = [&](std::string_view grapheme) {
      if (grapheme.size() < 6) {
        if (auto norm = transform(grapheme)) {
          modified = true;
          replace(grapheme, *norm);
          return;
        }
      }
      for (size_t i = 0; i < grapheme.size();) {
        size_t b = i;
        char32_t c = text::utf8::next(grapheme, i);
        std::string_view part = grapheme.substr(b, i - b);
        if (auto norm = transform(part)) {
          modified = true;
          replace(part, *norm);
        } else {
          changes.push_back({c, 0});
        }
      }
    };
    for (size_t i = 0; i < text.size();) {
      size_t b = i;
      char32_t c = text::utf8::next(text, i);
      if (b > 0 && utf8proc_grapheme_break_stateful(static_cast<utf8proc_int32_t>(prev), static_cast<utf8proc_int32_t>(c), &state)) {
        cluster(text.substr(g, b - g));
        g = b;
      }
      prev = c;
    }
    if (g < text.size()) cluster(text.substr(g));
    if (!modified) return Normalized::identity(text);
    return apply_changes(text, changes, 0);
  }

 private:
  static bool has_leaf(uint32_t u) { return (u >> 8) & 1; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
  static uint32_t offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  // The replacement for the shortest rule key that prefixes `chunk` (the reference takes the
  // first, i.e. shortest, match and replaces the whole chunk with it), or nullopt.
  std::optional<std::string_view> transform(std::string_view chunk) const {
    size_t pos = 0;
    auto unit = [&](size_t at) -> std::optional<uint32_t> {
      if (at >= array_.size()) return std::nullopt;  // a malformed trie: no match
      return array_[at];
    };
    auto u = unit(pos);
    if (!u) return std::nullopt;
    pos ^= offset(*u);
    for (unsigned char c : chunk) {
      if (c == 0) break;
      pos ^= c;
      u = unit(pos);
      if (!u || label(*u) != c) return std::nullopt;
      pos ^= offset(*u);
      if (has_leaf(*u)) {
        auto leaf = unit(pos);
        if (!leaf) return std::nullopt;
        size_t index = value(*leaf);
        if (index > normalized_.size() || !text::utf8::is_boundary(normalized_, index))
          throw input_error(fmt::format("Precompiled normalizer: a rule points outside its replacement strings ({})", index));
        size_t end = normalized_.find('\0', index);
        if (end == std::string::npos) end = normalized_.size();
        return std::string_view(normalized_).substr(index, end - index);
      }
    }
    return std::nullopt;
  }

  std::vector<uint32_t> array_;
  std::string normalized_;
};

// ---- Strip, Lowercase, NFKC ------------------------------------------------------------------

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  Normalized normalize(std::string_view text) const override {
    size_t b = 0, e = text.size();
    if (left_)
      while (b < e) {
        size_t k = b;
        if (!is_white_space(text::utf8::next(text, k))) break;
        b = k;
      }
    if (right_)
      while (e > b) {
        size_t k = e;
        text::utf8::prev(text, k);
        size_t k2 = k;
        if (!is_white_space(text::utf8::next(text, k2))) break;
        e = k;
      }
    // what is kept keeps its own alignment
    Normalized all = Normalized::identity(text);
    Normalized n;
    n.text.assign(text.substr(b, e - b));
    n.src_begin.assign(all.src_begin.begin() + static_cast<ptrdiff_t>(b), all.src_begin.begin() + static_cast<ptrdiff_t>(e));
    n.src_end.assign(all.src_end.begin() + static_cast<ptrdiff_t>(b), all.src_end.begin() + static_cast<ptrdiff_t>(e));
    return n;
  }

 private:
  bool left_, right_;
};

class Lowercase final : public Normalizer {
 public:
  Normalized normalize(std::string_view text) const override {
    std::vector<Change> changes;
    changes.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      char32_t c = text::utf8::next(text, i);
      if (c < 0x80) {
        changes.push_back({c >= 'A' && c <= 'Z' ? c + 32 : c, 0});
      } else if (c == 0x130) {  // the one multi-character lowercase mapping: İ -> i + U+0307
        changes.push_back({'i', 0});
        changes.push_back({0x307, 1});
      } else {
        changes.push_back({static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))), 0});
      }
    }
    return apply_changes(text, changes, 0);
  }
};

// NFKC. Composition never crosses ASCII whitespace, so the text is normalized segment by segment;
// a segment that changes is aligned as a whole to its original span.
class Nfkc final : public Normalizer {
 public:
  Normalized normalize(std::string_view text) const override {
    Normalized n;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    for (size_t i = 0; i < text.size();) {
      size_t j = i;
      while (j < text.size() && !space(text[j])) ++j;
      if (j == i) ++j;
      std::string_view seg = text.substr(i, j - i);
      utf8proc_uint8_t* mapped = nullptr;
      bool ascii = std::all_of(seg.begin(), seg.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
      utf8proc_ssize_t len = ascii ? -1
                                   : utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(seg.data()), static_cast<utf8proc_ssize_t>(seg.size()),
                                                  &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
      std::string_view out = len >= 0 ? std::string_view(reinterpret_cast<char*>(mapped), static_cast<size_t>(len)) : seg;
      if (out == seg) {
        for (size_t k = 0; k < seg.size();) {
          size_t b = k;
          char32_t c = text::utf8::next(seg, k);
          n.push(c, static_cast<uint32_t>(i + b), static_cast<uint32_t>(i + k));
        }
      } else {
        for (size_t k = 0; k < out.size();) n.push(text::utf8::next(out, k), static_cast<uint32_t>(i), static_cast<uint32_t>(j));
      }
      std::free(mapped);
      i = j;
    }
    return n;
  }
};

// ---- Replace of a regex run ------------------------------------------------------------------

// Matches of "C{n,}" (n >= 1) or "C+": maximal runs of at least n characters C, leftmost first.
class RunReplace final : public Normalizer {
 public:
  RunReplace(char32_t c, size_t min, std::string content) : c_(c), min_(min), content_(std::move(content)) {}
  Normalized normalize(std::string_view text) const override {
    // As the reference's Replace: the content takes the alignment of the match's last character.
    Normalized n;
    n.text.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t b = i;
      char32_t c = text::utf8::next(text, i);
      if (c != c_) {
        n.push(c, static_cast<uint32_t>(b), static_cast<uint32_t>(i));
        continue;
      }
      size_t run = 1, last = b, e = i;
      while (e < text.size()) {
        size_t k = e;
        if (text::utf8::next(text, k) != c_) break;
        last = e;
        e = k;
        ++run;
      }
      size_t char_len = i - b;
      if (run >= min_) {
        for (size_t k = 0; k < content_.size();) n.push(text::utf8::next(content_, k), static_cast<uint32_t>(last), static_cast<uint32_t>(e));
      } else {
        for (size_t k = b; k < e; k += char_len) n.push(c_, static_cast<uint32_t>(k), static_cast<uint32_t>(k + char_len));
      }
      i = e;
    }
    return n;
  }

 private:
  char32_t c_;
  size_t min_;
  std::string content_;
};

}  // namespace

// ---- apply_changes ---------------------------------------------------------------------------

Normalized apply_changes(std::string_view input, const std::vector<Change>& changes, size_t initial_offset) {
  // Byte ranges of the input's characters, in order; `next_char` walks them as the reference's
  // iterator over the replaced characters does.
  std::vector<std::pair<uint32_t, uint32_t>> chars;
  chars.reserve(input.size());
  for (size_t i = 0; i < input.size();) {
    size_t b = i;
    text::utf8::next(input, i);
    chars.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(i)});
  }
  size_t next_char = std::min(initial_offset, chars.size());  // the input character at the current offset
  auto consume = [&] {
    if (next_char < chars.size()) ++next_char;
  };
  std::pair<uint32_t, uint32_t> none{0, 0};
  Normalized n;
  n.text.reserve(input.size());
  n.src_begin.reserve(input.size());
  n.src_end.reserve(input.size());
  for (const Change& ch : changes) {
    // the input character at the current offset, or (an insertion) the one before it; clamped where the
    // reference would panic past the end
    std::pair<uint32_t, uint32_t> a;
    if (chars.empty()) a = none;
    else if (ch.change > 0) a = next_char == 0 ? chars[0] : chars[std::min(next_char, chars.size()) - 1];
    else a = next_char < chars.size() ? chars[next_char] : chars.back();
    if (ch.change <= 0) consume();
    for (int64_t k = 0; k < -ch.change; ++k) consume();
    n.push(ch.c, a.first, a.second);
  }
  return n;
}

// ---- factories -------------------------------------------------------------------------------

std::unique_ptr<Normalizer> make_precompiled_normalizer(std::string charsmap, const std::string& file) {
  return std::make_unique<Precompiled>(std::move(charsmap), file);
}
std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right) { return std::make_unique<Strip>(left, right); }
std::unique_ptr<Normalizer> make_lowercase_normalizer() { return std::make_unique<Lowercase>(); }
std::unique_ptr<Normalizer> make_nfkc_normalizer() { return std::make_unique<Nfkc>(); }

std::unique_ptr<Normalizer> make_regex_replace_normalizer(const std::string& regex, std::string content, const std::string& file) {
  auto unsupported = [&] {
    return input_error(fmt::format("Replace normalizer: regex \"{}\" is not supported yet (only a run of one character: \"C{{n,}}\" or \"C+\")", regex), file);
  };
  if (regex.empty()) throw unsupported();
  size_t i = 0;
  char32_t c;
  if (regex[0] == '\\') {
    if (regex.size() < 2 || std::isalnum(static_cast<unsigned char>(regex[1]))) throw unsupported();
    c = static_cast<unsigned char>(regex[1]);
    i = 2;
  } else {
    if (!text::utf8::is_valid(regex)) throw unsupported();
    c = text::utf8::next(regex, i);
    if (std::strchr(".^$|()[]{}*+?\\", static_cast<int>(c)) && c < 0x80) throw unsupported();
  }
  std::string_view rest = std::string_view(regex).substr(i);
  size_t min = 0;
  if (rest == "+") {
    min = 1;
  } else if (rest.size() >= 4 && rest.front() == '{' && rest.substr(rest.size() - 2) == ",}") {
    std::string_view num = rest.substr(1, rest.size() - 3);
    if (num.empty() || num.size() > 6 || !std::all_of(num.begin(), num.end(), [](char d) { return d >= '0' && d <= '9'; })) throw unsupported();
    min = std::stoul(std::string(num));
    if (min == 0) throw unsupported();
  } else {
    throw unsupported();
  }
  return std::make_unique<RunReplace>(c, min, std::move(content));
}

}  // namespace loom::tok
