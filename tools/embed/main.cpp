// loom-embed — adds `embedding` to each record: a sentence vector from an encoder model.
//
// Records are read in chunks; each chunk is tokenized on all threads, sorted by length, and run
// through the encoder in passes of up to --batch-size texts (the tokens of a pass laid end to end,
// no padding); vectors go back into the records, which are written in input order. Memory is
// bounded by the chunk, whatever the input's length. The model code lives in lib/model/encoder.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/io/base64.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/encoder.h"

using namespace loom;

namespace {

enum class PoolChoice { Auto, Mean, Cls, Last, Max };
enum class Encoding { Json, Base64 };

struct Options {
  std::string model = "minilm";
  std::vector<std::string> texts;
  std::string input = "-";
  std::string field = "text";
  std::string key = "embedding";
  PoolChoice pooling = PoolChoice::Auto;
  bool normalize = false, no_normalize = false;
  std::string prefix, prompt;
  bool has_prefix = false;
  uint32_t dims = 0;
  uint32_t max_tokens = 0;
  Encoding encoding = Encoding::Json;
  size_t batch_size = 32;
  size_t chunk = 1024;
};

// Writes a vector as the record's field: a JSON array, or base64 of little-endian float32 bytes.
void put_vector(io::Record& rec, const std::string& key, const float* v, size_t n, Encoding enc, std::string& scratch) {
  scratch.clear();
  if (enc == Encoding::Base64) {
    std::string bytes(n * 4, '\0');
    std::memcpy(bytes.data(), v, n * 4);  // x86-64 and every target loom builds for: little-endian
    scratch += '"';
    scratch += io::base64_encode(bytes);
    scratch += '"';
  } else {
    scratch += '[';
    for (size_t i = 0; i < n; ++i) {
      if (i) scratch += ',';
      json::append_number(scratch, v[i]);
    }
    scratch += ']';
  }
  rec.set_raw(key, scratch);
}

class Embed {
 public:
  Embed(cli::Tool& tool, const Options& opt)
      : tool_(tool), opt_(opt), enc_(model::Encoder::load(opt.model, {.threads = tool.common().threads})),
        pool_(tool.common().threads) {
    const model::EncoderConfig& c = enc_.config();
    switch (opt.pooling) {
      case PoolChoice::Auto: pooling_ = c.pooling; break;
      case PoolChoice::Mean: pooling_ = model::Pooling::Mean; break;
      case PoolChoice::Cls: pooling_ = model::Pooling::Cls; break;
      case PoolChoice::Last: pooling_ = model::Pooling::Last; break;
      case PoolChoice::Max: pooling_ = model::Pooling::Max; break;
    }
    normalize_ = opt.normalize ? true : opt.no_normalize ? false : c.normalize;
    if (opt.dims > enc_.dims())
      throw usage_error(fmt::format("--dims {}: the model's vectors have {} dimensions", opt.dims, enc_.dims()));
    dims_ = opt.dims ? opt.dims : enc_.dims();
    if (opt.max_tokens > c.n_pos)
      throw usage_error(fmt::format("--max-tokens {}: the model has {} positions", opt.max_tokens, c.n_pos));
    max_tokens_ = opt.max_tokens ? opt.max_tokens : c.max_tokens;
    if (!opt.prompt.empty()) {
      auto it = std::find_if(c.prompts.begin(), c.prompts.end(), [&](auto& p) { return p.first == opt.prompt; });
      if (it == c.prompts.end()) {
        std::vector<std::string> names;
        for (auto& p : c.prompts) names.push_back(p.first);
        throw usage_error(fmt::format("--prompt {}: the model names no such prompt ({})", opt.prompt,
                                      names.empty() ? std::string("it names none") : "it has: " + cli::join_words(names)));
      }
      prefix_ = it->second;
    }
    if (opt.has_prefix) prefix_ = opt.prefix;
  }

  struct Item {
    io::Record rec;
    std::string where;
    size_t line = 0;
    model::EncoderInput in;
    std::exception_ptr error;
  };

