#include "loom/generate/prompt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::generate {

namespace {

// The RAG prompt (a user message; the chat template adds the rest).
constexpr const char* kRagTemplate =
    "Answer the question using only the numbered sources below. Cite the sources you use by their "
    "numbers in square brackets, like [1] or [2][3]. If the sources do not contain the answer, say so.\n"
    "\n"
    "{% for s in sources %}[{{ s.n }}] {{ s.text | trim }}\n"
    "\n"
    "{% endfor %}"
    "Question: {{ question }}\n";

std::string quoted(std::string_view s) { return fmt::format("\"{}\"", s); }

// [{"role": "user", "content": text}]
chat::Value user_message(std::string text) {
  chat::Value m = chat::Value::dict();
  m.set("role", "user");
  m.set("content", std::move(text));
  return chat::Value(chat::List{m});
}

// A record's `messages`, checked: a non-empty array of objects with a string role and a content
// (a string, a list of parts, or null beside tool_calls).
// A record's `tokens`: token ids of the model's vocabulary.
std::vector<int32_t> token_ids(std::string_view raw, size_t n_vocab) {
  chat::Value ids = chat::Value::parse_json(raw);
  if (!ids.is_list()) throw input_error("\"tokens\" must be an array of token ids");
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].kind() != chat::Value::Kind::Int || ids[i].as_int() < 0 || static_cast<size_t>(ids[i].as_int()) >= n_vocab)
      throw input_error(fmt::format("tokens[{}] is not a token id (0 to {})", i, n_vocab - 1));
    out.push_back(static_cast<int32_t>(ids[i].as_int()));
  }
  return out;
}

// The record as template variables: its fields by name, and `record`.
chat::Value record_vars(const io::Record& rec) {
  chat::Value all = chat::Value::parse_json(rec.to_json());
  chat::Value vars = chat::Value::dict(all.entries());
  vars.set("record", all);
  return vars;
}

}  // namespace

chat::Value parse_messages(std::string_view raw) {
  chat::Value msgs = chat::Value::parse_json(raw);
  const char* shape = "\"messages\" must be an array of {\"role\", \"content\"} objects";
  if (!msgs.is_list()) throw input_error(shape);
  if (msgs.size() == 0) throw input_error("\"messages\" is empty");
  for (size_t i = 0; i < msgs.size(); ++i) {
    const chat::Value& m = msgs[i];
    if (m.kind() != chat::Value::Kind::Dict) throw input_error(fmt::format("messages[{}] is not an object ({})", i, shape));
    const chat::Value* role = m.get("role");
    if (!role || !role->is_string()) throw input_error(fmt::format("messages[{}] has no \"role\" (a string)", i));
    const chat::Value* content = m.get("content");
    const bool tool_calls = m.get("tool_calls") != nullptr;
    if (!content || !(content->is_string() || content->is_list() || (content->is_none() && tool_calls)))
      throw input_error(fmt::format("messages[{}] has no \"content\" (a string or a list of parts)", i));
  }
  return msgs;
}

Prompter::Prompter(const gguf::File& file, const std::string& file_name, const tok::Tokenizer& tok, PromptOptions opt)
    : tok_(tok), opt_(std::move(opt)) {
  // the chat template: --chat-template-file, else the model's own
  if (!opt_.chat_template_file.empty())
    chat_ = std::make_unique<chat::Template>(
        chat::Template::parse(io::read_all(*io::Input::open(opt_.chat_template_file)), opt_.chat_template_file));
  else if (auto t = file.get_string("tokenizer.chat_template"))
    chat_ = std::make_unique<chat::Template>(chat::Template::parse(*t, file_name + ": tokenizer.chat_template"));
  auto token_text = [&](const char* key) -> std::string {
    auto id = file.get_int(key);
    if (!id || *id < 0 || static_cast<size_t>(*id) >= tok_.vocab_size()) return "";
    return std::string(tok_.piece(static_cast<int32_t>(*id)));
  };
  render_.add_generation_prompt = true;
  render_.bos_token = token_text("tokenizer.ggml.bos_token_id");
  render_.eos_token = token_text("tokenizer.ggml.eos_token_id");
  // the prompt template: --template, or the RAG prompt
  if (!opt_.template_file.empty()) {
    std::string source = io::read_all(*io::Input::open(opt_.template_file));
    template_ = std::make_unique<chat::Template>(chat::Template::parse(source, opt_.template_file));
    names_ = template_names(source);
  } else if (opt_.rag) {
    template_ = std::make_unique<chat::Template>(chat::Template::parse(kRagTemplate, "the RAG template"));
    names_ = template_names(kRagTemplate);
  }
  if (opt_.rag)  // the variables are known now: check the template once
    for (const auto& [name, line] : names_)
      if (name != "question" && name != "sources" && name != "record")
        throw input_error(fmt::format("'{}' is undefined (with --rag a template has question, sources and record)", name),
                          opt_.template_file, line);
}

