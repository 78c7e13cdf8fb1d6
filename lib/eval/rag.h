// RAG metrics as RAGAS defines them, with a local judge model (greedy, so the same inputs give the
// same judgments) and a local embedding model: what `loom eval rag` computes.
//
//   faithfulness       the judge rewrites the answer as standalone statements (one per line);
//                      each is judged against the contexts: supported statements / statements.
//                      No statements: undefined (null). No contexts: nothing is supported (0).
//   answer_relevancy   the judge writes `questions` questions the answer would answer and says
//                      whether the answer is noncommittal; the score is the mean cosine
//                      similarity of the question's embedding with theirs, 0 when noncommittal.
//                      No questions: undefined.
//   context_precision  each retrieved context, in rank order, is judged useful or not for arriving
//                      at the reference answer (the answer when there is none: RAGAS's variant
//                      without reference); the score is the average precision over the useful
//                      ones: sum_k (useful in top k / k) * v_k / (useful + 1e-10). No contexts: 0.
//   context_recall     the reference answer split into sentences; each is judged attributable to
//                      the contexts or not: attributable / sentences. Needs a reference (without
//                      one: undefined); no contexts: 0.
//
// Yes/no judgments are read from the judge's distribution over its first answer token: the
// probabilities of the tokens that spell the start of "yes" and of "no" (any case, any spacing)
// among its 20 most likely are summed, and the larger wins; neither among them: "no", marked
// undecided. Every judgment (statements, questions, verdicts with their probabilities, the judge's
// raw text) is kept so it can be written out and audited.
//
// The prompts are plain-text files with {{name}} placeholders, rendered as one user message with
// the judge's chat template (a model without one reads them as plain text): statements (question, answer), faithfulness (context, statement),
// questions (answer, n), noncommittal (answer), context_precision (question, context, reference),
// context_recall (question, context, sentence). The defaults are built in (lib/eval/prompts/, also
// installed under share/loom/prompts/eval/); a folder of files with those names replaces them.
// A context too long for the judge's window is cut at its end (the judgment says so); an item whose
// prompt is too long even so is not judged (RagJudgment::error). A statements or questions list
// is read up to 256 tokens, statements up to max_statements; a line cut by that limit is dropped.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom::chat {
class Value;
}

namespace loom::eval {

struct RagPrompt {
  std::string name, file, text;  // file: where it came from ("built-in" for the defaults)
};

// The built-in prompts, each replaced by `dir`/<name>.txt where that exists (dir may be empty).
// A placeholder a prompt may not use is an error naming the file and line.
std::vector<RagPrompt> rag_prompts(const std::string& dir);

// {{name}} placeholders of `p` replaced by `vars`' values.
std::string render_prompt(const RagPrompt& p, const std::vector<std::pair<std::string, std::string>>& vars);

// The record fields read: question (or query, text), answer (or completion), contexts (a list of
// strings, or hits: loom-retrieve's [{text, ...}]), reference (or ground_truth; a list: its first).
struct RagItem {
  std::string id, question, answer;
  std::optional<std::string> reference;
  std::vector<std::string> contexts;
};
// loom::Error (BadInput, no location) when the record lacks a question or an answer.
RagItem rag_item(const chat::Value& record, const std::string& default_id);

// Sentences of a text: ends at . ! ? (followed by space or the end) and at line breaks.
std::vector<std::string> split_sentences(const std::string& text);
// The lines of a judge's list (statements, questions): bullets and numbering removed, empty
// lines and a first line that ends in ':' (a heading: "Here are the statements:") dropped.
std::vector<std::string> list_lines(const std::string& text);
// RAGAS's average precision of binary verdicts in rank order.
double average_precision(const std::vector<int>& verdicts);

struct RagOptions {
  std::string judge = "smollm2";   // a chat model (GGUF), path or name under $LOOM_MODELS
  std::string embedder = "minilm"; // for answer relevancy
  std::string prompts_dir;         // replacement prompts
  std::string chat_template_file;  // the judge's chat template (default: its own; none: plain text)
  uint32_t n_ctx = 4096;           // the judge's window per sequence
  uint32_t parallel = 4;           // judge sequences decoded together
  uint32_t questions = 3;          // answer relevancy: questions asked for
  size_t max_statements = 32;      // faithfulness: statements judged at most
  unsigned threads = 1;
  bool faithfulness = true, answer_relevancy = true, context_precision = true, context_recall = true;
};

struct Verdict {
  bool yes = false, undecided = false;
  double p_yes = 0, p_no = 0;
  std::string text;  // what the judge wrote
};

struct RagJudgment {
  std::optional<double> faithfulness, answer_relevancy, context_precision, context_recall;
  std::string statements_text;  // the judge's raw list
  std::vector<std::pair<std::string, Verdict>> statements;
  std::string questions_text;
  std::vector<std::pair<std::string, double>> questions;  // generated question, cosine similarity
  std::optional<Verdict> noncommittal;
  std::vector<Verdict> contexts;                           // context precision, per context
  std::vector<std::pair<std::string, Verdict>> sentences;  // context recall, per reference sentence
  bool context_cut = false;                                // a context was cut to fit the window
  bool statements_cut = false, questions_cut = false;  // the list hit its token limit: its last line dropped
  std::string error;      // not judged: why (a prompt too long for the judge's window)
  // {"statements": [...], ...}: every judgment, for --per-item
  std::string to_json() const;
};

class RagEvaluator {
 public:
  explicit RagEvaluator(RagOptions opt);
  ~RagEvaluator();
  RagEvaluator(const RagEvaluator&) = delete;
  RagEvaluator& operator=(const RagEvaluator&) = delete;

  // Judges a batch of items together (the judge decodes up to `parallel` prompts at once).
  std::vector<RagJudgment> evaluate(const std::vector<RagItem>& items);

  const std::string& judge_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::eval
