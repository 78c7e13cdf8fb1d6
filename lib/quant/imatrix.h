// Importance matrices: the mean squared input activation of every column of every weight matrix
// of a decoder, over a calibration text — what llama.cpp's llama-imatrix collects and
// llama-quantize --imatrix weighs the quantization error by (quantize_rows in quantize.h).
//
//   auto file = std::make_shared<gguf::File>(gguf::File::open("model.gguf"));
//   quant::Imatrix im = quant::collect_imatrix(file, tokenizer, text, {.n_ctx = 512, .threads = 2});
//   quant::write_imatrix(im, "imatrix.gguf");
//   quant::Imatrix back = quant::read_imatrix("imatrix.gguf");
//   std::vector<float> w = back.importance("blk.0.attn_q.weight");   // empty when absent
//
// Collection, as llama-imatrix (the llama.cpp vendored in llama-cpp-python 0.3.36) does: the text
// is tokenized once (BOS first when the vocabulary adds one); chunks are the non-overlapping runs
// [i*n_ctx, (i+1)*n_ctx) of tokens (T / n_ctx of them, at most `chunks`; the text must hold two),
// each decoded from position 0 with its first token replaced by BOS, in calls of at most 512
// tokens (llama.cpp's micro-batch). For every product y = W x of a weight named "blk.*" (and
// output.weight with process_output) in a call of at least 16 tokens, every token's x[j]² is
// added to the weight's column sums in float, token by token, and the weight's count grows by
// the number of tokens. Values may differ from llama.cpp's in the last bits where the activations
// do.
//
// The file is llama.cpp's GGUF imatrix format: general.type "imatrix", imatrix.datasets (the text
// files' names), imatrix.chunk_count, imatrix.chunk_size, and per weight, in name order,
// "<name>.in_sum2" (F32, the column sums) and "<name>.counts" (F32 [1], the count). The legacy
// .dat format is not read or written.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom::gguf {
class File;
}
namespace loom::tok {
class Tokenizer;
}

namespace loom::quant {

struct ImatrixEntry {
  std::vector<float> sums;  // per column: the sum of x² over the tokens counted
  int64_t count = 0;        // tokens counted
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight name
  std::vector<std::string> datasets;
  uint32_t chunk_count = 0;
  uint32_t chunk_size = 0;

  // The weights llama-quantize uses for `name`: sums / count (1 per column when the count is 0);
  // empty when the matrix has no entry for it.
  std::vector<float> importance(const std::string& name) const;
};

struct ImatrixOptions {
  uint32_t n_ctx = 512;          // tokens per chunk (llama-imatrix's default -c)
  int chunks = -1;               // at most this many chunks; -1: all the text holds
  unsigned threads = 1;
  bool process_output = false;   // also collect output.weight (llama-imatrix --process-output)
};

// (chunks done, chunks in all)
using ImatrixProgress = std::function<void(size_t, size_t)>;

// Runs the model over `text` and collects the statistics. loom::Error (BadInput) when the text is
// shorter than two chunks (the message says how many tokens it has and needs); (Usage) for an
// n_ctx below 16 or a vocabulary that puts more than BOS before a text.
Imatrix collect_imatrix(std::shared_ptr<const gguf::File> model, const tok::Tokenizer& tokenizer, std::string_view text,
                        const ImatrixOptions& opt, const ImatrixProgress& progress = nullptr);

// Writes the GGUF imatrix file atomically.
void write_imatrix(const Imatrix& m, const std::string& path);
// Reads one: loom::Error (BadInput, naming the file) when it is not a GGUF imatrix (general.type,
// F32 sums and counts in pairs, non-negative finite values).
Imatrix read_imatrix(const std::string& path);
// The same from a parsed file (`name` for errors).
Imatrix read_imatrix(const gguf::File& f, const std::string& name);

}  // namespace loom::quant