Prompter::~Prompter() = default;

std::string Prompter::chat(const chat::Value& messages) const {
  if (!chat_) throw input_error("the model has no chat template (tokenizer.chat_template); give one with --chat-template-file FILE");
  return chat::apply(*chat_, messages, render_);
}

std::string Prompter::render_chat(const chat::Value& messages, bool add_generation_prompt) const {
  if (!chat_) throw input_error("the model has no chat template (tokenizer.chat_template); give one with --chat-template-file FILE");
  chat::RenderOptions r = render_;
  r.add_generation_prompt = add_generation_prompt;
  return chat::apply(*chat_, messages, r);
}

// Renders --template (or the RAG template); a name it reads that `known` lacks is an error.
std::string Prompter::render(const chat::Value& vars, const std::vector<std::string>& known) const {
  for (const auto& [name, line] : names_)
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw input_error(fmt::format("{}:{}: '{}' is undefined (the record has no such field)", opt_.template_file, line, name));
  return template_->render(vars);
}

Prompt Prompter::build(const io::Record& rec, size_t max_tokens) const {
  auto text_field = [&]() -> std::optional<std::string> { return rec.get_string(opt_.field); };
  if (opt_.score) {
    Prompt p;
    if (auto text = text_field())
      p.tokens = tok_.encode(*text, {.add_special = true, .parse_special = false}).ids;
    else if (auto raw = rec.raw("tokens"))
      p.tokens = token_ids(*raw, tok_.vocab_size());
    else
      throw input_error(fmt::format("record has no {} field (a string) and no \"tokens\"", quoted(opt_.field)));
    return p;
  }
  if (opt_.rag) {
    auto question = text_field();
    if (!question) throw input_error(fmt::format("record has no {} field (the question, a string)", quoted(opt_.field)));
    auto raw = rec.raw("hits");
    if (!raw) throw input_error("record has no \"hits\" (the sources: loom-retrieve's output)");
    chat::Value hits = chat::Value::parse_json(*raw);
    if (!hits.is_list()) throw input_error("\"hits\" must be an array of {\"text\", ...} objects");
    chat::List sources;
    Prompt p;
    for (size_t i = 0; i < hits.size(); ++i) {
      const chat::Value& h = hits[i];
      const chat::Value* text = h.kind() == chat::Value::Kind::Dict ? h.get("text") : nullptr;
      if (!text || !text->is_string()) throw input_error(fmt::format("hits[{}] has no \"text\" (a string)", i));
      chat::Value src = chat::Value::dict({{"n", chat::Value(static_cast<int64_t>(i + 1))}});
      for (const auto& [k, v] : h.entries())
        if (k != "n") src.set(k, v);
      sources.push_back(std::move(src));
      const chat::Value* id = h.get("id");
      p.source_ids.push_back(id ? *id : chat::Value());
    }
    chat::Value vars = chat::Value::dict();
    vars.set("question", *question);
    vars.set("sources", chat::Value(std::move(sources)));
    vars.set("record", chat::Value::parse_json(rec.to_json()));
    std::string message = template_->render(vars);
    std::vector<int32_t> ids = chat_
                                   ? tok_.encode(chat(user_message(std::move(message))), {.add_special = false, .parse_special = true}).ids
                                   : tok_.encode(message, {.add_special = true, .parse_special = false}).ids;
    Prompt fitted = fit(std::move(ids), max_tokens);
    fitted.source_ids = std::move(p.source_ids);
    return fitted;
  }
  if (template_) {
    std::vector<std::string> known;
    for (size_t i = 0; i < rec.size(); ++i) known.push_back(rec.key(i));
    known.push_back("record");
    std::string text = render(record_vars(rec), known);
    if (opt_.chat)
      return fit(tok_.encode(chat(user_message(std::move(text))), {.add_special = false, .parse_special = true}).ids, max_tokens);
    return fit(tok_.encode(text, {.add_special = true, .parse_special = false}).ids, max_tokens);
  }
  if (auto raw = rec.raw("messages"))
    return fit(tok_.encode(chat(parse_messages(*raw)), {.add_special = false, .parse_special = true}).ids, max_tokens);
  if (auto text = text_field()) return build_text(*text, max_tokens);
  if (auto raw = rec.raw("tokens")) return fit(token_ids(*raw, tok_.vocab_size()), max_tokens);
  throw input_error(fmt::format("record has no {} field (a string), no \"messages\" and no \"tokens\"", quoted(opt_.field)));
}

