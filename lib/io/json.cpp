#include "loom/io/json.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include <array>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <fmt/format.h>
#include <simdjson.h>

#include "loom/core/error.h"
#include "loom/text/utf8.h"

namespace loom::json {

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

size_t first_invalid_utf8(std::string_view s) {
  if (valid_utf8(s)) return s.size();  // the fast check first; the scan below only finds where
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return i;
    if (i + len > n) return i;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

std::string lossy_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    size_t ok = first_invalid_utf8(in.substr(i));
    out.append(in, i, ok);
    i += ok;
    if (i >= in.size()) break;
    unsigned char lead = static_cast<unsigned char>(in[i]);
    size_t need = lead >= 0xC2 && lead <= 0xDF ? 1 : lead >= 0xE0 && lead <= 0xEF ? 2 : lead >= 0xF0 && lead <= 0xF4 ? 3 : 0;
    ++i;
    for (size_t k = 1; k <= need && i < in.size(); ++k, ++i) {
      unsigned char c = static_cast<unsigned char>(in[i]);
      unsigned lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (lead == 0xE0) lo = 0xA0;
        if (lead == 0xED) hi = 0x9F;
        if (lead == 0xF0) lo = 0x90;
        if (lead == 0xF4) hi = 0x8F;
      }
      if (c < lo || c > hi) break;
    }
    out += "\xEF\xBF\xBD";
  }
  return out;
}

namespace {
// 1 for bytes that must be escaped inside a JSON string.
constexpr auto kEscape = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  return t;
}();

// Offset of the first byte in [p, end) that needs escaping, or end.
const char* find_escape(const char* p, const char* end) {
#if defined(__AVX2__)
  const __m256i quote32 = _mm256_set1_epi8('"'), bslash32 = _mm256_set1_epi8('\\'), ctl32 = _mm256_set1_epi8(0x1F);
  for (; end - p >= 32; p += 32) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i hit = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote32), _mm256_cmpeq_epi8(v, bslash32)),
                                  _mm256_cmpeq_epi8(_mm256_max_epu8(v, ctl32), ctl32));
    unsigned mask = static_cast<unsigned>(_mm256_movemask_epi8(hit));
    if (mask) return p + __builtin_ctz(mask);
  }
#endif
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
  for (; end - p >= 16; p += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                               _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));  // v <= 0x1F, unsigned
    int mask = _mm_movemask_epi8(hit);
    if (mask) return p + __builtin_ctz(static_cast<unsigned>(mask));
  }
#endif
  while (p < end && !kEscape[static_cast<unsigned char>(*p)]) ++p;
  return p;
}
}  // namespace

void append_string_unchecked(std::string& out, std::string_view s) {
  out += '"';
  const char* p = s.data();
  const char* end = p + s.size();
  const char* run = p;
  for (; (p = find_escape(p, end)) < end; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    out.append(run, p - run);
    run = p + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        static const char hex[] = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.append(run, end - run);
  out += '"';
}

void append_string(std::string& out, std::string_view s) {
  if (!valid_utf8(s)) {
    size_t at = first_invalid_utf8(s);
    throw input_error(fmt::format("invalid UTF-8 at byte {} of a string value", at));
  }
  append_string_unchecked(out, s);
}

template <typename F>
static void append_float(std::string& out, F v) {
  if (!std::isfinite(v)) throw input_error(std::isnan(v) ? "NaN has no JSON representation" : "infinity has no JSON representation");
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, double v) { append_float(out, v); }
void append_number(std::string& out, float v) { append_float(out, v); }

void append_number(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}


static uint32_t hex4(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
  }
  return v;
}

void unescape_string(std::string_view raw, std::string& out) {
  // raw is "...", validated by simdjson.
  const char* p = raw.data() + 1;
  const char* end = raw.data() + raw.size() - 1;
  while (p < end) {
    const char* bs = static_cast<const char*>(std::memchr(p, '\\', end - p));
    if (!bs) { out.append(p, end - p); return; }
    out.append(p, bs - p);
    char e = bs[1];
    p = bs + 2;
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        uint32_t cp = hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          uint32_t lo = hex4(p + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
          throw input_error(fmt::format("a string holds the lone surrogate escape \\u{:04X}, which is not a Unicode character", cp));
        text::utf8::append(out, cp);
        break;
      }
      default: out += e; break;  // '"', '\\', '/'
    }
  }
}

}  // namespace loom::json
