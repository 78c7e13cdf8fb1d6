// Small UTF-8 helpers on byte strings: code-point iteration, counting, boundaries, whitespace.
//
//   std::string_view s = "a\u00e9\u20ac\U0001F600";   // 1 + 2 + 3 + 4 bytes
//   utf8::count(s)                 == 4               // code points
//   utf8::advance(s, 0, 2)         == 3               // byte offset after 2 code points
//   utf8::is_boundary(s, 2)        == false           // inside "\u00e9"
//   size_t i = 1; utf8::next(s, i) == U'\u00e9', i == 3
//
// Offsets are byte offsets into the string. Everything here except is_valid() assumes valid
// UTF-8 (callers validate input once, at the edge), never reads outside [0, size()) and never
// throws. On invalid input the functions stay in bounds and return something unspecified.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace loom::text::utf8 {

// True for the bytes 10xxxxxx that continue a multi-byte sequence.
inline bool is_continuation(unsigned char b) noexcept { return (b & 0xC0) == 0x80; }

// Length in bytes of the sequence a lead byte starts (1 for ASCII and for stray bytes).
inline size_t sequence_length(unsigned char lead) noexcept {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// True when byte offset i starts a code point or is the end of s (never inside a sequence).
inline bool is_boundary(std::string_view s, size_t i) noexcept {
  return i == 0 || i >= s.size() || !is_continuation(static_cast<unsigned char>(s[i]));
}

// Number of code points in s. Counts the bytes that start a code point, eight at a time: a
// continuation byte is one whose top two bits are 10.
inline size_t count(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0, cont = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    cont += static_cast<size_t>(std::popcount(w & ~(w << 1) & 0x8080808080808080ull));
  }
  for (; i < n; ++i) cont += is_continuation(p[i]);
  return n - cont;
}

// Decodes the code point starting at byte i and moves i past it. Requires i < s.size().
inline char32_t next(std::string_view s, size_t& i) noexcept {
  auto b = [&](size_t k) -> uint32_t {
    return k < s.size() ? static_cast<unsigned char>(s[k]) : 0x80u;
  };
  uint32_t c = b(i);
  if (c < 0x80) {
    i += 1;
    return c;
  }
  size_t n = sequence_length(static_cast<unsigned char>(c));
  uint32_t cp;
  if (n == 2) cp = ((c & 0x1F) << 6) | (b(i + 1) & 0x3F);
  else if (n == 3) cp = ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F);
  else if (n == 4)
    cp = ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F);
  else cp = c;  // stray continuation byte (invalid input)
  i = i + n < s.size() ? i + n : s.size();
  return cp;
}

// Decodes the code point that ends at byte i and moves i to its start. Requires i > 0.
inline char32_t prev(std::string_view s, size_t& i) noexcept {
  size_t j = i - 1;
  size_t stop = i >= 4 ? i - 4 : 0;
  while (j > stop && is_continuation(static_cast<unsigned char>(s[j]))) --j;
  size_t k = j;
  char32_t cp = next(s, k);
  i = j;
  return cp;
}

// Byte offset reached by moving n code points forward from byte offset i (clamped to the end).
inline size_t advance(std::string_view s, size_t i, size_t n) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (n > 0 && i < s.size()) {
    i += sequence_length(p[i]);
    --n;
  }
  return i < s.size() ? i : s.size();
}

// Writes the UTF-8 encoding of cp (a Unicode scalar value) to out[0..4); returns its length.
inline size_t encode(char32_t cp, char* out) noexcept {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

// Appends the UTF-8 encoding of cp (a Unicode scalar value) to out.
inline void append(std::string& out, char32_t cp) {
  char buf[4];
  size_t n = encode(cp, buf);
  for (size_t i = 0; i < n; ++i) out.push_back(buf[i]);
}

// True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
inline bool is_valid(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (!is_continuation(p[i + k])) return false;
    i += len;
  }
  return true;
}

// Whitespace as Python's str.isspace() (and str.strip(), and the regex \s) defines it: ASCII
// \t \n \v \f \r, the separators U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A,
// U+2028, U+2029, U+202F, U+205F and U+3000. (Not U+200B ZERO WIDTH SPACE, not U+FEFF.)
inline bool is_space(char32_t c) noexcept {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  if (c < 0x1680) return c == 0x85 || c == 0xA0;
  return c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Byte offsets [b, e) of s[b, e) with is_space() code points removed from both ends
// (Python's str.strip()). b == e when the range is all whitespace.
struct Range {
  size_t begin = 0, end = 0;
};
inline Range strip(std::string_view s, size_t b, size_t e) noexcept {
  while (b < e) {
    unsigned char c = static_cast<unsigned char>(s[b]);
    if (c < 0x80) {
      if (!is_space(c)) break;
      ++b;
    } else {
      size_t k = b;
      if (!is_space(next(s, k))) break;
      b = k;
    }
  }
  while (e > b) {
    unsigned char c = static_cast<unsigned char>(s[e - 1]);
    if (c < 0x80) {
      if (!is_space(c)) break;
      --e;
    } else {
      size_t k = e;
      if (!is_space(prev(s, k))) break;
      e = k;
    }
  }
  return {b, e};
}

}  // namespace loom::text::utf8
