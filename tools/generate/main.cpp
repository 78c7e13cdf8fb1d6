// loom-generate — text from a GGUF language model on the CPU.
//
// One-off: `loom generate -m smollm2 "Once upon a time"` streams the continuation to stdout.
// Records: each record's prompt (prompt.h: text, messages, a question with hits, a template)
// gets `completion`, `finish_reason`, `usage` and `timings` added; --score adds `score` instead.
// The generator (lib/generate/generator.h) decodes many records together; this file parses flags, reads and
// writes records, and turns Ctrl-C into a clean end.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <random>

#include "loom/generate/generator.h"
#include "loom/cli/tool.h"
#include "loom/gguf/gguf.h"
#include "loom/io/base64.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/models_dir.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/generate/prompt.h"

using namespace loom;

namespace {

struct Options {
  std::string model;
  std::vector<std::string> texts;
  std::string input = "-";
  std::string field;  // default: prompt (text with --rag and --score)
  bool chat = false, rag = false, score = false, truncate = false;
  std::string template_file, chat_template_file;
  uint32_t top_logprobs = 0;
  bool seed_given = false;
  generate::Settings gen = [] {
    generate::Settings s;
    s.sampling = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f};  // llama.cpp's defaults
    return s;
  }();
};

// ------------------------------------------------------------------------------------------------
// Ctrl-C: the generator ends the requests in flight ("interrupted"), what is done is written,
// and the exit status is 128 + the signal. A read waiting on stdin ends as at the end of input.

std::atomic<int> g_signal{0};
std::atomic<bool> g_stop{false};
int g_devnull = -1;

extern "C" void on_signal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
  if (g_devnull >= 0) ::dup2(g_devnull, STDIN_FILENO);
}

void catch_signals(bool stdin_input) {
  if (stdin_input) g_devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  for (int sig : {SIGINT, SIGTERM}) {
    struct sigaction old {};
    ::sigaction(sig, nullptr, &old);
    if (old.sa_handler == SIG_IGN) continue;  // ignored by the shell (a background job): stays so
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the program at once
    ::sigaction(sig, &sa, nullptr);
  }
}

// ------------------------------------------------------------------------------------------------

class Records {
 public:
  Records(cli::Tool& tool, const Options& opt, generate::Generator& gen, const generate::Prompter& prompter, uint64_t seed)
      : tool_(tool), opt_(opt), gen_(gen), prompter_(prompter), seed_(seed) {}

  void run() {
    in_ = io::Input::open(opt_.input);
    reader_ = std::make_unique<io::JsonlReader>(*in_);
    gen_.run([&] { return next(); }, [&](generate::Result&& r) { write(std::move(r)); }, &g_stop);
    if (error_) throw *error_;
  }

 private:
  struct Pending {
    io::Record rec;
    std::vector<chat::Value> source_ids;
    size_t truncated = 0;
  };

  std::optional<generate::Request> next() {
    for (;;) {
      if (error_ || g_stop.load()) return std::nullopt;
      Pending p;
      try {
        if (!reader_->next(p.rec)) return std::nullopt;
        size_t max_tokens = opt_.gen.max_tokens;
        if (auto m = p.rec.get_int("max_tokens")) {
          if (*m < 1) throw input_error("\"max_tokens\" must be at least 1");
          max_tokens = static_cast<size_t>(*m);
        }
        generate::Prompt prompt = prompter_.build(p.rec, max_tokens);
        if (prompt.truncated)
          tool_.warn("{}:{}: the prompt lost its first {} tokens to fit the context (--truncate)", reader_->name(), reader_->line(),
                     prompt.truncated);
        p.source_ids = std::move(prompt.source_ids);
        p.truncated = prompt.truncated;
        pending_.push_back(std::move(p));
        return generate::Request{.task = opt_.score ? generate::Task::Score : generate::Task::Generate,
                                 .tokens = std::move(prompt.tokens),
                                 .max_tokens = max_tokens,
                                 .seed = seed_ + (opt_.seed_given ? 0 : 0x9E3779B97F4A7C15ull * ++count_),
                                 .stream = nullptr};
      } catch (Error& e) {
        if (g_stop.load()) return std::nullopt;  // the input was cut off by Ctrl-C
        e.at(reader_->name(), reader_->line());
        if (reader_->failed() || !tool_.skip(e)) error_ = e;  // the records before it are finished first
      }
    }
  }

