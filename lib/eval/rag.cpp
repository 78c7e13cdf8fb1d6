#include "loom/eval/rag.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/generate/generator.h"
#include "loom/generate/prompt.h"
#include "loom/gguf/gguf.h"
#include "loom/io/json.h"
#include "loom/io/stream.h"
#include "loom/model/encoder.h"
#include "loom/model/models_dir.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::eval {

namespace {

struct BuiltIn {
  const char* name;
  const char* text;
};
const BuiltIn kPrompts[] = {
#include "loom/eval_prompts.inc"
};

// The placeholders each prompt may use.
const std::vector<std::pair<std::string, std::vector<std::string>>> kPlaceholders = {
    {"statements", {"question", "answer"}},
    {"faithfulness", {"context", "statement", "question", "answer"}},
    {"questions", {"answer", "n"}},
    {"noncommittal", {"answer", "question"}},
    {"context_precision", {"question", "context", "reference"}},
    {"context_recall", {"question", "context", "sentence"}},
};

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Calls f(name, begin, end) for each {{ name }} of text.
void each_placeholder(std::string_view text, const std::function<void(std::string_view, size_t, size_t)>& f) {
  for (size_t at = 0; (at = text.find("{{", at)) != std::string_view::npos;) {
    size_t close = text.find("}}", at + 2);
    if (close == std::string_view::npos) return;
    f(trim(text.substr(at + 2, close - at - 2)), at, close + 2);
    at = close + 2;
  }
}

const std::string* text_field(const chat::Value& rec, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const chat::Value* v = rec.get(n); v && v->is_string()) return &v->str();
  return nullptr;
}

}  // namespace

std::vector<RagPrompt> rag_prompts(const std::string& dir) {
  std::vector<RagPrompt> out;
  for (const auto& entry : kPlaceholders) {
    const std::string& name = entry.first;
    const std::vector<std::string>& allowed = entry.second;
    RagPrompt p{name, "built-in", ""};
    for (const BuiltIn& b : kPrompts)
      if (name == b.name) p.text = b.text;
    if (!dir.empty()) {
      std::filesystem::path f = std::filesystem::path(dir) / (name + ".txt");
      std::error_code ec;
      if (std::filesystem::exists(f, ec)) {
        p.file = f.string();
        p.text = io::read_all(*io::Input::open(p.file));
      }
    }
    each_placeholder(p.text, [&](std::string_view n, size_t at, size_t) {
      if (std::find(allowed.begin(), allowed.end(), n) == allowed.end())
        throw input_error(fmt::format("unknown placeholder {{{{{}}}}} (the {} prompt may use: {})", n, name, fmt::join(allowed, ", ")),
                          p.file, 1 + static_cast<size_t>(std::count(p.text.begin(), p.text.begin() + at, '\n')));
    });
    out.push_back(std::move(p));
  }
  return out;
}

std::string render_prompt(const RagPrompt& p, const std::vector<std::pair<std::string, std::string>>& vars) {
  std::string out;
  size_t last = 0;
  each_placeholder(p.text, [&](std::string_view n, size_t at, size_t end) {
    out.append(p.text, last, at - last);
    for (auto& [k, v] : vars)
      if (k == n) out += v;
    last = end;
  });
  out.append(p.text, last);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

RagItem rag_item(const chat::Value& rec, const std::string& default_id) {
  RagItem it;
  if (!rec.is_dict()) throw input_error("a record is a JSON object");
  const chat::Value* id = rec.get("id");
  it.id = !id                                   ? default_id
          : id->is_string()                       ? id->str()
          : id->kind() == chat::Value::Kind::Int  ? std::to_string(id->as_int())
          : id->kind() == chat::Value::Kind::Float ? fmt::format("{}", id->as_float())
                                                  : default_id;
  const std::string* q = text_field(rec, {"question", "query", "text"});
  if (!q) throw input_error("no question: a \"question\" (or \"query\", \"text\") string is needed");
  it.question = *q;
  const std::string* a = text_field(rec, {"answer", "completion"});
  if (!a) throw input_error("no answer: an \"answer\" (or \"completion\") string is needed");
  it.answer = *a;
  if (const std::string* r = text_field(rec, {"reference", "ground_truth"}))
    it.reference = *r;
  else
    for (const char* n : {"reference", "ground_truth", "references", "answers"})
      if (const chat::Value* v = rec.get(n); v && v->is_list() && v->size() && (*v)[0].is_string()) {
        it.reference = (*v)[0].str();
        break;
      }
  if (const chat::Value* c = rec.get("contexts")) {
    if (!c->is_list()) throw input_error("\"contexts\" must be a list of strings");
    for (auto& x : c->items()) {
      if (!x.is_string()) throw input_error("\"contexts\" must be a list of strings");
      it.contexts.push_back(x.str());
    }
  } else if (const chat::Value* h = rec.get("hits")) {
    if (!h->is_list()) throw input_error("\"hits\" must be a list of objects with \"text\"");
    for (auto& x : h->items()) {
      const chat::Value* t = x.is_dict() ? x.get("text") : nullptr;
      if (!t || !t->is_string()) throw input_error("a hit without \"text\" (retrieve with the text stored in the index)");
      it.contexts.push_back(t->str());
    }
  }
  return it;
}

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    std::string t = trim(cur);
    if (!t.empty()) out.push_back(std::move(t));
    cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      flush();
      continue;
    }
    cur += c;
    if ((c == '.' || c == '!' || c == '?') && (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n')) flush();
  }
  flush();
  return out;
}

