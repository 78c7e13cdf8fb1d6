// Chat templates: every golden render of tests/reference/golden/chat/ (made by transformers'
// apply_chat_template / jinja2 with transformers' environment, never by loom) must come out
// byte-identical, and every golden error must be raised with jinja2's message. Plus syntax errors
// with positions, undefined-variable behaviour and the resource limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loom/chat/template.h"
#include "loom/core/error.h"

namespace fs = std::filesystem;
using loom::Error;
using loom::chat::Limits;
using loom::chat::RenderOptions;
using loom::chat::Template;
using loom::chat::Value;

namespace {

const fs::path kGolden = fs::path(LOOM_SOURCE_DIR) / "tests/reference/golden/chat";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<Value> read_jsonl(const fs::path& p) {
  std::vector<Value> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(Value::parse_json(line));
  return out;
}

std::string render(const std::string& src, const Value& vars = Value::dict()) {
  return Template::parse(src, "t").render(vars);
}

// The message of the loom::Error that rendering (or parsing) `src` throws.
std::string error_of(const std::string& src, const Value& vars = Value::dict(), const Limits& lim = {}) {
  try {
    Template::parse(src, "t").render(vars, lim);
  } catch (const Error& e) {
    return e.located();
  }
  return "(no error)";
}

const char* kTemplates[] = {"smollm2", "qwen2.5", "qwen3", "llama3.2", "llama3.3", "gemma3", "mixtral"};

}  // namespace

TEST(ChatTemplateGolden, RealTemplatesRenderExactly) {
  size_t renders = 0, errors = 0, failures = 0;
  for (const char* name : kTemplates) {
    const fs::path tpath = kGolden / "templates" / (std::string(name) + ".jinja");
    ASSERT_TRUE(fs::exists(tpath)) << tpath;
    Template tpl = Template::parse(read_file(tpath), name);
    auto cases = read_jsonl(kGolden / (std::string(name) + ".jsonl"));
    ASSERT_GE(cases.size(), 30u) << name;
    for (const Value& c : cases) {
      const std::string label = std::string(name) + "/" + c.get("case")->str();
      RenderOptions opt;
      opt.add_generation_prompt = c.get("add_generation_prompt")->as_bool();
      opt.extra = *c.get("vars");  // bos_token, eos_token, ... and extra variables
      const Value* expected = c.get("expected");
      try {
        std::string got = loom::chat::apply(tpl, *c.get("messages"), opt);
        if (!expected) {
          ++failures;
          ADD_FAILURE() << label << ": expected error \"" << c.get("error")->str() << "\", rendered:\n" << got;
          continue;
        }
        ASSERT_FALSE(expected->str().empty()) << label;  // no vacuous goldens
        if (got != expected->str()) {
          ++failures;
          ADD_FAILURE() << label << ":\n--- expected\n" << expected->str() << "\n--- got\n" << got;
        }
        ++renders;
      } catch (const Error& e) {
        if (expected) {
          ++failures;
          ADD_FAILURE() << label << ": unexpected error " << e.located();
          continue;
        }
        EXPECT_EQ(std::string(e.what()), c.get("error")->str()) << label;
        ++errors;
      }
    }
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_GE(renders, 200u);
  EXPECT_GE(errors, 20u);
  std::printf("chat goldens: %zu renders identical, %zu errors matched\n", renders, errors);
}

TEST(ChatTemplateGolden, LanguageSnippets) {
  auto cases = read_jsonl(kGolden / "snippets.jsonl");
  ASSERT_GE(cases.size(), 40u);
  size_t n = 0;
  for (const Value& c : cases) {
    const std::string& src = c.get("template")->str();
    const Value* expected = c.get("expected");
    try {
      std::string got = render(src, *c.get("vars"));
      if (expected) {
        EXPECT_EQ(got, expected->str()) << "template: " << src;
      } else {
        ADD_FAILURE() << "template: " << src << "\nexpected error: " << c.get("error")->str() << "\ngot: " << got;
      }
    } catch (const Error& e) {
      if (expected) {
        ADD_FAILURE() << "template: " << src << "\nunexpected error: " << e.located();
      } else {
        EXPECT_EQ(std::string(e.what()), c.get("error")->str()) << "template: " << src;
      }
    }
    ++n;
  }
  EXPECT_EQ(n, cases.size());
}

TEST(ChatTemplate, ApplyMatchesTransformersPreprocessing) {
  Template tpl = Template::parse(
      "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ bos_token }}|{{ add_generation_prompt }}|{{ tools }}",
      "t");
  RenderOptions opt;
  opt.bos_token = "<s>";
  Value msgs = Value::parse_json(R"([{"role":"user","content":"x","name":null},
                                     {"role":"assistant","content":"y","reasoning":"r"}])");
  EXPECT_EQ(loom::chat::apply(tpl, msgs, opt),
            "{\"role\": \"user\", \"content\": \"x\"}\n"
            "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"y\", \"reasoning\": \"r\", "
            "\"reasoning_content\": \"r\"}\n<s>|False|None");
  EXPECT_THROW(loom::chat::apply(tpl, Value::list(), opt), Error);
  EXPECT_THROW(loom::chat::apply(tpl, Value::parse_json("[1]"), opt), Error);
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndColumn) {
  auto parse_error = [](const std::string& src) -> std::string {
    try {
      Template::parse(src, "tpl");
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::BadInput);
      return e.located();
    }
    return "(parsed)";
  };
  EXPECT_EQ(parse_error("a\n  {{ x | nosuchfilter }}"), "tpl:2: column 10: no filter named 'nosuchfilter'");
  EXPECT_EQ(parse_error("{% if x is nosuchtest %}{% endif %}"), "tpl:1: column 12: no test named 'nosuchtest'");
  EXPECT_EQ(parse_error("{% if x %}\nunclosed"), "tpl:2: column 9: unexpected end of template: expected 'elif' or 'else' or 'endif'");
  EXPECT_EQ(parse_error("{{ 'abc }}"), "tpl:1: column 4: unterminated string literal");
  EXPECT_EQ(parse_error("{{ (1 + 2 }}"), "tpl:1: column 11: unexpected '}', expected ')'");
  EXPECT_EQ(parse_error("{% frobnicate %}"), "tpl:1: column 4: unknown or unsupported statement 'frobnicate'");
  EXPECT_EQ(parse_error("{{ 1 +  }}"), "tpl:1: column 9: unexpected '}}'");
  EXPECT_EQ(parse_error("x {{ y"), "tpl:1: column 3: unexpected end of template: missing '}}'");
  EXPECT_EQ(parse_error("{# never closed"), "tpl:1: column 1: missing end of comment tag");
  EXPECT_EQ(parse_error("{% for x in y %}{% endif %}"), "tpl:1: column 20: unknown or unsupported statement 'endif'");
  EXPECT_EQ(parse_error("{% include 'x' %}"), "tpl:1: column 4: unknown or unsupported statement 'include'");
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  EXPECT_EQ(error_of("ok\n{% if true %}\n{{ raise_exception('bad roles') }}{% endif %}"), "t:3: bad roles");
  EXPECT_EQ(error_of("\n{{ nope.field }}"), "t:2: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ nope() }}"), "t:1: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ 1 / 0 }}"), "t:1: division by zero");
  EXPECT_EQ(error_of("{% break %}"), "t: 'break' outside of a loop");
}