  void write(generate::Result&& r) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    io::Record& rec = p.rec;
    if (r.interrupted && opt_.score) return;  // a partial score is no score
    json::Writer w;
    if (opt_.score) {
      w.begin_object();
      w.key("sum");
      w.value(r.score_sum);
      w.key("tokens");
      w.value(static_cast<int64_t>(r.score_tokens));
      w.key("mean");
      if (r.score_tokens)
        w.value(r.score_sum / static_cast<double>(r.score_tokens));
      else
        w.null();
      w.key("perplexity");
      if (r.score_tokens)
        w.value(std::exp(-r.score_sum / static_cast<double>(r.score_tokens)));
      else
        w.null();
      w.end_object();
      rec.set_raw("score", w.str());
    } else {
      size_t generated = 0;
      for (const auto& c : r.completions) generated += c.tokens;
      if (r.completions.size() == 1) {
        completion_fields(rec, r.completions[0], p);
      } else {
        w.begin_array();
        for (const auto& c : r.completions) {
          io::Record one;
          completion_fields(one, c, p);
          w.raw(one.to_json());
        }
        w.end_array();
        rec.set_raw("completions", w.take());
        w.clear();
      }
      w.begin_object();
      w.key("prompt_tokens");
      w.value(static_cast<int64_t>(r.prompt_tokens));
      w.key("completion_tokens");
      w.value(static_cast<int64_t>(generated));
      if (p.truncated) {
        w.key("truncated_tokens");
        w.value(static_cast<int64_t>(p.truncated));
      }
      w.end_object();
      rec.set_raw("usage", w.take());
      w.clear();
      w.begin_object();
      w.key("ttft_ms");
      w.value(r.ttft_ms);
      w.key("prompt_tokens_per_s");
      w.value(r.prompt_tokens_per_s);
      w.key("decode_tokens_per_s");
      w.value(r.decode_tokens_per_s);
      w.end_object();
      rec.set_raw("timings", w.str());
    }
    line_.clear();
    rec.append_to(line_);
    line_ += '\n';
    tool_.out().write(line_);
    tool_.out().flush();
  }

  // completion, finish_reason, logprobs (--logprobs), citations (--rag)
  void completion_fields(io::Record& rec, const generate::Completion& c, const Pending& p) {
    rec.set("completion", c.text);
    rec.set("finish_reason", c.finish_reason);
    json::Writer w;
    if (opt_.gen.logprobs) {
      auto token = [&](int32_t id, double lp) {
        std::string bytes = gen_.token_bytes(id);
        w.key("id");
        w.value(static_cast<int64_t>(id));
        if (json::valid_utf8(bytes)) {
          w.key("token");
          w.value(bytes);
        } else {
          w.key("bytes");
          w.value(io::base64_encode(bytes));
        }
        w.key("logprob");
        w.value(lp);
      };
      w.begin_array();
      for (const auto& t : c.logprobs) {
        w.begin_object();
        token(t.id, t.logprob);
        w.key("top_logprobs");
        w.begin_array();
        for (const auto& [id, lp] : t.top) {
          w.begin_object();
          token(id, lp);
          w.end_object();
        }
        w.end_array();
        w.end_object();
      }
      w.end_array();
      rec.set_raw("logprobs", w.take());
      w.clear();
    }
    if (opt_.rag) {
      w.begin_array();
      for (size_t n : generate::citations(c.text, p.source_ids.size())) {
        w.begin_object();
        w.key("n");
        w.value(static_cast<int64_t>(n));
        const chat::Value& id = p.source_ids[n - 1];
        if (id.is_string()) {
          w.key("id");
          w.value(id.str());
        } else if (id.kind() == chat::Value::Kind::Int) {
          w.key("id");
          w.value(id.as_int());
        }
        w.end_object();
      }
      w.end_array();
      rec.set_raw("citations", w.take());
    }
  }

  cli::Tool& tool_;
  const Options& opt_;
  generate::Generator& gen_;
  const generate::Prompter& prompter_;
  const uint64_t seed_;  // every record's (--seed), or the first of a random series
  std::unique_ptr<io::Input> in_;
  std::unique_ptr<io::JsonlReader> reader_;
  std::deque<Pending> pending_;  // records in flight, in input order
  std::optional<Error> error_;
  uint64_t count_ = 0;
  std::string line_;
};