std::vector<std::string> list_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = trim(std::string_view(text).substr(start, end - start));
    start = end + 1;
    // bullets and numbering: "- ", "* ", "• ", "1. ", "2) ", "Statement 3: "
    for (const char* b : {"- ", "* ", "\xe2\x80\xa2 "})
      if (line.rfind(b, 0) == 0) line = trim(line.substr(std::strlen(b)));
    size_t d = 0;
    std::string low = lower(line);
    for (const char* word : {"statement ", "question "})
      if (low.rfind(word, 0) == 0) d = std::strlen(word);
    size_t digits = d;
    while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits]))) ++digits;
    if (digits > d && digits < line.size() && (line[digits] == '.' || line[digits] == ')' || line[digits] == ':'))
      line = trim(line.substr(digits + 1));
    if (line.empty()) continue;
    if (out.empty() && line.back() == ':') continue;  // a heading: "Statements:", "Here are 3 questions:"
    out.push_back(std::move(line));
  }
  return out;
}

double average_precision(const std::vector<int>& v) {
  double num = 0, useful = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    useful += v[k];
    if (v[k]) num += useful / static_cast<double>(k + 1);
  }
  return num / (useful + 1e-10);
}

// ------------------------------------------------------------------------------------------------

std::string RagJudgment::to_json() const {
  std::string s = "{";
  auto key = [&](const char* k) {
    if (s.size() > 1) s += ',';
    json::append_string(s, k);
    s += ':';
  };
  auto verdict = [&](const Verdict& v) {
    s += "\"verdict\":";
    s += v.yes ? "1" : "0";
    s += ",\"p_yes\":";
    json::append_number(s, v.p_yes);
    s += ",\"p_no\":";
    json::append_number(s, v.p_no);
    if (v.undecided) s += ",\"undecided\":true";
    s += ",\"judge\":";
    json::append_string(s, v.text);
  };
  auto texts = [&](const char* name, const std::vector<std::pair<std::string, Verdict>>& items) {
    key(name);
    s += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      s += i ? ",{\"text\":" : "{\"text\":";
      json::append_string(s, items[i].first);
      s += ',';
      verdict(items[i].second);
      s += '}';
    }
    s += ']';
  };
  if (faithfulness || !statements_text.empty()) {
    key("statements_judge");
    json::append_string(s, statements_text);
    texts("statements", statements);
  }
  if (answer_relevancy || !questions_text.empty()) {
    key("questions_judge");
    json::append_string(s, questions_text);
    key("questions");
    s += '[';
    for (size_t i = 0; i < questions.size(); ++i) {
      s += i ? ",{\"text\":" : "{\"text\":";
      json::append_string(s, questions[i].first);
      s += ",\"similarity\":";
      json::append_number(s, questions[i].second);
      s += '}';
    }
    s += ']';
  }
  if (noncommittal) {
    key("noncommittal");
    s += '{';
    verdict(*noncommittal);
    s += '}';
  }
  if (!contexts.empty()) {
    key("contexts");
    s += '[';
    for (size_t i = 0; i < contexts.size(); ++i) {
      s += i ? ",{" : "{";
      verdict(contexts[i]);
      s += '}';
    }
    s += ']';
  }
  if (!sentences.empty()) texts("reference_sentences", sentences);
  for (auto [name, flag] : {std::pair{"context_cut", context_cut}, {"statements_cut", statements_cut}, {"questions_cut", questions_cut}})
    if (flag) {
      key(name);
      s += "true";
    }
  s += '}';
  return s;
}

