// loom-generate — text from a GGUF language model on the CPU.
//
// One-off: `loom generate -m smollm2 "Once upon a time"` streams the continuation to stdout.
// Records: each record's `prompt` (or --field) gets `completion`, `finish_reason`, `usage` and
// `timings` added. The model (lib/model) computes as llama.cpp does; lib/tokenizer tokenizes with
// the vocabulary stored in the same file.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "loom/chat/template.h"
#include "loom/chat/value.h"
#include "loom/cli/tool.h"
#include "loom/gguf/gguf.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/model/decoder.h"
#include "loom/model/sampler.h"
#include "loom/tokenizer/tokenizer.h"

using namespace loom;

namespace {

struct Options {
  std::string model;
  std::vector<std::string> texts;
  std::string input = "-";
  std::string field = "prompt";
  size_t max_tokens = 256;
  uint32_t n_ctx = 4096;
  std::vector<std::string> stop;
  std::string template_file;
  bool chat = false;
  model::SamplerOptions sampling{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f};  // llama.cpp's defaults
  bool seed_given = false;
};

std::string model_file(const std::string& m) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(m, ec)) return m;
  const char* env = std::getenv("LOOM_MODELS");
  const char* home = std::getenv("HOME");
  fs::path root = env && *env ? fs::path(env) : fs::path(home ? home : ".") / ".cache/loom/models";
  if (m.find('/') == std::string::npos && fs::is_regular_file(root / (m + ".gguf"), ec)) return (root / (m + ".gguf")).string();
  throw usage_error(fmt::format("no model '{}': not a .gguf file or a model name under {}", m, root.string()));
}

// [{"role": "user", "content": text}]
std::string chat_json(const std::string& text) {
  json::Writer w;
  w.begin_array();
  w.begin_object();
  w.key("role");
  w.value("user");
  w.key("content");
  w.value(text);
  w.end_object();
  w.end_array();
  return w.str();
}

