// loom-tokenize train — trains a SentencePiece tokenizer (Unigram or BPE) on text records.
//
//   loom chunk docs/ | loom tokenize train --vocab-size 8000 -o docs.model
//   loom tokenize -m docs.model "some text"
//
// The records' text is handed to sentencepiece's own trainer (SentencePieceTrainer) through a
// sentence iterator, one line of text per training sentence, exactly as spm_train reads a text
// file; no temporary file is written. The result is a standard .model file (loaded by loom,
// spm_encode, the sentencepiece Python package, Hugging Face) and spm_train's .vocab next to it
// (piece<TAB>score per line), both written atomically.
//
// Determinism: sentencepiece's training is a function of the sentences, their order, the options
// and the number of threads: the Unigram trainer sums expected counts per thread, so floating
// point rounding (and with it a score or a pruning decision) can depend on -t. BPE's result does
// not depend on it. The thread count is also recorded in the model's trainer spec. So -t defaults
// to 16, spm_train's default, rather than to the machine's cores: the same command gives the same
// bytes on every machine.
//
// What this file does not do: choose special ids (sentencepiece's defaults: <unk> 0, <s> 1,
// </s> 2, no <pad>), read plain text files (give records: `jq -R '{text: .}'`), or train the
// "word" and "char" model types.
#include "train.h"

#include <sentencepiece_trainer.h>

#include <cctype>
#include <chrono>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "loom/cli/tool.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"

using namespace loom;

namespace {

enum class ModelType { Unigram, Bpe };
enum class Normalization { NmtNfkc, Nfkc, NmtNfkcCf, NfkcCf, Identity };

struct TrainOptions {
  std::vector<std::string> inputs{"-"};
  std::string field = "text";
  std::string output;
  ModelType model_type = ModelType::Unigram;
  int vocab_size = 8000;
  double character_coverage = 0.9995;
  std::vector<std::string> user_defined_symbols, control_symbols;
  bool byte_fallback = false, split_digits = false;
  Normalization normalization = Normalization::NmtNfkc;
  int max_sentence_length = 4192;
  uint64_t input_sentence_size = 0;
  bool verbose = false;
};

// Feeds the lines of the records' text to the trainer. Errors cannot cross sentencepiece, so a
// bad record stops the iteration (done() is true) and is kept for the caller to rethrow; with
// --on-error skip it is reported and skipped here.
class RecordLines final : public sentencepiece::SentenceIterator {
 public:
  RecordLines(cli::Tool& tool, const TrainOptions& opt) : tool_(tool), opt_(opt), progress_(tool, "reading") { advance(); }

  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    if (error_) return {sentencepiece::util::StatusCode::kCancelled, "stopped by an input error"};
    return {};
  }

  std::exception_ptr error() const { return error_; }
  uint64_t records() const { return records_; }
  uint64_t sentences() const { return sentences_; }
  uint64_t too_long() const { return too_long_; }

 private:
  void advance() {
    try {
      for (;;) {
        if (pos_ < text_.size()) {  // the next non-empty line of the current text
          size_t nl = text_.find('\n', pos_);
          if (nl == std::string::npos) nl = text_.size();
          std::string_view l(text_.data() + pos_, nl - pos_);
          pos_ = nl + 1;
          if (l.empty()) continue;
          if (l.size() > static_cast<size_t>(opt_.max_sentence_length)) {  // as sentencepiece would
            ++too_long_;
            continue;
          }
          line_.assign(l);
          ++sentences_;
          return;
        }
        if (!next_record()) {
          done_ = true;
          progress_.done();
          return;
        }
      }
    } catch (...) {
      error_ = std::current_exception();
      done_ = true;
      progress_.done();
    }
  }

  // Loads the next record's text; false at the end of the last input.
  bool next_record() {
    for (;;) {
      if (!reader_) {
        if (next_input_ == opt_.inputs.size()) return false;
        in_ = io::Input::open(opt_.inputs[next_input_++]);
        reader_ = std::make_unique<io::JsonlReader>(*in_);
      }
      try {
        if (!reader_->next(rec_)) {
          reader_.reset();
          in_.reset();
          continue;
        }
        auto text = rec_.get_string(opt_.field);
        if (!text) throw input_error(fmt::format("record has no \"{}\" field (a string)", opt_.field));
        text_ = std::move(*text);
        pos_ = 0;
        ++records_;
        progress_.tick([&] { return fmt::format("{} records, {} sentences", records_, sentences_); });
        return true;
      } catch (Error& e) {
        e.at(reader_->name(), reader_->line());
        if (reader_->failed() || !tool_.skip(e)) throw;
      }
    }
  }