Prompt Prompter::build_text(const std::string& text, size_t max_tokens) const {
  if (opt_.chat) return fit(tok_.encode(chat(user_message(text)), {.add_special = false, .parse_special = true}).ids, max_tokens);
  return fit(tok_.encode(text, {.add_special = true, .parse_special = false}).ids, max_tokens);
}

// A prompt must leave room for one token at least. --truncate: a prompt that does not keeps
// its leading special tokens (BOS) and its end, leaving room for max_tokens (at most half the
// context).
Prompt Prompter::fit(std::vector<int32_t> ids, size_t max_tokens) const {
  Prompt p;
  if (ids.empty()) throw input_error("the prompt is empty");
  const size_t n_ctx = opt_.n_ctx;
  if (ids.size() < n_ctx) {
    p.tokens = std::move(ids);
    return p;
  }
  if (!opt_.truncate)
    throw input_error(
        fmt::format("the prompt has {} tokens; the context holds {} (--ctx N, or --truncate to keep its end)", ids.size(), n_ctx));
  const std::vector<int32_t> head = tok_.encode("", {.add_special = true, .parse_special = false}).ids;
  size_t keep_head = head.size() <= ids.size() && std::equal(head.begin(), head.end(), ids.begin()) ? head.size() : 0;
  const size_t keep = n_ctx - std::max<size_t>(1, std::min(max_tokens, n_ctx / 2));
  keep_head = std::min(keep_head, keep);
  p.tokens.assign(ids.begin(), ids.begin() + static_cast<long>(keep_head));
  p.tokens.insert(p.tokens.end(), ids.end() - static_cast<long>(keep - keep_head), ids.end());
  p.truncated = ids.size() - p.tokens.size();
  return p;
}

// ------------------------------------------------------------------------------------------------
// Template names: a small lexer over {{ ... }} and {% ... %} (strings, names, operators)

