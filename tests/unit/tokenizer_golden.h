// Parity of a loom tokenizer with the Hugging Face goldens (tests/reference/golden/tokenize/):
// check_family() encodes every corpus text and compares ids, ids with special tokens, offsets
// (loom's byte spans against the reference's code-point offsets) and the decode.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/tokenizer/tokenizer.h"

namespace tokenizer_golden {

using namespace loom;

inline const std::string kTokGolden = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/tokenize/";

// Byte offset of each code point index of s (size: code points + 1).
inline std::vector<size_t> char_to_byte(std::string_view s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  out.push_back(s.size());
  return out;
}

inline std::vector<int64_t> int_array(std::string_view raw) {
  std::vector<int64_t> out;
  std::string num;
  for (char c : raw) {
    if ((c >= '0' && c <= '9') || c == '-') {
      num += c;
    } else if (!num.empty()) {
      out.push_back(std::stoll(num));
      num.clear();
    }
  }
  return out;
}

inline void check_family(const std::string& family, const tok::Tokenizer& t, bool offsets = true) {
  auto corpus_in = io::Input::open(kTokGolden + "corpus.jsonl");
  auto gold_in = io::Input::open(kTokGolden + family + ".jsonl.zst");
  io::JsonlReader corpus(*corpus_in), gold(*gold_in);
  io::Record c, g;
  size_t n = 0, bad = 0, bad_ids = 0, bad_special = 0, bad_offsets = 0, bad_decode = 0;
  while (corpus.next(c)) {
    ASSERT_TRUE(gold.next(g)) << family << ": golden file ends early";
    ASSERT_EQ(c.get_string("id"), g.get_string("id"));
    std::string text = c.get_string("text").value();
    // the reference splits special-token strings out of the text by default: --parse-special
    tok::Encoding plain = t.encode(text, {false, true});
    tok::Encoding special = t.encode(text, {true, true});
    std::vector<int64_t> want = int_array(*g.raw("ids")), want_special = int_array(*g.raw("ids_special"));
    std::vector<int64_t> got(plain.ids.begin(), plain.ids.end()), got_special(special.ids.begin(), special.ids.end());
    std::vector<int64_t> offs = int_array(*g.raw("offsets"));
    auto cb = char_to_byte(text);
    bool same_offsets = !offsets || offs.size() == 2 * plain.offsets.size();
    for (size_t i = 0; offsets && same_offsets && i < plain.offsets.size(); ++i)
      same_offsets = cb[static_cast<size_t>(offs[2 * i])] == plain.offsets[i].b && cb[static_cast<size_t>(offs[2 * i + 1])] == plain.offsets[i].e;
    bool same_decode = t.decode(plain.ids) == g.get_string("decoded").value();
    bad_ids += got != want;
    bad_special += got_special != want_special;
    bad_offsets += !same_offsets;
    bad_decode += !same_decode;
    if (got != want || got_special != want_special || !same_offsets || !same_decode) {
      if (++bad <= 5)
        ADD_FAILURE() << family << " record " << *c.get_string("id") << ": ids " << (got == want ? "same" : "differ")
                      << ", with specials " << (got_special == want_special ? "same" : "differ") << ", offsets "
                      << (same_offsets ? "same" : "differ") << ", decode " << (same_decode ? "same" : "differs")
                      << "; text starts " << text.substr(0, 60);
    }
    ++n;
  }
  EXPECT_GT(n, 1000u) << "the golden corpus is missing or short";
  EXPECT_EQ(bad, 0u) << bad << " of " << n << " texts differ from Hugging Face tokenizers (ids " << bad_ids << ", with specials "
                     << bad_special << ", offsets " << bad_offsets << ", decode " << bad_decode << ")";
}


}  // namespace tokenizer_golden
