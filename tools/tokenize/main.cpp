// loom-tokenize — count, encode and decode tokens with a model's tokenizer.
//
// Reads records (or takes text arguments) and adds `tokens` and `n_tokens`; --decode turns
// `tokens` back into `text`. The tokenizers themselves live in lib/tokenizer.
#include <cstdlib>
#include <exception>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/tokenizer/tokenizer.h"
#include "train.h"

using namespace loom;

namespace {

struct Options {
  std::string model;
  std::vector<std::string> texts;
  std::string input = "-";
  std::string field = "text";
  bool count = false, pieces = false, offsets = false, decode = false;
  size_t max_tokens = 0;
  bool add_special = false, no_add_special = false;  // neither: as the model says (add them)
  bool parse_special = false;
};

class Tokenize {
 public:
  Tokenize(cli::Tool& tool, const Options& opt, tok::Tokenizer t) : tool_(tool), opt_(opt), tok_(std::move(t)) {}

  // Adds the token fields to a record holding `text` (or, with --decode, `text` from `tokens`).
  void process(io::Record& rec) {
    if (opt_.decode) return decode(rec);
    auto text = rec.get_string(opt_.field);
    if (!text) throw input_error(fmt::format("record has no \"{}\" field (a string)", opt_.field));
    tok::EncodeOptions eo;
    eo.add_special = !opt_.no_add_special;
    eo.parse_special = opt_.parse_special;
    tok::Encoding e = tok_.encode(*text, eo);
    if (opt_.max_tokens && e.ids.size() > opt_.max_tokens) truncate(*text, e, eo, rec);
    rec.set("n_tokens", static_cast<int64_t>(e.ids.size()));
    if (opt_.count) return;
    json::Writer w;
    w.begin_array();
    for (auto id : e.ids) w.value(id);
    w.end_array();
    rec.set_raw("tokens", w.str());
    if (opt_.pieces) {
      w.clear();
      w.begin_array();
      for (auto id : e.ids) w.value(tok_.piece(id));
      w.end_array();
      rec.set_raw("pieces", w.str());
    }
    if (opt_.offsets) {
      w.clear();
      w.begin_array();
      for (auto& s : e.offsets) {
        w.begin_array();
        w.value(static_cast<uint64_t>(s.b));
        w.value(static_cast<uint64_t>(s.e));
        w.end_array();
      }
      w.end_array();
      rec.set_raw("offsets", w.str());
    }
  }

 private:
  // --max-tokens: keep the longest prefix of the text whose tokens fit (as ttok does).
  void truncate(const std::string& text, tok::Encoding& e, const tok::EncodeOptions& eo, io::Record& rec) {
    size_t keep = text.size();
    // drop tokens from the end until the encoding of the prefix fits
    // start at the limit (the prefix re-encodes to about as many tokens), then back off
    for (size_t n = std::min(e.ids.size(), opt_.max_tokens + 1); n > 0 && e.ids.size() > opt_.max_tokens;) {
      --n;
      size_t end = 0;
      for (size_t i = 0; i < n; ++i) end = std::max(end, e.offsets[i].e);
      keep = end;
      e = tok_.encode(std::string_view(text).substr(0, keep), eo);
      n = std::min(n, e.ids.size());
    }
    rec.set(opt_.field, std::string_view(text).substr(0, keep));
    rec.set("truncated", true);
  }

  void decode(io::Record& rec) {
    auto raw = rec.raw("tokens");
    if (!raw) throw input_error("record has no \"tokens\" field (an array of token ids)");
    std::vector<tok::TokenId> ids;
    std::string_view a = *raw;
    if (a.empty() || a[0] != '[') throw input_error("field \"tokens\" must be an array of token ids");
    size_t i = 1;
    while (i < a.size() && a[i] != ']') {
      if (a[i] == ',') { ++i; continue; }
      size_t j = i;
      while (j < a.size() && a[j] != ',' && a[j] != ']') ++j;
      char* end = nullptr;
      std::string num(a.substr(i, j - i));
      long v = std::strtol(num.c_str(), &end, 10);
      if (*end || num.empty()) throw input_error(fmt::format("field \"tokens\" holds \"{}\", not a token id", num));
      ids.push_back(static_cast<tok::TokenId>(v));
      i = j;
    }
    rec.set(opt_.field, tok_.decode(ids, /*skip_special=*/!opt_.add_special));
  }