// ------------------------------------------------------------------------------------------------

struct RagEvaluator::Impl {
  RagOptions opt;
  std::vector<RagPrompt> prompts;
  std::string judge_path;
  std::shared_ptr<gguf::File> file;
  std::unique_ptr<tok::Tokenizer> tok;
  std::unique_ptr<generate::Prompter> prompter;
  std::unique_ptr<generate::Generator> gen;
  std::optional<model::Encoder> enc;
  bool raw = false;                 // no chat template: prompts are plain text
  std::vector<int8_t> answer_word;  // by token id: 1 spells the start of "yes", 2 of "no", 0 neither

  const RagPrompt& prompt(const char* name) const {
    for (auto& p : prompts)
      if (p.name == name) return p;
    throw std::logic_error("no prompt");
  }

  // One judge request: the prompt rendered, its context (the "context" variable) cut at its end
  // until the prompt and `max_tokens` fit the window.
  struct Ask {
    std::vector<int32_t> tokens;
    size_t max_tokens;
    bool cut = false;
  };
  Ask ask(const char* name, std::vector<std::pair<std::string, std::string>> vars, size_t max_tokens) const {
    const RagPrompt& p = prompt(name);
    Ask a{{}, max_tokens};
    for (int tries = 0;; ++tries) {
      a.tokens = prompter->build_text(render_prompt(p, vars) + (raw ? "\n" : ""), max_tokens).tokens;
      if (a.tokens.size() + max_tokens <= opt.n_ctx) return a;
      auto ctx = std::find_if(vars.begin(), vars.end(), [](auto& v) { return v.first == "context"; });
      if (ctx == vars.end() || ctx->second.empty() || tries == 12)
        throw input_error(fmt::format("the {} prompt has {} tokens and its answer may take {}: more than the judge's window of {} "
                                      "(--judge-ctx)", name, a.tokens.size(), max_tokens, opt.n_ctx));
      double keep = std::max(0.0, 1.0 - (double(a.tokens.size() + max_tokens - opt.n_ctx) + 16) / double(a.tokens.size()));
      size_t n = static_cast<size_t>(ctx->second.size() * std::min(keep, 0.9));
      while (n > 0 && (static_cast<unsigned char>(ctx->second[n]) & 0xC0) == 0x80) --n;  // a whole character
      ctx->second.resize(n);
      a.cut = true;
    }
  }

  Verdict verdict(const generate::Completion& c) const {
    Verdict v;
    v.text = c.text;
    if (!c.logprobs.empty())
      for (auto& [id, lp] : c.logprobs[0].top) {
        int8_t w = id >= 0 && static_cast<size_t>(id) < answer_word.size() ? answer_word[id] : 0;
        if (w == 1) v.p_yes += std::exp(lp);
        if (w == 2) v.p_no += std::exp(lp);
      }
    v.undecided = v.p_yes == 0 && v.p_no == 0;
    v.yes = v.p_yes > v.p_no;
    return v;
  }

  // Runs the asks in one pass of the generator; each completion goes to its callback.
  void run(std::vector<std::pair<Ask, std::function<void(const generate::Completion&)>>>& asks) {
    size_t next = 0, done = 0;
    gen->run(
        [&]() -> std::optional<generate::Request> {
          if (next == asks.size()) return std::nullopt;
          Ask& a = asks[next++].first;
          return generate::Request{.task = generate::Task::Generate, .tokens = std::move(a.tokens), .max_tokens = a.max_tokens, .stream = nullptr};
        },
        [&](generate::Result&& r) { asks[done++].second(r.completions.at(0)); });
  }
};

