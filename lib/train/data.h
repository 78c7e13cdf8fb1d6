// Training records to token sequences for loom-finetune.
//
//   SFT   {"prompt": ..., "completion": ...}   the prompt tokenized as loom-generate tokenizes a
//         prompt (BOS where the model adds one), then the completion and the end-of-sequence
//         token; only the completion's tokens (and EOS) are targets, unless train_on_prompt.
//         {"messages": [...]}   rendered with the chat template; the assistant turns' tokens
//         (through their end-of-turn marker) are the targets.
//   DPO   {"prompt": ..., "chosen": ..., "rejected": ...}   two sequences, prompt + each answer.
//
//   train::DataEncoder enc(file, path, tokenizer, prompter, {.n_ctx = 512});
//   std::vector<train::Example> ex = train::read_examples("train.jsonl", enc);  // file:line errors
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "loom/train/network.h"

namespace loom::gguf {
class File;
}
namespace loom::tok {
class Tokenizer;
}
namespace loom::generate {
class Prompter;
}
namespace loom::io {
class Record;
}

namespace loom::train {

struct Example {
  Sequence seq;      // weights 1 on targets, 0 elsewhere
  size_t line = 0;   // in its file
  size_t targets() const;
};

// A preference pair: prompt + chosen, prompt + rejected (targets: the answers' tokens).
struct Preference {
  Example chosen, rejected;
  size_t line = 0;
};

struct DataOptions {
  uint32_t n_ctx = 512;          // an example longer than this is an error
  bool train_on_prompt = false;  // SFT: the prompt's tokens are targets too
};

class DataEncoder {
 public:
  DataEncoder(const gguf::File& file, const tok::Tokenizer& tok, const generate::Prompter& prompter, DataOptions opt);
  // loom::Error (BadInput, no location) for a record that does not fit.
  Example example(const io::Record& rec) const;
  Preference preference(const io::Record& rec) const;

 private:
  Example from_parts(const std::vector<std::pair<std::vector<int32_t>, bool>>& parts) const;
  const tok::Tokenizer& tok_;
  const generate::Prompter& prompter_;
  DataOptions opt_;
  int32_t eos_ = -1;
};

// Every record of a JSONL file; loom::Error (BadInput) naming the file and line of a bad one, and
// for a file without records.
std::vector<Example> read_examples(const std::string& path, const DataEncoder& enc);
std::vector<Preference> read_preferences(const std::string& path, const DataEncoder& enc);

}  // namespace loom::train
