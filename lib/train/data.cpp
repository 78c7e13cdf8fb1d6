#include "loom/train/data.h"

#include <fmt/format.h>

#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/generate/prompt.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::train {

size_t Example::targets() const {
  size_t n = 0;
  for (size_t t = 1; t < seq.weight.size(); ++t) n += seq.weight[t] != 0.0f;
  return n;
}

DataEncoder::DataEncoder(const gguf::File& file, const tok::Tokenizer& tok, const generate::Prompter& prompter, DataOptions opt)
    : tok_(tok), prompter_(prompter), opt_(opt) {
  if (auto e = file.get_int("tokenizer.ggml.eos_token_id"); e && *e >= 0 && static_cast<size_t>(*e) < tok.vocab_size())
    eos_ = static_cast<int32_t>(*e);
}

// parts: (tokens, are targets) in order
Example DataEncoder::from_parts(const std::vector<std::pair<std::vector<int32_t>, bool>>& parts) const {
  Example ex;
  for (const auto& [ids, target] : parts)
    for (int32_t id : ids) {
      ex.seq.tokens.push_back(id);
      ex.seq.weight.push_back(target || opt_.train_on_prompt ? 1.0f : 0.0f);
    }
  if (ex.seq.tokens.size() > opt_.n_ctx)
    throw input_error(fmt::format("the example has {} tokens, more than the context of {} (--ctx)", ex.seq.tokens.size(), opt_.n_ctx));
  if (!ex.seq.weight.empty()) ex.seq.weight[0] = 0.0f;  // nothing predicts the first token
  if (ex.targets() == 0) throw input_error("the example has no target tokens (an empty completion?)");
  return ex;
}

Example DataEncoder::example(const io::Record& rec) const {
  if (auto raw = rec.raw("messages")) {
    const chat::Value msgs = generate::parse_messages(*raw);
    const std::string full = prompter_.render_chat(msgs, false);
    // each assistant turn: the text between the conversation so far with the generation prompt
    // and the conversation through that turn
    std::vector<std::pair<std::vector<int32_t>, bool>> parts;
    size_t done = 0;
    auto piece = [&](size_t from, size_t to, bool target) {
      if (to > from) parts.emplace_back(tok_.encode(std::string_view(full).substr(from, to - from), {.add_special = false, .parse_special = true}).ids, target);
    };
    for (size_t i = 0; i < msgs.size(); ++i) {
      const chat::Value* role = msgs[i].get("role");
      if (!role || !role->is_string() || role->str() != "assistant") continue;
      chat::List before(msgs.items().begin(), msgs.items().begin() + static_cast<long>(i));
      const std::string head = prompter_.render_chat(chat::Value(std::move(before)), true);
      chat::List through(msgs.items().begin(), msgs.items().begin() + static_cast<long>(i + 1));
      const std::string upto = prompter_.render_chat(chat::Value(std::move(through)), false);
      if (full.compare(0, upto.size(), upto) != 0 || upto.compare(0, head.size(), head) != 0 || head.size() < done)
        throw input_error(fmt::format("the chat template does not render the conversation up to messages[{}] as a prefix of the "
                                      "whole, so the assistant's tokens cannot be found",
                                      i));
      piece(done, head.size(), false);
      piece(head.size(), upto.size(), true);
      done = upto.size();
    }
    if (parts.empty() || done == 0) throw input_error("\"messages\" has no assistant message to learn from");
    piece(done, full.size(), false);
    return from_parts(parts);
  }
  auto prompt = rec.get_string("prompt");
  auto completion = rec.get_string("completion");
  if (!prompt || !completion)
    throw input_error("a training record needs \"prompt\" and \"completion\" (strings), or \"messages\"");
  std::vector<int32_t> c = tok_.encode(*completion, {.add_special = false, .parse_special = false}).ids;
  if (eos_ >= 0) c.push_back(eos_);
  return from_parts({{tok_.encode(*prompt, {.add_special = true, .parse_special = false}).ids, false}, {std::move(c), true}});
}

Preference DataEncoder::preference(const io::Record& rec) const {
  auto prompt = rec.get_string("prompt");
  auto chosen = rec.get_string("chosen");
  auto rejected = rec.get_string("rejected");
  if (!prompt || !chosen || !rejected)
    throw input_error("a preference record needs \"prompt\", \"chosen\" and \"rejected\" (strings)");
  const std::vector<int32_t> p = tok_.encode(*prompt, {.add_special = true, .parse_special = false}).ids;
  auto answer = [&](const std::string& text) {
    std::vector<int32_t> a = tok_.encode(text, {.add_special = false, .parse_special = false}).ids;
    if (eos_ >= 0) a.push_back(eos_);
    return a;
  };
  Preference pr;
  pr.chosen = from_parts({{p, false}, {answer(*chosen), true}});
  pr.rejected = from_parts({{p, false}, {answer(*rejected), true}});
  return pr;
}

namespace {
template <class T, class F>
std::vector<T> read_all_records(const std::string& path, F&& make) {
  auto in = io::Input::open(path);
  io::JsonlReader reader(*in);
  io::Record rec;
  std::vector<T> out;
  for (;;) {
    try {
      if (!reader.next(rec)) break;
      T x = make(rec);
      x.line = reader.line();
      out.push_back(std::move(x));
    } catch (Error& e) {
      e.at(reader.name(), reader.line());
      throw;
    }
  }
  if (out.empty()) throw input_error("no training records", path);
  return out;
}
}  // namespace

std::vector<Example> read_examples(const std::string& path, const DataEncoder& enc) {
  return read_all_records<Example>(path, [&](const io::Record& r) { return enc.example(r); });
}

std::vector<Preference> read_preferences(const std::string& path, const DataEncoder& enc) {
  return read_all_records<Preference>(path, [&](const io::Record& r) { return enc.preference(r); });
}

}  // namespace loom::train