RagEvaluator::RagEvaluator(RagOptions opt) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opt = std::move(opt);
  m.prompts = rag_prompts(m.opt.prompts_dir);
  m.judge_path = model::find_gguf(m.opt.judge, "judge model");
  m.file = std::make_shared<gguf::File>(gguf::File::open(m.judge_path));
  m.tok = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_gguf(*m.file, m.judge_path));
  generate::PromptOptions po;
  // a chat model's prompts are user messages; a model without a chat template reads them as text
  po.chat_template_file = m.opt.chat_template_file;
  po.chat = !po.chat_template_file.empty() || m.file->get_string("tokenizer.chat_template").has_value();
  m.raw = !po.chat;
  po.n_ctx = 1u << 30;  // ask() fits prompts to the window itself
  m.prompter = std::make_unique<generate::Prompter>(*m.file, m.judge_path, *m.tok, po);
  generate::Settings s;
  s.n_ctx = m.opt.n_ctx;
  s.threads = m.opt.threads;
  s.parallel = m.opt.parallel;
  s.logprobs = true;
  s.top_logprobs = 20;
  s.sampling.temperature = 0;  // greedy
  m.gen = std::make_unique<generate::Generator>(m.file, *m.tok, s);
  m.answer_word.assign(m.gen->n_vocab(), 0);
  for (size_t id = 0; id < m.answer_word.size(); ++id) {
    std::string t = lower(trim(m.gen->token_bytes(static_cast<int32_t>(id))));
    if (t.empty()) continue;
    if (std::string_view("yes").starts_with(t)) m.answer_word[id] = 1;
    if (std::string_view("no").starts_with(t)) m.answer_word[id] = 2;
  }
  if (m.opt.answer_relevancy) m.enc.emplace(model::Encoder::load(m.opt.embedder, {.threads = m.opt.threads}));
}

RagEvaluator::~RagEvaluator() = default;

const std::string& RagEvaluator::judge_path() const { return impl_->judge_path; }