  cli::Tool& tool_;
  const TrainOptions& opt_;
  cli::Progress progress_;
  size_t next_input_ = 0;
  std::unique_ptr<io::Input> in_;
  std::unique_ptr<io::JsonlReader> reader_;
  io::Record rec_;
  std::string text_, line_;
  size_t pos_ = 0;
  bool done_ = false;
  std::exception_ptr error_;
  uint64_t records_ = 0, sentences_ = 0, too_long_ = 0;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// sentencepiece's messages start with where they were raised: "./src/x.cc(580) [cond] what".
std::string spm_message(const sentencepiece::util::Status& st) {
  std::string m = st.error_message();
  if (m.starts_with("./src/") || m.starts_with("src/")) {
    size_t close = m.find(") [");
    size_t end = close == std::string::npos ? std::string::npos : m.find("] ", close);
    if (end != std::string::npos) m = m.substr(end + 2);
  }
  // its advice names spm_train's flags (--character_coverage): loom's are spelled with dashes
  for (size_t i = m.find("--"); i != std::string::npos; i = m.find("--", i + 2))
    for (size_t j = i + 2; j < m.size() && (std::isalnum(static_cast<unsigned char>(m[j])) || m[j] == '_'); ++j)
      if (m[j] == '_') m[j] = '-';
  return m;
}

void train(cli::Tool& tool, const TrainOptions& opt, unsigned threads) {
  if (opt.output.empty() || opt.output == "-") throw usage_error("-o/--output is required (the model file, e.g. tok.model)");
  std::string stem = opt.output.ends_with(".model") ? opt.output.substr(0, opt.output.size() - 6) : opt.output;
  std::string model_path = stem + ".model", vocab_path = stem + ".vocab";

  static const char* types[] = {"unigram", "bpe"};
  static const char* norms[] = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"};
  std::unordered_map<std::string, std::string> args{
      {"model_type", types[static_cast<int>(opt.model_type)]},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"character_coverage", fmt::format("{}", opt.character_coverage)},
      {"byte_fallback", opt.byte_fallback ? "true" : "false"},
      {"split_digits", opt.split_digits ? "true" : "false"},
      {"normalization_rule_name", norms[static_cast<int>(opt.normalization)]},
      {"max_sentence_length", std::to_string(opt.max_sentence_length)},
      {"input_sentence_size", std::to_string(opt.input_sentence_size)},
      {"num_threads", std::to_string(threads)},
      // sentencepiece's log (INFO and WARNING lines) only with --verbose; errors come back as status
      {"minloglevel", opt.verbose && !tool.common().quiet ? "0" : "2"},
  };
  if (!opt.user_defined_symbols.empty()) args["user_defined_symbols"] = join(opt.user_defined_symbols);
  if (!opt.control_symbols.empty()) args["control_symbols"] = join(opt.control_symbols);

  // Opened first (temporary files next to the targets), so a bad path fails before training.
  auto vocab_out = io::Output::open(vocab_path);
  auto model_out = io::Output::open(model_path);

  auto t0 = std::chrono::steady_clock::now();
  RecordLines lines(tool, opt);
  std::string model;
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (lines.error()) std::rethrow_exception(lines.error());
  if (lines.sentences() == 0)
    throw input_error(fmt::format("no training text: the input holds no non-empty lines of \"{}\"{}", opt.field,
                                  lines.too_long() ? " shorter than --max-sentence-length" : ""));
  if (!st.ok()) throw input_error("training failed: " + spm_message(st));

  // The .vocab file as spm_train writes it: piece<TAB>score, scores as C++ streams print floats.
  sentencepiece::SentencePieceProcessor sp;
  if (auto ls = sp.LoadFromSerializedProto(model); !ls.ok())
    throw runtime_error("sentencepiece could not load the model it trained: " + spm_message(ls));
  std::ostringstream vocab;
  for (int id = 0; id < sp.GetPieceSize(); ++id) vocab << sp.IdToPiece(id) << '\t' << sp.GetScore(id) << '\n';