// jinja2's default Undefined, which transformers uses: an unknown variable prints as nothing and
// is false; using it in arithmetic, attribute access or a call is an error naming it.
TEST(ChatTemplate, UndefinedVariablesFollowJinja2) {
  EXPECT_EQ(render("[{{ nope }}]{% if nope %}x{% endif %}{% for a in nope %}y{% endfor %}{{ nope | length }}"), "[]0");
  EXPECT_EQ(render("{{ nope is defined }} {{ nope is undefined }} {{ nope | default('d') }}"), "False True d");
  EXPECT_EQ(render("{{ d.missing is defined }}", Value::parse_json(R"({"d":{}})")), "False");
  EXPECT_EQ(error_of("{{ nope + 1 }}"), "t:1: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ d.missing + 'x' }}", Value::parse_json(R"({"d":{}})")),
            "t:1: 'dict object' has no attribute 'missing'");
}

TEST(ChatTemplate, WhitespaceControl) {
  // trim_blocks + lstrip_blocks as transformers configures them
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(render("a {{- ' b ' -}} c"), "a b c");
  EXPECT_EQ(render("a\n{#- note -#}\nb"), "ab");
  EXPECT_EQ(render("{{ 'x' }}\n"), "x");     // one trailing newline dropped (keep_trailing_newline off)
  EXPECT_EQ(render("{{ 'x' }}\n\n"), "x\n");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(ChatTemplate, EnableThinkingAndStrftime) {
  Template q3 = Template::parse(read_file(kGolden / "templates/qwen3.jinja"), "qwen3");
  Value msgs = Value::parse_json(R"([{"role":"user","content":"hi"}])");
  RenderOptions opt;
  opt.add_generation_prompt = true;
  EXPECT_EQ(loom::chat::apply(q3, msgs, opt), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  opt.extra = Value::dict();
  opt.extra.set("enable_thinking", false);
  EXPECT_EQ(loom::chat::apply(q3, msgs, opt),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Llama 3.2 dates the system prompt with strftime_now("%d %b %Y") when no date_string is given
  Template l32 = Template::parse(read_file(kGolden / "templates/llama3.2.jinja"), "llama3.2");
  std::string out = loom::chat::apply(l32, msgs, {});
  EXPECT_NE(out.find("Today Date: " + loom::chat::strftime_now("%d %b %Y") + "\n"), std::string::npos) << out;
}

TEST(ChatTemplate, LimitsStopRunawayTemplates) {
  Limits lim;
  lim.max_output_bytes = 1000;
  lim.max_steps = 10000;
  EXPECT_NE(error_of("{{ 'x' * 100000 }}", Value::dict(), lim).find("exceeded"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(100000) %}{{ i }}{% endfor %}", Value::dict(), lim).find("limit"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("nested too deeply"),
            std::string::npos);
  std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_NE(error_of("{{ " + deep + " }}").find("nested too deeply"), std::string::npos);
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  EXPECT_NE(error_of(nested).find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplate, ValueJson) {
  Value v = Value::parse_json(R"({"a":[1,2.5,"x\u00e9",true,null],"b":{"c":-3}})");
  ASSERT_TRUE(v.is_dict());
  EXPECT_EQ(v.get("a")->size(), 5u);
  EXPECT_EQ(v.get("a")->items()[2].str(), "x\xc3\xa9");
  EXPECT_EQ(v.get("b")->get("c")->as_int(), -3);
  EXPECT_THROW(Value::parse_json("{\"a\":}"), Error);
  EXPECT_THROW(Value::parse_json("[1,]"), Error);
  EXPECT_THROW(Value::parse_json(std::string(10000, '[')), Error);
}