std::vector<RagJudgment> RagEvaluator::evaluate(const std::vector<RagItem>& items) {
  Impl& m = *impl_;
  const RagOptions& o = m.opt;
  std::vector<RagJudgment> out(items.size());
  using Asks = std::vector<std::pair<Impl::Ask, std::function<void(const generate::Completion&)>>>;
  auto joined = [](const std::vector<std::string>& c) {
    std::string s;
    for (auto& x : c) s += (s.empty() ? "" : "\n\n") + x;
    return s;
  };
  const size_t kVerdictTokens = 4, kListTokens = 256;

  // Builds an item's asks; an item that cannot be judged (a prompt too long for the window even
  // with its context cut) gets its error instead, and none of its asks.
  auto each_item = [&](Asks& asks, size_t i, const std::function<void()>& build) {
    const size_t before = asks.size();
    try {
      build();
    } catch (const Error& e) {
      asks.erase(asks.begin() + static_cast<long>(before), asks.end());
      out[i] = RagJudgment{};
      out[i].error = e.what();
    }
  };
  // A list's lines; when the judge ran out of tokens, without the last one (cut short).
  auto lines_of = [](const std::string& text, bool cut) {
    std::vector<std::string> l = list_lines(text);
    if (cut && !l.empty()) l.pop_back();
    return l;
  };

  // Pass 1: everything that depends only on the record.
  Asks asks;
  for (size_t i = 0; i < items.size(); ++i) each_item(asks, i, [&] {
    const RagItem& it = items[i];
    RagJudgment& j = out[i];
    auto add = [&](Impl::Ask a, std::function<void(const generate::Completion&)> f) {
      j.context_cut |= a.cut;
      asks.emplace_back(std::move(a), std::move(f));
    };
    if (o.faithfulness)
      add(m.ask("statements", {{"question", it.question}, {"answer", it.answer}}, kListTokens),
          [&j](const generate::Completion& c) {
            j.statements_text = c.text;
            j.statements_cut = c.finish_reason == "length";
          });
    if (o.answer_relevancy) {
      add(m.ask("questions", {{"answer", it.answer}, {"n", std::to_string(o.questions)}}, kListTokens),
          [&j](const generate::Completion& c) {
            j.questions_text = c.text;
            j.questions_cut = c.finish_reason == "length";
          });
      add(m.ask("noncommittal", {{"answer", it.answer}, {"question", it.question}}, kVerdictTokens),
          [&j, &m](const generate::Completion& c) { j.noncommittal = m.verdict(c); });
    }
    if (o.context_precision) {
      const std::string& ref = it.reference ? *it.reference : it.answer;
      j.contexts.resize(it.contexts.size());
      for (size_t k = 0; k < it.contexts.size(); ++k)
        add(m.ask("context_precision", {{"question", it.question}, {"context", it.contexts[k]}, {"reference", ref}}, kVerdictTokens),
            [&j, &m, k](const generate::Completion& c) { j.contexts[k] = m.verdict(c); });
    }
    if (o.context_recall && it.reference && !it.contexts.empty()) {
      std::string ctx = joined(it.contexts);
      for (std::string& s : split_sentences(*it.reference)) {
        size_t k = j.sentences.size();
        j.sentences.emplace_back(s, Verdict{});
        add(m.ask("context_recall", {{"question", it.question}, {"context", ctx}, {"sentence", s}}, kVerdictTokens),
            [&j, &m, k](const generate::Completion& c) { j.sentences[k].second = m.verdict(c); });
      }
    }
  });
  m.run(asks);

  // Pass 2: the statements against the contexts (without contexts, none is supported).
  asks.clear();
  for (size_t i = 0; o.faithfulness && i < items.size(); ++i) {
    if (!out[i].error.empty()) continue;
    each_item(asks, i, [&] {
      RagJudgment& j = out[i];
      std::string ctx = joined(items[i].contexts);
      for (std::string& s : lines_of(j.statements_text, j.statements_cut)) {
        if (j.statements.size() == o.max_statements) break;
        size_t k = j.statements.size();
        j.statements.emplace_back(s, Verdict{.text = "(no contexts)"});
        if (items[i].contexts.empty()) continue;
        Impl::Ask a = m.ask("faithfulness", {{"context", ctx}, {"statement", s}, {"question", items[i].question},
                                             {"answer", items[i].answer}}, kVerdictTokens);
        j.context_cut |= a.cut;
        asks.emplace_back(std::move(a), [&j, &m, k](const generate::Completion& c) { j.statements[k].second = m.verdict(c); });
      }
    });
  }
  m.run(asks);

  // Answer relevancy: the question against the generated ones, by embedding.
  if (o.answer_relevancy) {
    std::vector<model::EncoderInput> batch;
    std::vector<std::pair<size_t, size_t>> owner;  // item, question (SIZE_MAX: the item's question)
    for (size_t i = 0; i < items.size(); ++i) {
      if (!out[i].error.empty()) continue;
      std::vector<std::string> qs = lines_of(out[i].questions_text, out[i].questions_cut);
      if (qs.size() > o.questions) qs.resize(o.questions);
      if (qs.empty()) continue;
      batch.push_back(m.enc->encode_text(items[i].question));
      owner.emplace_back(i, SIZE_MAX);
      for (size_t k = 0; k < qs.size(); ++k) {
        batch.push_back(m.enc->encode_text(qs[k]));
        owner.emplace_back(i, k);
        out[i].questions.emplace_back(std::move(qs[k]), 0.0);
      }
    }
    const size_t d = m.enc->dims();
    std::vector<float> v(batch.size() * d);
    if (!batch.empty()) m.enc->embed(batch, m.enc->config().pooling, v.data());
    for (size_t r = 0; r < batch.size(); ++r) model::l2_normalize(v.data() + r * d, d);
    const float* q = nullptr;
    for (size_t r = 0; r < batch.size(); ++r) {
      auto [i, k] = owner[r];
      if (k == SIZE_MAX) {
        q = v.data() + r * d;
        continue;
      }
      double dot = 0;
      for (size_t x = 0; x < d; ++x) dot += double(q[x]) * v[r * d + x];
      out[i].questions[k].second = std::clamp(dot, -1.0, 1.0);
    }
  }

  for (size_t i = 0; i < items.size(); ++i) {
    RagJudgment& j = out[i];
    if (!j.error.empty()) continue;
    if (o.faithfulness && !j.statements.empty()) {
      double yes = 0;
      for (auto& [_, v] : j.statements) yes += v.yes;
      j.faithfulness = yes / j.statements.size();
    }
    if (o.answer_relevancy && !j.questions.empty()) {
      double sum = 0;
      for (auto& [_, sim] : j.questions) sum += sim;
      j.answer_relevancy = j.noncommittal && j.noncommittal->yes ? 0.0 : sum / j.questions.size();
    }
    if (o.context_precision) {  // no contexts: 0, as RAGAS's average precision of nothing
      std::vector<int> v;
      for (auto& c : j.contexts) v.push_back(c.yes);
      j.context_precision = average_precision(v);
    }
    if (o.context_recall && items[i].reference) {
      if (items[i].contexts.empty())
        j.context_recall = 0.0;
      else if (!j.sentences.empty()) {
        double yes = 0;
        for (auto& [_, v] : j.sentences) yes += v.yes;
        j.context_recall = yes / j.sentences.size();
      }
    }
  }
  return out;
}

}  // namespace loom::eval