  // The model last: it only appears once the vocabulary is in place.
  vocab_out->write(vocab.str());
  vocab_out->close();
  model_out->write(model);
  model_out->close();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (lines.too_long())
    tool.warn("{} line{} longer than --max-sentence-length ({} bytes) left out of training", lines.too_long(),
              lines.too_long() == 1 ? "" : "s", opt.max_sentence_length);
  tool.note("{}: {} model, {} pieces, from {} lines of {} records, in {:.1f} s", model_path, types[static_cast<int>(opt.model_type)],
            sp.GetPieceSize(), lines.sentences(), lines.records(), secs);
}

}  // namespace

int tokenize_train_main(int argc, char** argv) {
  cli::Tool tool("tokenize train",
                 "Train a SentencePiece tokenizer (Unigram or BPE) on the text of records.\n\n"
                 "Each line of each record's text is one training sentence, as spm_train reads a text file.\n"
                 "Writes MODEL.model (use it with loom tokenize -m, spm_encode, sentencepiece, ...) and\n"
                 "MODEL.vocab (piece<TAB>score), atomically. The same input, options and -t give the same bytes.");
  TrainOptions opt;
  auto& app = tool.app();
  app.add_option("-i,--input", opt.inputs, "Records to read, repeatable ('-' = stdin; .zst accepted)")
      ->type_name("FILE")
      ->default_str("-");
  app.add_option("--field", opt.field, "Field holding the text")->type_name("NAME");
  app.add_option("-o,--output", opt.output, "The model to write: MODEL.model (and MODEL.vocab next to it)")->type_name("MODEL");
  tool.add_choice("--model-type", opt.model_type, {{"unigram", ModelType::Unigram}, {"bpe", ModelType::Bpe}},
                  "The segmentation model");
  app.add_option("--vocab-size", opt.vocab_size, "Pieces in the vocabulary, special ones included")
      ->type_name("N")
      ->check(CLI::Range(1, 1 << 24).description(""));
  app.add_option("--character-coverage", opt.character_coverage,
                 "Share of the characters (by count) the vocabulary covers; the rarest others are <unk>, or bytes "
                 "with --byte-fallback (0.98 to 1)")
      ->type_name("F")
      ->check(CLI::Range(0.98, 1.0).description(""));
  app.add_option("--user-defined-symbols", opt.user_defined_symbols,
                 "Pieces always cut out of the text as they are (comma-separated or repeated)")
      ->type_name("SYM,...")
      ->delimiter(',')
      ->default_str("");
  app.add_option("--control-symbols", opt.control_symbols,
                 "Extra control pieces such as <sep>: never produced from text, only by id (comma-separated or repeated)")
      ->type_name("SYM,...")
      ->delimiter(',')
      ->default_str("");
  app.add_flag("--byte-fallback", opt.byte_fallback, "Add <0x00>..<0xFF> pieces: characters outside the vocabulary become bytes, not <unk>");
  app.add_flag("--split-digits", opt.split_digits, "Every digit is a piece of its own");
  tool.add_choice("--normalization", opt.normalization,
                  {{"nmt_nfkc", Normalization::NmtNfkc},
                   {"nfkc", Normalization::Nfkc},
                   {"nmt_nfkc_cf", Normalization::NmtNfkcCf},
                   {"nfkc_cf", Normalization::NfkcCf},
                   {"identity", Normalization::Identity}},
                  "Text normalization built into the model (identity: none, as Llama)");
  app.add_option("--max-sentence-length", opt.max_sentence_length, "Longer lines (in bytes) are left out of training")
      ->type_name("N")
      ->check(CLI::Range(10, 1 << 30).description(""));
  app.add_option("--input-sentence-size", opt.input_sentence_size,
                 "Train on a sample of N lines (sentencepiece's fixed-seed reservoir sampling; 0 = all lines)")
      ->type_name("N");
  app.add_flag("--verbose", opt.verbose, "Show sentencepiece's training log on stderr");
  tool.add_on_error();
  if (auto* t = app.get_option("--threads"))
    t->description("Trainer threads (0 = all cores; a Unigram model can depend on the number: see TRAINING in loom-tokenize(1))")
        ->default_str("16");
  return tool.run(argc, argv, [&] {
    if (opt.input_sentence_size > 0 && opt.input_sentence_size <= 100)
      throw usage_error("--input-sentence-size must be 0 (all lines) or more than 100");
    // spm_train's default thread count unless -t is given; sentencepiece allows 1 to 128
    unsigned threads = app.get_option("--threads")->count() ? tool.common().threads : 16;
    train(tool, opt, std::min(threads, 128u));
  });
}
