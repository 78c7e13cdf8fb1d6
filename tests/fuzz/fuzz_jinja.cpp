// Fuzz target: the chat-template interpreter (lib/chat/template.h).
// Any byte string, taken as template text, must either parse or be rejected with loom::Error; a
// parsed template rendered against a fixed conversation must either render or throw loom::Error —
// never crash, hang or grow without bound (recursion depth, steps and output size are limited).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "loom/chat/template.h"
#include "loom/core/error.h"

namespace {

const loom::chat::Value& conversation() {
  static const loom::chat::Value msgs = loom::chat::Value::parse_json(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi \u00e9 \ud83e\udd99 <think>x</think>"},
    {"role": "assistant", "content": "<think>\nplan\n</think>\n\nHello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "user", "content": "  bye  ", "n": 3, "f": 1.5, "b": true, "l": [1, [2, {"k": null}]]}
  ])");
  return msgs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace loom;
  std::string src(reinterpret_cast<const char*>(data), size);
  chat::RenderOptions opt;
  opt.add_generation_prompt = size % 2 == 0;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  opt.limits.max_output_bytes = 1 << 20;
  opt.limits.max_steps = 200000;
  opt.limits.max_depth = 64;
  try {
    chat::Template tpl = chat::Template::parse(src, "fuzz");
    try {
      std::string out = chat::apply(tpl, conversation(), opt);
      if (out.size() > opt.limits.max_output_bytes) std::abort();
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