  cli::Tool& tool_;
  const Options& opt_;
  tok::Tokenizer tok_;
};

void run(cli::Tool& tool, Options& opt) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (a tokenizer.json, a folder, or a model name)");
  Tokenize t(tool, opt, tok::Tokenizer::load(opt.model));
  std::string line;
  if (!opt.texts.empty()) {  // one-off: each argument is a text
    for (const auto& text : opt.texts) {
      io::Record rec;
      rec.set(opt.field, text);
      t.process(rec);
      line.clear();
      rec.append_to(line);
      line += '\n';
      tool.out().write(line);
    }
    return;
  }
  // Records are read in batches and tokenized on all threads; output keeps the input order.
  struct Item {
    io::Record rec;
    std::string where;
    size_t line = 0;
    std::exception_ptr error;
  };
  std::vector<Item> batch;
  ThreadPool pool(tool.common().threads);
  auto flush = [&] {
    pool.for_each(batch.size(), [&](size_t i) {
      try {
        t.process(batch[i].rec);
      } catch (...) {
        batch[i].error = std::current_exception();
      }
    });
    std::vector<Item> done;
    done.swap(batch);  // taken whole: an error below never writes a record twice
    for (Item& it : done) {
      if (it.error && tool.skip_failed(it.error, it.where, it.line)) continue;
      line.clear();
      it.rec.append_to(line);
      line += '\n';
      tool.out().write(line);
    }
  };
  tool.read_records(opt.input, 256, [&](io::Record&& rec, const std::string& file, size_t line_no) {
    batch.push_back({std::move(rec), file, line_no, nullptr});
  }, flush);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "train") return tokenize_train_main(argc - 1, argv + 1);
  cli::Tool tool("tokenize", "Count, encode and decode tokens with a model's tokenizer.\n\n"
                             "Reads records and adds tokens (ids) and n_tokens; --decode turns tokens back into text.\n"
                             "With TEXT arguments, tokenizes each and prints one record per argument.\n"
                             "Tokenizers: Hugging Face tokenizer.json (WordPiece as BERT/MiniLM; byte-level BPE as GPT-2,\n"
                             "Llama 3, Qwen; SentencePiece-style BPE as Llama 2, Gemma 3; Unigram as T5), the vocabulary in a\n"
                             "GGUF model file (tokenized as llama.cpp does), SentencePiece .model files, GPT-2's encoder.json +\n"
                             "vocab.bpe.\n"
                             "loom tokenize train --help: train a SentencePiece tokenizer.");
  Options opt;
  auto& app = tool.app();
  app.add_option("texts", opt.texts, "Texts to tokenize (instead of records on stdin)")->type_name("TEXT...")->default_str("");
  app.add_option("-m,--model", opt.model, "Tokenizer: a tokenizer.json, .gguf or SentencePiece .model file, a folder with one (or GPT-2's encoder.json + vocab.bpe), or a model name under $LOOM_MODELS")
      ->type_name("MODEL");
  app.add_option("-i,--input", opt.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--field", opt.field, "Field holding the text")->type_name("NAME");
  app.add_flag("--count", opt.count, "Add only n_tokens");
  app.add_flag("--pieces", opt.pieces, "Also add pieces (the token strings)");
  app.add_flag("--offsets", opt.offsets, "Also add offsets: the byte span [start, end) of each token in the text");
  app.add_flag("--decode", opt.decode, "Decode: read tokens, write the text");
  app.add_option("--max-tokens", opt.max_tokens, "Keep the longest prefix of the text that fits in N tokens (0 = no limit)")
      ->type_name("N");
  app.add_flag("--add-special", opt.add_special,
               "Encode: add the model's special tokens ([CLS] ... [SEP]), the default; decode: keep them in the text");
  app.add_flag("--no-add-special", opt.no_add_special, "Encode without the special tokens (decode drops them by default)")
      ->excludes("--add-special");
  app.add_flag("--parse-special", opt.parse_special, "Special-token strings in the text become special tokens (default: plain text)");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
