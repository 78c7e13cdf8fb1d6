// Chat templates: the Jinja2 subset that models' chat templates are written in, rendered the way
// Hugging Face transformers' apply_chat_template(tokenize=False) renders them.
//
//   auto tpl = chat::Template::parse(gguf.get_string("tokenizer.chat_template").value(), "smollm2");
//   chat::RenderOptions opt;                  // add_generation_prompt, bos/eos tokens, extra vars
//   opt.add_generation_prompt = true;
//   std::string prompt = chat::apply(tpl, chat::Value::parse_json(messages_json), opt);
//
// What transformers does and this does too:
//   * the environment: trim_blocks and lstrip_blocks on, a single trailing newline of the source
//     dropped, "\r\n"/"\r" read as "\n", the loopcontrols extension ({% break %}, {% continue %})
//     and the {% generation %} block (rendered as its body);
//   * the globals raise_exception(msg), strftime_now(fmt), namespace(...), dict(...), range(...);
//     tojson is json.dumps(ensure_ascii=False) with indent/separators/sort_keys arguments;
//   * the variables: messages, add_generation_prompt, tools (none unless given), documents (none),
//     the special tokens (bos_token, eos_token, ...) and any extra variables (enable_thinking,
//     date_string, ...);
//   * message keys whose value is null are dropped; reasoning_content/thinking/reasoning aliases;
//     an empty conversation is an error.
//
// Undefined variables behave as in jinja2's default Undefined (which transformers uses): printing
// one gives "", it is false, iterating it gives nothing, `is defined` is false; using it in any
// other way (an attribute, `+`, a call) is an error naming it ("'foo' is undefined"). Templates
// depend on this (`{% if tools %}`, `system_message is defined`), so it is not made stricter.
//
// Errors are loom::Error(BadInput) with `file` = the template's name and `line` = the template
// line: syntax errors, unknown filters and tests at parse time (the message starts with
// "column N: "), and at render time raise_exception's message verbatim, undefined-value errors
// and type errors. Rendering is bounded (Limits): nesting depth, loop iterations and output
// size, so any template text is safe to parse and render.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "loom/chat/value.h"

namespace loom::chat {

struct Limits {
  size_t max_output_bytes = size_t(64) << 20;  // rendered text and any string built on the way
  uint64_t max_steps = 50'000'000;             // loop iterations + expression evaluations
  int max_depth = 200;                         // nesting of statements/expressions, call depth
};

class Template {
 public:
  // Parses the template once. Throws loom::Error(BadInput) with the line and column of a syntax
  // error, an unknown filter or an unknown test.
  static Template parse(std::string_view source, std::string name = "chat template");

  // Renders with `vars` (a dict) as the global variables. Throws loom::Error (see above).
  std::string render(const Value& vars, const Limits& limits = {}) const;

  const std::string& name() const;

  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

  struct Impl;

 private:
  explicit Template(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct RenderOptions {
  bool add_generation_prompt = false;
  // Special tokens as transformers passes them (tokenizer.special_tokens_map); empty = absent.
  std::string bos_token, eos_token, unk_token, pad_token;
  Value tools;       // a list, or undefined/none for no tools
  Value extra;       // a dict of further variables (enable_thinking, date_string, ...)
  Limits limits;
};

// What transformers' apply_chat_template(messages, tokenize=False, ...) returns: `messages` is a
// list of message dicts (role, content, ...). Throws loom::Error(BadInput) for an empty list or a
// message that is not a dict, and for template errors.
std::string apply(const Template& tpl, const Value& messages, const RenderOptions& opt = {});

// The variables apply() renders with (exposed for tests and for callers adding their own).
Value make_context(const Value& messages, const RenderOptions& opt);

// Python's str.strftime for the local time now (the %-codes of C strftime).
std::string strftime_now(std::string_view format);

}  // namespace loom::chat