std::vector<std::pair<std::string, size_t>> template_names(std::string_view src) {
  struct Tok {
    std::string text;
    bool name;
    size_t line;
  };
  std::vector<std::vector<Tok>> tags;  // statements start with "%"
  size_t line = 1;
  for (size_t i = 0; i < src.size();) {
    if (src[i] == '\n') ++line;
    if (src[i] != '{' || i + 1 >= src.size() || (src[i + 1] != '{' && src[i + 1] != '%' && src[i + 1] != '#')) {
      ++i;
      continue;
    }
    const char kind = src[i + 1];
    i += 2;
    if (kind == '#') {  // a comment
      for (; i < src.size() && src.compare(i, 2, "#}") != 0; ++i) line += src[i] == '\n';
      i += 2;
      continue;
    }
    const char close = kind == '{' ? '}' : '%';
    std::vector<Tok> tag{{std::string(1, kind), false, line}};
    while (i < src.size()) {
      const char c = src[i];
      if (c == '\n') ++line;
      if (std::isspace(static_cast<unsigned char>(c)) || ((c == '-' || c == '+') && tag.size() == 1)) {
        ++i;
      } else if (c == close && i + 1 < src.size() && src[i + 1] == '}') {
        i += 2;
        break;
      } else if ((c == '-' || c == '+') && i + 2 < src.size() && src[i + 1] == close && src[i + 2] == '}') {
        i += 3;
        break;
      } else if (c == '"' || c == '\'') {
        size_t j = i + 1;
        for (; j < src.size() && src[j] != c; ++j) {
          if (src[j] == '\\')
            ++j;
          else if (src[j] == '\n')
            ++line;
        }
        tag.push_back({"\"\"", false, line});
        i = j + 1;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < src.size() && (std::isalnum(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
        tag.push_back({std::string(src.substr(i, j - i)), true, line});
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        while (i < src.size() && (std::isalnum(static_cast<unsigned char>(src[i])) || src[i] == '.')) ++i;
        tag.push_back({"0", false, line});
      } else {
        tag.push_back({std::string(1, c), false, line});
        ++i;
      }
    }
    if (kind == '%' && tag.size() > 1 && tag[1].text == "raw") {  // {% raw %}...{% endraw %}: text
      size_t end = src.find("endraw", i);
      for (; i < src.size() && i < end; ++i) line += src[i] == '\n';
      i = src.find("}", i);
      i = i == std::string_view::npos ? src.size() : i + 1;
      continue;
    }
    tags.push_back(std::move(tag));
  }

  static const std::set<std::string> reserved = {"and",
                                                 "or",
                                                 "not",
                                                 "in",
                                                 "is",
                                                 "if",
                                                 "else",
                                                 "elif",
                                                 "endif",
                                                 "for",
                                                 "endfor",
                                                 "set",
                                                 "endset",
                                                 "macro",
                                                 "endmacro",
                                                 "call",
                                                 "endcall",
                                                 "filter",
                                                 "endfilter",
                                                 "with",
                                                 "endwith",
                                                 "block",
                                                 "endblock",
                                                 "extends",
                                                 "include",
                                                 "import",
                                                 "from",
                                                 "as",
                                                 "recursive",
                                                 "raw",
                                                 "endraw",
                                                 "generation",
                                                 "endgeneration",
                                                 "break",
                                                 "continue",
                                                 "do",
                                                 "true",
                                                 "false",
                                                 "none",
                                                 "True",
                                                 "False",
                                                 "None",
                                                 "without",
                                                 "context",
                                                 "ignore",
                                                 "missing",
                                                 "scoped",
                                                 "loop",
                                                 "caller",
                                                 "varargs",
                                                 "kwargs",
                                                 "range",
                                                 "dict",
                                                 "namespace",
                                                 "raise_exception",
                                                 "strftime_now"};
  // names the template binds: loop targets, set, macro names and parameters, with
  std::set<std::string> bound;
  for (const auto& t : tags) {
    if (t[0].text != "%" || t.size() < 2) continue;
    const std::string& kw = t[1].text;
    if (kw == "for") {
      for (size_t k = 2; k < t.size() && t[k].text != "in"; ++k)
        if (t[k].name) bound.insert(t[k].text);
    } else if (kw == "set") {
      for (size_t k = 2; k < t.size() && t[k].text != "=" && t[k].text != "."; ++k)
        if (t[k].name) bound.insert(t[k].text);
    } else if (kw == "macro" || kw == "with" || kw == "call") {
      for (size_t k = 2; k < t.size(); ++k)
        if (t[k].name && (k == 2 || (k + 1 < t.size() && (t[k + 1].text == "=" || t[k + 1].text == "," || t[k + 1].text == ")"))))
          bound.insert(t[k].text);
    }
  }
  std::vector<std::pair<std::string, size_t>> names;
  auto text = [](const std::vector<Tok>& t, size_t k) -> std::string_view { return k < t.size() ? std::string_view(t[k].text) : ""; };
  for (const auto& t : tags) {
    int depth = 0;
    for (size_t k = 1; k < t.size(); ++k) {
      const std::string_view s = t[k].text;
      if (s == "(" || s == "[" || s == "{") ++depth;
      if (s == ")" || s == "]" || s == "}") --depth;
      if (!t[k].name || reserved.count(t[k].text) || bound.count(t[k].text)) continue;
      const std::string_view prev = text(t, k - 1), next = text(t, k + 1);
      if (prev == "." || prev == "|" || prev == "is" || (prev == "not" && text(t, k - 2) == "is")) continue;  // attribute, filter, test
      if (next == "=" && depth > 0) continue;                                                                 // keyword argument
      const size_t after_not = text(t, k + 2) == "not" ? k + 3 : k + 2;
      if (next == "is" && (text(t, after_not) == "defined" || text(t, after_not) == "undefined")) continue;
      if (next == "|" && (text(t, k + 2) == "default" || text(t, k + 2) == "d")) continue;
      if (std::none_of(names.begin(), names.end(), [&](const auto& n) { return n.first == s; })) names.emplace_back(s, t[k].line);
    }
  }
  return names;
}

std::vector<size_t> citations(std::string_view text, size_t n_sources) {
  std::vector<size_t> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '[') continue;
    // [n] or [n, m, ...]
    std::vector<size_t> nums;
    size_t j = i + 1;
    for (;;) {
      size_t v = 0, digits = 0;
      while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])) && digits < 6)
        v = v * 10 + static_cast<size_t>(text[j++] - '0'), ++digits;
      if (digits == 0) break;
      nums.push_back(v);
      if (j < text.size() && text[j] == ',') {
        ++j;
        while (j < text.size() && text[j] == ' ') ++j;
        continue;
      }
      break;
    }
    if (nums.empty() || j >= text.size() || text[j] != ']') continue;
    for (size_t v : nums)
      if (v >= 1 && v <= n_sources && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    i = j;
  }
  return out;
}

}  // namespace loom::generate