class Generator {
 public:
  Generator(cli::Tool& tool, const Options& opt) : tool_(tool), opt_(opt) {
    std::string path = model_file(opt.model);
    file_ = std::make_shared<gguf::File>(gguf::File::open(path));
    tok_ = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_gguf(*file_, path));
    uint32_t n_ctx = opt.n_ctx;
    model_ = std::make_unique<model::Decoder>(file_, model::DecoderOptions{n_ctx, std::max(1u, tool.common().threads)});
    // the chat template: --template FILE, else the model's own
    if (!opt.template_file.empty()) {
      template_ = std::make_unique<chat::Template>(chat::Template::parse(io::read_all(*io::Input::open(opt.template_file)), opt.template_file));
    } else if (auto t = file_->get_string("tokenizer.chat_template")) {
      template_ = std::make_unique<chat::Template>(chat::Template::parse(*t, path + ": tokenizer.chat_template"));
    }
    auto token_text = [&](const char* key) -> std::string {
      auto id = file_->get_int(key);
      if (!id || *id < 0 || static_cast<size_t>(*id) >= tok_->vocab_size()) return "";
      return std::string(tok_->piece(static_cast<int32_t>(*id)));
    };
    render_.add_generation_prompt = true;
    render_.bos_token = token_text("tokenizer.ggml.bos_token_id");
    render_.eos_token = token_text("tokenizer.ggml.eos_token_id");
    // end of generation: the EOS id, and the end-of-turn tokens llama.cpp also stops at
    if (auto e = file_->get_int("tokenizer.ggml.eos_token_id")) eog_.push_back(static_cast<int32_t>(*e));
    if (auto e = file_->get_int("tokenizer.ggml.eot_token_id")) eog_.push_back(static_cast<int32_t>(*e));
    if (const gguf::Value* toks = file_->find("tokenizer.ggml.tokens"))
      for (size_t i = 0; i < toks->size(); ++i) {
        const std::string_view t = toks->str(i);
        if (t == "<|im_end|>" || t == "<end_of_turn>" || t == "<|eot_id|>" || t == "<|end_of_text|>" || t == "<|endoftext|>")
          eog_.push_back(static_cast<int32_t>(i));
      }
  }

  struct Result {
    std::string completion;
    std::string finish_reason;
    size_t prompt_tokens = 0, completion_tokens = 0;
    double ttft_ms = 0, prompt_tps = 0, decode_tps = 0;
  };

  // The prompt text of a conversation (a JSON array of {"role", "content"}), by the chat template.
  std::string render(std::string_view messages_json) const {
    if (!template_) throw input_error("the model has no chat template (tokenizer.chat_template); give one with --template FILE");
    return chat::apply(*template_, chat::Value::parse_json(messages_json), render_);
  }

  // Generates from `prompt`; `stream` (may be null) receives text as it becomes final. A rendered
  // chat prompt already holds its special tokens (BOS among them): they are parsed, not added.
  Result run(const std::string& prompt, const std::function<void(std::string_view)>& stream, bool rendered = false) {
    using clock = std::chrono::steady_clock;
    Result r;
    std::vector<int32_t> ids = tok_->encode(prompt, {!rendered, rendered}).ids;
    if (ids.empty()) throw input_error("the prompt is empty");
    if (ids.size() >= model_->n_ctx())
      throw input_error(fmt::format("the prompt has {} tokens; the context holds {} (--ctx)", ids.size(), model_->n_ctx()));
    r.prompt_tokens = ids.size();
    model::SamplerOptions so = opt_.sampling;
    if (!opt_.seed_given) so.seed = std::random_device{}();
    model::Sampler sampler(so);
    auto t0 = clock::now();
    std::vector<float> logits = model_->forward(ids, 0);
    auto t1 = clock::now();
    r.ttft_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    r.prompt_tps = static_cast<double>(ids.size()) / std::max(1e-9, std::chrono::duration<double>(t1 - t0).count());
    std::vector<int32_t> out;
    std::string text;      // decoded completion so far
    size_t emitted = 0;    // bytes of `text` already streamed
    r.finish_reason = "length";
    while (out.size() < opt_.max_tokens) {
      int32_t next = sampler.sample(logits, ids);
      if (std::find(eog_.begin(), eog_.end(), next) != eog_.end()) {
        r.finish_reason = "stop";
        break;
      }
      out.push_back(next);
      ids.push_back(next);
      text = tok_->decode(out, true);
      // stop strings end the completion before them
      bool stopped = false;
      for (const std::string& s : opt_.stop)
        if (size_t at = text.find(s); !s.empty() && at != std::string::npos) {
          text.resize(at);
          stopped = true;
        }
      // stream what is final: not a possible start of a stop string, not an unfinished character
      size_t safe = text.size();
      if (!stopped) {
        while (safe >= emitted + 3 && text.compare(safe - 3, 3, "\xEF\xBF\xBD") == 0) safe -= 3;
        for (const std::string& s : opt_.stop)
          for (size_t k = std::min(s.size() - 1, safe); k > 0; --k)
            if (safe >= k && text.compare(safe - k, k, s, 0, k) == 0) {
              safe -= k;
              break;
            }
      }
      if (stream && safe > emitted) {
        stream(std::string_view(text).substr(emitted, safe - emitted));
        emitted = safe;
      }
      if (stopped) {
        r.finish_reason = "stop";
        break;
      }
      if (ids.size() >= model_->n_ctx()) break;
      logits = model_->forward({next}, static_cast<uint32_t>(ids.size() - 1));
    }
    auto t2 = clock::now();
    if (stream && text.size() > emitted) stream(std::string_view(text).substr(emitted));
    r.completion = text;
    r.completion_tokens = out.size();
    double dec = std::chrono::duration<double>(t2 - t1).count();
    r.decode_tps = out.size() > 1 && dec > 0 ? static_cast<double>(out.size() - 1) / dec : 0;
    return r;
  }

  void process(io::Record& rec) {
    Result r;
    if (auto messages = rec.raw("messages")) {
      r = run(render(*messages), nullptr, true);
    } else {
      auto prompt = rec.get_string(opt_.field);
      if (!prompt) throw input_error(fmt::format("record has no \"{}\" field (a string) and no \"messages\"", opt_.field));
      r = opt_.chat ? run(render(chat_json(*prompt)), nullptr, true) : run(*prompt, nullptr);
    }
    rec.set("completion", r.completion);
    rec.set("finish_reason", r.finish_reason);
    json::Writer w;
    w.begin_object();
    w.key("prompt_tokens");
    w.value(static_cast<int64_t>(r.prompt_tokens));
    w.key("completion_tokens");
    w.value(static_cast<int64_t>(r.completion_tokens));
    w.end_object();
    rec.set_raw("usage", w.str());
    w.clear();
    w.begin_object();
    w.key("ttft_ms");
    w.value(r.ttft_ms);
    w.key("prompt_tokens_per_s");
    w.value(r.prompt_tps);
    w.key("decode_tokens_per_s");
    w.value(r.decode_tps);
    w.end_object();
    rec.set_raw("timings", w.str());
  }

 private:
  cli::Tool& tool_;
  const Options& opt_;
  std::shared_ptr<gguf::File> file_;
  std::unique_ptr<tok::Tokenizer> tok_;
  std::unique_ptr<model::Decoder> model_;
  std::vector<int32_t> eog_;
  std::unique_ptr<chat::Template> template_;
  chat::RenderOptions render_;
};