void check_modes(CLI::App& app, const Options& opt) {
  auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
  auto conflict = [](const char* a, const char* b) { throw usage_error(fmt::format("{} cannot be combined with {}", a, b)); };
  if (opt.model.empty()) throw usage_error("-m/--model is required (a .gguf file or a model name)");
  if (!opt.texts.empty()) {
    for (const char* o : {"--rag", "--score", "--template", "--logprobs", "--n", "--input"})
      if (given(o)) throw usage_error(fmt::format("{} works on records: give them on stdin (or -i FILE), not as PROMPT arguments", o));
  }
  if (opt.score)
    for (const char* o : {"--rag", "--chat", "--template", "--n", "--beams", "--logprobs", "--truncate"})
      if (given(o)) conflict("--score", o);
  if (opt.gen.beams > 1) {
    for (const char* o : {"--n", "--logprobs", "--temperature", "--top-k", "--top-p", "--min-p", "--seed", "--repeat-penalty",
                          "--frequency-penalty", "--presence-penalty"})
      if (given(o)) conflict("--beams (a search, it does not sample)", o);
  }
  if (opt.chat && opt.rag) conflict("--chat", "--rag (which always uses the chat template)");
}

void run(cli::Tool& tool, CLI::App& app, Options& opt) {
  check_modes(app, opt);
  const std::string path = model::find_gguf(opt.model);
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*file, path);
  if (opt.field.empty()) opt.field = opt.rag || opt.score ? "text" : "prompt";
  generate::Prompter prompter(*file, path, tokenizer,
                              {.field = opt.field,
                               .chat = opt.chat,
                               .rag = opt.rag,
                               .score = opt.score,
                               .template_file = opt.template_file,
                               .chat_template_file = opt.chat_template_file,
                               .n_ctx = opt.gen.n_ctx,
                               .truncate = opt.truncate});
  opt.gen.logprobs = app.get_option("--logprobs")->count() > 0;
  opt.gen.top_logprobs = opt.top_logprobs;
  generate::Settings settings = opt.gen;
  settings.threads = tool.common().threads;
  if (!opt.texts.empty()) settings.parallel = 1;  // one-off: one stream at a time
  generate::Generator gen(file, tokenizer, settings);
  const uint64_t seed = opt.seed_given ? opt.gen.sampling.seed : std::random_device{}();
  catch_signals(opt.texts.empty() && opt.input == "-");

  if (!opt.texts.empty()) {  // one-off: stream each continuation
    size_t k = 0;
    auto stream = [&](std::string_view piece) {
      tool.out().write(piece);
      tool.out().flush();
    };
    gen.run(
        [&]() -> std::optional<generate::Request> {
          if (k == opt.texts.size() || g_stop.load()) return std::nullopt;
          generate::Prompt p = prompter.build_text(opt.texts[k++], opt.gen.max_tokens);
          return generate::Request{
              .task = generate::Task::Generate, .tokens = std::move(p.tokens), .max_tokens = 0, .seed = seed, .stream = stream};
        },
        [&](generate::Result&&) { tool.out().write("\n"); }, &g_stop);
  } else {
    Records(tool, opt, gen, prompter, seed).run();
  }
  if (g_stop.load()) throw runtime_error("interrupted: the output is complete up to here");
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("generate",
                 "Generate text with a GGUF language model (llama, qwen2, qwen3, gemma3) on the CPU.\n\n"
                 "With PROMPT arguments, streams each continuation to stdout. Otherwise reads records and adds\n"
                 "completion, finish_reason (stop, length, interrupted), usage and timings to each (--score: score).\n"
                 "A record's prompt is `prompt` (or --field), or `messages` rendered with the model's chat template,\n"
                 "or with --rag a question (`text`) and its `hits`, or --template FILE over the record's fields.");
  Options opt;
  auto& app = tool.app();
  auto& g = opt.gen;
  auto& s = opt.gen.sampling;
  app.add_option("texts", opt.texts, "Prompts to continue (instead of records on stdin)")->type_name("PROMPT...")->default_str("");
  app.add_option("-m,--model", opt.model, "Model: a .gguf file or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("-i,--input", opt.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--field", opt.field,
                 "Field holding the prompt (default: prompt), the question (--rag) or the text (--score) (default: text)")
      ->type_name("NAME");
  app.add_flag("--chat", opt.chat, "Treat each prompt as a user message and render it with the chat template");
  app.add_flag("--rag", opt.rag, "Answer a record's question (text) from its hits, citing them as [n]; adds citations");
  app.add_option("--template", opt.template_file, "Prompt template (Jinja) over the record's fields (--rag: question, sources)")
      ->type_name("FILE");
  app.add_option("--chat-template-file", opt.chat_template_file, "Chat template (Jinja) instead of the model's own")->type_name("FILE");
  app.add_option("--lora", opt.gen.loras, "Apply a LoRA adapter (llama.cpp's adapter GGUF, e.g. from loom finetune); repeatable")
      ->type_name("ADAPTER");
  app.add_option("--lora-scale", opt.gen.lora_scales, "The scale of each --lora, in order (default 1)")->type_name("S");
  app.add_flag("--score", opt.score, "Score the text instead of generating: adds score {sum, tokens, mean, perplexity}");
  app.add_option("-n,--max-tokens", g.max_tokens, "Most tokens to generate (a record's max_tokens overrides)")
      ->type_name("N")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30).description(""));
  app.add_option("--ctx", g.n_ctx, "Context length per sequence (prompt + completion; --score: window)")
      ->type_name("N")
      ->check(CLI::Range(2u, 1u << 20).description(""));
  app.add_flag("--truncate", opt.truncate, "Keep the end of a prompt too long for the context (else an error)");
  app.add_option("--parallel", g.parallel, "Records decoded together, sharing each forward pass")
      ->type_name("N")
      ->check(CLI::Range(1u, 1024u).description(""));
  app.add_option("-b,--batch-size", g.n_batch, "Most tokens in one forward pass")
      ->type_name("N")
      ->check(CLI::Range(2u, 1u << 16).description(""));
  app.add_option("--n", g.samples, "Completions per prompt (a completions array when more than 1)")
      ->type_name("N")
      ->check(CLI::Range(1u, 256u).description(""));
  app.add_option("--beams", g.beams, "Beam search with N beams (no sampling)")->type_name("N")->check(CLI::Range(1u, 64u).description(""));
  app.add_option("--logprobs", opt.top_logprobs, "Add each token's log-probability and the N most likely alternatives")
      ->type_name("N")
      ->check(CLI::Range(0u, 100u).description(""))
      ->default_str("off");
  app.add_flag("--ignore-eos", g.ignore_eos, "Never stop at an end-of-generation token");
  app.add_option("--temperature", s.temperature, "Sampling temperature (0 = greedy)")
      ->type_name("T")
      ->check(CLI::Range(0.0f, 100.0f).description(""));
  app.add_option("--top-k", s.top_k, "Keep the K most likely tokens (0 = all)")
      ->type_name("K")
      ->check(CLI::Range(0, 1 << 30).description(""));
  app.add_option("--top-p", s.top_p, "Keep the smallest set of tokens whose probability reaches P")
      ->type_name("P")
      ->check(CLI::Range(0.0f, 1.0f).description(""));
  app.add_option("--min-p", s.min_p, "Drop tokens under P times the most likely one's probability")
      ->type_name("P")
      ->check(CLI::Range(0.0f, 1.0f).description(""));
  app.add_option("--repeat-penalty", s.repeat_penalty, "Penalize tokens among the last 64 (1 = off)")
      ->type_name("X")
      ->check(CLI::Range(0.01f, 100.0f).description(""));
  app.add_option("--frequency-penalty", s.frequency_penalty, "Minus X per occurrence among the last 64 tokens")->type_name("X");
  app.add_option("--presence-penalty", s.presence_penalty, "Minus X once a token is among the last 64")->type_name("X");
  app.add_option("--seed", s.seed, "Random seed: the same seed gives the same output (sample j of --n: seed + j)")
      ->type_name("N")
      ->default_str("random")
      ->each([&](const std::string&) { opt.seed_given = true; });
  app.add_option("--stop", g.stop, "Stop before this string (repeatable)")->type_name("TEXT");
  tool.add_output();
  tool.add_on_error();
  int status = tool.run(argc, argv, [&] { run(tool, app, opt); });
  return g_signal.load() ? 128 + g_signal.load() : status;
}