  // Embeds a chunk of records and writes them (bad ones are reported, or skipped and counted).
  void run_chunk(std::vector<Item>& items) {
    pool_.for_each(items.size(), [&](size_t i) {
      Item& it = items[i];
      try {
        auto text = it.rec.get_string(opt_.field);
        if (!text) throw input_error(fmt::format("record has no \"{}\" field (a string)", opt_.field));
        if (text->empty()) throw input_error(fmt::format("field \"{}\" is empty: nothing to embed", opt_.field));
        it.in = enc_.encode_text(prefix_.empty() ? *text : prefix_ + *text, max_tokens_);
      } catch (...) {
        it.error = std::current_exception();
      }
    });
    std::vector<size_t> order;
    for (size_t i = 0; i < items.size(); ++i)
      if (!items[i].error) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return items[a].in.ids.size() < items[b].in.ids.size(); });
    const size_t d = enc_.dims();
    std::vector<float> vecs(items.size() * d);
    std::vector<model::EncoderInput> pass;
    for (size_t b = 0; b < order.size(); b += opt_.batch_size) {
      const size_t e = std::min(order.size(), b + opt_.batch_size);
      pass.clear();
      for (size_t k = b; k < e; ++k) pass.push_back(std::move(items[order[k]].in));
      std::vector<float> out(pass.size() * d);
      enc_.embed(pass, pooling_, out.data());
      for (size_t k = b; k < e; ++k) {
        std::copy_n(out.data() + (k - b) * d, d, vecs.data() + order[k] * d);
        if (pass[k - b].truncated) ++truncated_;
      }
    }
    std::string line, scratch;
    for (size_t i = 0; i < items.size(); ++i) {
      Item& it = items[i];
      if (it.error && tool_.skip_failed(it.error, it.where, it.line)) continue;
      float* v = vecs.data() + i * d;
      if (normalize_) {
        // --dims on a normalized model: the first N dimensions, renormalized (Matryoshka)
        model::l2_normalize(v, dims_);
      }
      put_vector(it.rec, opt_.key, v, dims_, opt_.encoding, scratch);
      line.clear();
      it.rec.append_to(line);
      line += '\n';
      tool_.out().write(line);
      ++embedded_;
    }
  }

  void report() const {
    if (truncated_)
      tool_.note("{} of {} texts were longer than {} tokens and were truncated", truncated_, embedded_, max_tokens_);
  }

 private:
  cli::Tool& tool_;
  const Options& opt_;
  model::Encoder enc_;
  ThreadPool pool_;
  model::Pooling pooling_ = model::Pooling::Mean;
  bool normalize_ = false;
  uint32_t dims_ = 0, max_tokens_ = 0;
  std::string prefix_;
  uint64_t truncated_ = 0, embedded_ = 0;
};

void run(cli::Tool& tool, Options& opt) {
  if (opt.batch_size == 0) throw usage_error("--batch-size must be at least 1");
  Embed embed(tool, opt);
  std::vector<Embed::Item> chunk;
  if (!opt.texts.empty()) {
    size_t n = 0;
    for (const auto& text : opt.texts) {
      Embed::Item it;
      it.rec.set(opt.field, text);
      it.where = "<argument>";
      it.line = ++n;
      chunk.push_back(std::move(it));
    }
    embed.run_chunk(chunk);
    embed.report();
    return;
  }
  auto flush = [&] {
    std::vector<Embed::Item> items;
    items.swap(chunk);  // taken whole: an error below never writes a record twice
    embed.run_chunk(items);
  };
  tool.read_records(opt.input, opt.chunk, [&](io::Record&& rec, const std::string& file, size_t line) {
    chunk.push_back({std::move(rec), file, line, {}, nullptr});
  }, flush);
  embed.report();
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("embed", "Add a sentence embedding to each record.\n\n"
                          "Reads records with text and adds `embedding` (a JSON array of floats, or base64 of little-endian\n"
                          "float32 with --encoding base64). With TEXT arguments, embeds each and prints one record per argument.\n"
                          "Models: BERT-family encoders (BERT, MiniLM, BGE, E5) as a Hugging Face folder (config.json,\n"
                          "model.safetensors, tokenizer.json or vocab.txt; sentence-transformers' modules.json, pooling and\n"
                          "normalization settings are followed), a GGUF file of llama.cpp's `bert` architecture, or a decoder\n"
                          "GGUF (llama, qwen2, qwen3, gemma3) that declares its pooling ({arch}.pooling_type).");
  Options opt;
  auto& app = tool.app();
  app.add_option("texts", opt.texts, "Texts to embed (instead of records on stdin)")->type_name("TEXT...")->default_str("");
  app.add_option("-m,--model", opt.model, "Encoder: a model folder, a .gguf file, or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("-i,--input", opt.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--field", opt.field, "Field holding the text")->type_name("NAME");
  app.add_option("--key", opt.key, "Field the vector is written to")->type_name("NAME");
  tool.add_choice("--pooling", opt.pooling,
                  {{"auto", PoolChoice::Auto}, {"mean", PoolChoice::Mean}, {"cls", PoolChoice::Cls}, {"last", PoolChoice::Last},
                   {"max", PoolChoice::Max}},
                  "Token vectors to one vector (auto: as the model's files say)");
  app.add_flag("--normalize", opt.normalize, "L2-normalize the vectors (default: as the model's files say)");
  app.add_flag("--no-normalize", opt.no_normalize, "Do not normalize the vectors")->excludes("--normalize");
  app.add_option_function<std::string>(
         "--prefix", [&](const std::string& s) { opt.prefix = s, opt.has_prefix = true; },
         "Text put before every input (e5: 'query: ' or 'passage: '; bge: its query instruction)")
      ->type_name("TEXT");
  app.add_option("--prompt", opt.prompt, "A prefix the model names in config_sentence_transformers.json (e.g. query)")
      ->type_name("NAME")
      ->excludes("--prefix");
  app.add_option("--dims", opt.dims, "Keep the first N dimensions, renormalized when normalizing (Matryoshka models; 0 = all)")
      ->type_name("N");
  app.add_option("--max-tokens", opt.max_tokens,
                 "Cut inputs to N tokens, specials included (0 = the model's max_seq_length); truncations are counted on stderr")
      ->type_name("N");
  tool.add_choice("--encoding", opt.encoding, {{"json", Encoding::Json}, {"base64", Encoding::Base64}},
                  "How vectors are written: JSON arrays, or base64 of little-endian float32 (the OpenAI API's base64)");
  app.add_option("--batch-size", opt.batch_size, "Texts per forward pass (their tokens laid end to end, no padding)")->type_name("N");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