void run(cli::Tool& tool, Options& opt) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (a .gguf file or a model name)");
  Generator g(tool, opt);
  if (!opt.texts.empty()) {  // one-off: stream each continuation
    for (const auto& text : opt.texts) {
      auto stream = [&](std::string_view piece) {
        tool.out().write(piece);
        tool.out().flush();
      };
      if (opt.chat)
        g.run(g.render(chat_json(text)), stream, true);
      else
        g.run(text, stream);
      tool.out().write("\n");
    }
    return;
  }
  auto in = io::Input::open(opt.input);
  io::JsonlReader reader(*in);
  io::Record rec;
  std::string line;
  for (;;) {
    try {
      if (!reader.next(rec)) break;
      g.process(rec);
    } catch (Error& e) {
      e.at(reader.name(), reader.line());
      if (reader.failed() || !tool.skip(e)) throw;
      continue;
    }
    line.clear();
    rec.append_to(line);
    line += '\n';
    tool.out().write(line);
    tool.out().flush();
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("generate", "Generate text with a GGUF language model (llama, qwen2, qwen3, gemma3) on the CPU.\n\n"
                             "With PROMPT arguments, streams each continuation to stdout. Otherwise reads records and adds\n"
                             "completion, finish_reason (stop, length), usage and timings to each. A record's prompt is\n"
                             "`prompt` (or --field), or `messages` ([{\"role\", \"content\"}, ...]) rendered with the model's\n"
                             "chat template as transformers' apply_chat_template renders it.");
  Options opt;
  auto& app = tool.app();
  app.add_option("texts", opt.texts, "Prompts to continue (instead of records on stdin)")->type_name("PROMPT...")->default_str("");
  app.add_option("-m,--model", opt.model, "Model: a .gguf file or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("-i,--input", opt.input, "Records to read ('-' = stdin; .zst accepted)")->type_name("FILE");
  app.add_option("--field", opt.field, "Field holding the prompt")->type_name("NAME");
  app.add_flag("--chat", opt.chat, "Treat each prompt as a user message and render it with the chat template");
  app.add_option("--template", opt.template_file, "Chat template (Jinja) for messages, instead of the model's own")->type_name("FILE");
  app.add_option("-n,--max-tokens", opt.max_tokens, "Most tokens to generate")->type_name("N");
  app.add_option("--ctx", opt.n_ctx, "Context length (prompt + completion)")->type_name("N");
  app.add_option("--temperature", opt.sampling.temperature, "Sampling temperature (0 = greedy)")->type_name("T");
  app.add_option("--top-k", opt.sampling.top_k, "Keep the K most likely tokens (0 = all)")->type_name("K");
  app.add_option("--top-p", opt.sampling.top_p, "Keep the smallest set of tokens whose probability reaches P")->type_name("P");
  app.add_option("--min-p", opt.sampling.min_p, "Drop tokens under P times the most likely one's probability")->type_name("P");
  app.add_option("--repeat-penalty", opt.sampling.repeat_penalty, "Penalize tokens already seen (1 = off)")->type_name("X");
  app.add_option("--frequency-penalty", opt.sampling.frequency_penalty, "Minus X per earlier occurrence")->type_name("X");
  app.add_option("--presence-penalty", opt.sampling.presence_penalty, "Minus X once a token has occurred")->type_name("X");
  app.add_option("--seed", opt.sampling.seed, "Random seed: the same seed gives the same output (default: random)")
      ->type_name("N")
      ->each([&](const std::string&) { opt.seed_given = true; });
  app.add_option("--stop", opt.stop, "Stop before this string (repeatable)")->type_name("TEXT");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
