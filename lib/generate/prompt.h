// The prompt of a record, as token ids, for loom-generate.
//
//   text        `prompt` (or --field): tokenized as text (BOS added when the model adds one;
//               special-token strings stay text); with --chat, sent as a user message
//   messages    [{"role", "content"}, ...]: rendered with the chat template (the model's
//               tokenizer.chat_template, or --chat-template-file) as transformers'
//               apply_chat_template renders it, generation prompt added; special tokens parsed
//   --rag       a question (`text`, or --field) and `hits` (loom-retrieve's [{id, text, score,
//               ...}]) become one user message through the RAG template: the sources numbered
//               [1]..[k] and an instruction to answer from them, citing them as [n]
//   --template  a Jinja template renders the prompt instead (variables: below)
//   tokens      [ids] when the record has none of the above: used as they are
//
// --template variables: with --rag, `question` (string), `sources` (list of the hits, each with
// `n`, its number, added) and `record` (the whole record); otherwise every field of the record by
// its name, and `record`. A name the template reads that is not defined is an error naming the
// template's file and line (jinja2's StrictUndefined; `x is defined` and `x | default(...)` may
// still test for one).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loom/chat/template.h"
#include "loom/chat/value.h"

namespace loom::gguf {
class File;
}
namespace loom::tok {
class Tokenizer;
}
namespace loom::io {
class Record;
}

namespace loom::generate {

struct PromptOptions {
  std::string field;  // the prompt's (or question's, or text's) field
  bool chat = false;  // a text prompt is a user message
  bool rag = false;
  bool score = false;              // the record's text is scored, not a prompt
  std::string template_file;       // --template
  std::string chat_template_file;  // --chat-template-file
  uint32_t n_ctx = 4096;
  bool truncate = false;  // a prompt too long for the context keeps its end
};

struct Prompt {
  std::vector<int32_t> tokens;
  size_t truncated = 0;                 // tokens dropped by --truncate
  std::vector<chat::Value> source_ids;  // --rag: the id of source n at n-1 (undefined: none)
};

class Prompter {
 public:
  Prompter(const gguf::File& file, const std::string& file_name, const tok::Tokenizer& tok, PromptOptions opt);
  ~Prompter();

  // The prompt of a record that asks for up to `max_tokens` tokens. loom::Error(BadInput)
  // without a location for a bad record.
  Prompt build(const io::Record& rec, size_t max_tokens) const;
  // The prompt of a text given on the command line (one-off).
  Prompt build_text(const std::string& text, size_t max_tokens) const;
  // A conversation rendered with the chat template, with or without the generation prompt
  // (loom-finetune finds each assistant turn's text this way). loom::Error (BadInput) without a
  // chat template.
  std::string render_chat(const chat::Value& messages, bool add_generation_prompt) const;

 private:
  std::string chat(const chat::Value& messages) const;
  std::string render(const chat::Value& vars, const std::vector<std::string>& known) const;
  Prompt fit(std::vector<int32_t> ids, size_t max_tokens) const;

  const tok::Tokenizer& tok_;
  PromptOptions opt_;
  std::unique_ptr<chat::Template> chat_;  // the chat template (may be absent)
  chat::RenderOptions render_;
  std::unique_ptr<chat::Template> template_;           // --template, or the built-in RAG template
  std::vector<std::pair<std::string, size_t>> names_;  // names the template reads (line of first use)
  std::optional<int32_t> bos_;
};

// A record's "messages" (JSON text): checked to be an array of {"role", "content"} objects.
chat::Value parse_messages(std::string_view raw);

// The names a Jinja template reads that it does not define itself (loops, set, macros) and that
// are not jinja's or the chat templates' globals, each with the line of its first use. Names only
// tested with `is defined` or given a `| default(...)` are not counted.
std::vector<std::pair<std::string, size_t>> template_names(std::string_view source);

// The source numbers cited in `text` as [n] (also [n, m] and [n][m]), first appearance first,
// those in 1..n_sources only.
std::vector<size_t> citations(std::string_view text, size_t n_sources);

}  // namespace loom::generate
