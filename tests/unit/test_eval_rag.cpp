// The RAG metrics' parts (lib/eval/rag.h): RAGAS's formulas, the parsing of the judge's lists and
// of records, prompt files; and, with the default models, that judgments are deterministic.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "loom/chat/value.h"
#include "loom/core/error.h"
#include "loom/eval/rag.h"
#include "model_files.h"

using namespace loom;

TEST(EvalRag, AveragePrecisionAsRagas) {
  // RAGAS: sum over k of precision@k * v_k, divided by the number of useful contexts (+ 1e-10)
  EXPECT_NEAR(eval::average_precision({1, 1, 1}), 1.0, 1e-9);
  EXPECT_NEAR(eval::average_precision({0, 1}), 0.5, 1e-9);
  EXPECT_NEAR(eval::average_precision({1, 0, 1}), (1.0 + 2.0 / 3) / 2, 1e-9);
  EXPECT_NEAR(eval::average_precision({0, 0, 1, 1}), (1.0 / 3 + 2.0 / 4) / 2, 1e-9);
  EXPECT_EQ(eval::average_precision({0, 0}), 0.0);
  EXPECT_EQ(eval::average_precision({}), 0.0);
}

TEST(EvalRag, Sentences) {
  EXPECT_EQ(eval::split_sentences("Paris is big. It is old!  Is it? yes\nNew line 3.5 percent."),
            (std::vector<std::string>{"Paris is big.", "It is old!", "Is it?", "yes", "New line 3.5 percent."}));
  EXPECT_TRUE(eval::split_sentences("  \n ").empty());
}

TEST(EvalRag, JudgeLists) {
  EXPECT_EQ(eval::list_lines("Statements:\n1. Paris is the capital.\n2) It is on the Seine.\n\n- A bullet\n* star\nStatement 5: five"),
            (std::vector<std::string>{"Paris is the capital.", "It is on the Seine.", "A bullet", "star", "five"}));
  EXPECT_EQ(eval::list_lines("What is 2. 5?"), (std::vector<std::string>{"What is 2. 5?"}));
  EXPECT_TRUE(eval::list_lines("").empty());
}

TEST(EvalRag, Records) {
  auto rec = chat::Value::parse_json(
      R"({"id":"x","query":"q?","completion":"a.","hits":[{"id":"d1","text":"c1"},{"id":"d2","text":"c2"}],"answers":["r1","r2"]})");
  eval::RagItem it = eval::rag_item(rec, "7");
  EXPECT_EQ(it.id, "x");
  EXPECT_EQ(it.question, "q?");
  EXPECT_EQ(it.answer, "a.");
  EXPECT_EQ(it.contexts, (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(it.reference, "r1");
  it = eval::rag_item(chat::Value::parse_json(R"({"question":"q","answer":"a","contexts":["c"]})"), "7");
  EXPECT_EQ(it.id, "7");
  EXPECT_FALSE(it.reference);
  EXPECT_THROW(eval::rag_item(chat::Value::parse_json(R"({"question":"q"})"), "1"), Error);
  EXPECT_THROW(eval::rag_item(chat::Value::parse_json(R"({"answer":"a"})"), "1"), Error);
  EXPECT_THROW(eval::rag_item(chat::Value::parse_json(R"({"question":"q","answer":"a","contexts":[1]})"), "1"), Error);
  EXPECT_THROW(eval::rag_item(chat::Value::parse_json(R"({"question":"q","answer":"a","hits":[{"id":1}]})"), "1"), Error);
}

TEST(EvalRag, PromptFiles) {
  auto builtin = eval::rag_prompts("");
  ASSERT_EQ(builtin.size(), 6u);
  for (auto& p : builtin) EXPECT_FALSE(p.text.empty()) << p.name;
  auto dir = std::filesystem::temp_directory_path() / "loom_test_eval_rag_prompts";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "faithfulness.txt") << "C: {{ context }}\nS: {{statement}}\nYes or No?\n";
  auto ps = eval::rag_prompts(dir.string());
  const eval::RagPrompt* f = nullptr;
  for (auto& p : ps)
    if (p.name == "faithfulness") f = &p;
  ASSERT_TRUE(f);
  EXPECT_EQ(f->file, (dir / "faithfulness.txt").string());
  EXPECT_EQ(eval::render_prompt(*f, {{"context", "ctx"}, {"statement", "st"}}), "C: ctx\nS: st\nYes or No?");
  std::ofstream(dir / "noncommittal.txt") << "fine\n\nAnswer: {{answer}}\n{{contexts}}\n";
  try {
    eval::rag_prompts(dir.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), (dir / "noncommittal.txt").string());
    EXPECT_EQ(e.line(), 4u);
    EXPECT_NE(std::string(e.what()).find("{{contexts}}"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(EvalRag, DeterministicWithTheDefaultModels) {
  if (!std::filesystem::exists(model_files::gguf("smollm2")) || !std::filesystem::exists(model_files::dir() / "minilm"))
    GTEST_SKIP() << "needs smollm2.gguf and minilm/ in " << model_files::dir() << " (scripts/fetch-models)";
  eval::RagItem it{"q1", "What is the capital of France?", "Paris is the capital of France.", "Paris.",
                   {"Paris is the capital and largest city of France.", "Bananas are yellow."}};
  auto judge = [&] {
    eval::RagOptions o;
    o.threads = 2;
    o.parallel = 2;
    eval::RagEvaluator ev(o);
    return ev.evaluate({it})[0];
  };
  eval::RagJudgment a = judge(), b = judge();
  EXPECT_EQ(a.to_json(), b.to_json());
  ASSERT_EQ(a.contexts.size(), 2u);
  ASSERT_TRUE(a.context_precision && a.faithfulness && a.answer_relevancy && a.context_recall);
  for (double v : {*a.context_precision, *a.faithfulness, *a.answer_relevancy, *a.context_recall}) {
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  for (auto& c : a.contexts) EXPECT_FALSE(c.undecided) << c.text;  // the judge answers yes or no
  EXPECT_EQ(a.sentences.size(), 1u);
  EXPECT_EQ(a.questions.size(), 3u);
}
