// Fuzz target: the encoders of the real tokenizers (every tokenizer.json under
// tests/reference/golden/tokenize/files) on arbitrary text. The input bytes become valid UTF-8
// (invalid bytes dropped); every tokenizer must encode them with offsets inside the text, in order,
// and decode; the lossless ones (byte-level BPE, SentencePiece-style with byte fallback) must give
// the text back exactly (a literal U+2581 aside, which SentencePiece-style decoding makes a space). Half the inputs are encoded twice, so word caches are exercised.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/tokenizer/tokenizer.h"

namespace {

struct Loaded {
  std::string name;
  loom::tok::Tokenizer tok;
  bool lossless;  // decode(encode(x)) == x, except that SentencePiece-style ones turn a literal U+2581 into a space
  bool spm;
};

std::vector<Loaded>& tokenizers() {
  static std::vector<Loaded> all = [] {
    std::vector<Loaded> v;
    std::string dir = std::string(LOOM_SOURCE_DIR) + "/tests/reference/golden/tokenize/files/";
    for (const char* name : {"gpt2", "llama3", "qwen3", "llama2", "gemma3", "minilm"}) {
      std::string f = dir + name + ".tokenizer.json.zst";
      if (!std::filesystem::exists(f)) continue;
      std::string n = name;
      v.push_back({n, loom::tok::Tokenizer::from_json_file(f), n == "gpt2" || n == "llama3" || n == "llama2" || n == "gemma3",
                   n == "llama2" || n == "gemma3"});
    }
    if (v.empty()) std::abort();  // nothing to fuzz: the goldens are missing
    return v;
  }();
  return all;
}

// The longest valid UTF-8 made of the input: invalid bytes dropped.
std::string valid_utf8(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    size_t ok = loom::json::first_invalid_utf8(in);
    out.append(in.substr(0, ok));
    in.remove_prefix(ok < in.size() ? ok + 1 : ok);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text = valid_utf8(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  bool twice = data[0] & 1, parse_special = data[0] & 2;
  bool has_marker = text.find("\xE2\x96\x81") != std::string::npos;
  for (Loaded& l : tokenizers()) {
    for (int round = 0; round < (twice ? 2 : 1); ++round) {
      loom::tok::Encoding e = l.tok.encode(text, {false, parse_special});
      if (e.ids.size() != e.offsets.size()) std::abort();
      size_t last = 0;
      for (const auto& s : e.offsets) {
        if (s.b > s.e || s.e > text.size()) std::abort();
        if (s.b < last && l.name != "minilm" && l.name != "qwen3") std::abort();  // in order (normalizers may map back)
        last = s.b;
      }
      std::string back = l.tok.decode(e.ids);
      if (l.lossless && !parse_special && !(l.spm && has_marker) && back != text) std::abort();  // (special-token strings decode as the model says)
    }
  }
  return 0;
}
