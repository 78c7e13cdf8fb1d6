#include "loom/generate/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>

#include "loom/core/error.h"
#include "loom/core/parallel.h"
#include "loom/gguf/gguf.h"
#include "loom/model/decoder.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::generate {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// GPT-2's byte-level alphabet backwards: the code point a byte is written as -> the byte.
std::vector<int> gpt2_bytes_of_code_points() {
  std::vector<int> byte_of(512, -1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_of[static_cast<size_t>(printable ? b : 256 + extra++)] = b;
  }
  return byte_of;
}

// Decodes one UTF-8 code point at s[i] (advancing i); -1 for a malformed byte.
int next_code_point(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i++]);
  int n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
  if (n < 0) return -1;
  int cp = n == 0 ? c : c & (0x3F >> n);
  for (int k = 0; k < n; ++k) {
    if (i >= s.size()) return -1;
    cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3F);
  }
  return cp;
}


}  // namespace

// One sequence of the decoder: a sample, a beam, or the text being scored.
struct Generator::Seq {
  uint32_t slot = 0;
  std::vector<int32_t> tokens;  // prompt + generated: the first n_past are in the cache
  size_t n_past = 0;
  std::optional<model::Sampler> sampler;
  std::vector<int32_t> out;  // generated tokens
  std::string text;          // out as text (cut before a stop string)
  size_t streamed = 0;       // bytes of text given to the stream
  double score = 0;          // beams: sum of the log-probabilities of `out` ...
  size_t rank = 0;           // ... and its rank among the last step's candidates
  std::vector<TokenLogprob> logprobs;
  const char* finish = nullptr;  // why it ended (null while running)
  bool cut = false;              // text ends before a stop string
};

// A request in flight.
struct Generator::Job {
  Request req;
  uint32_t group = 0;
  bool group_free = false;
  size_t max_tokens = 0;
  std::vector<Seq> seqs;  // Generate: samples or running beams; reading the prompt: seqs[0]
  bool reading = true;    // the prompt (Score: the text) is still going into the cache
  size_t take = 0;        // tokens of it in the current batch ...
  size_t from = 0;        // ... from this position
  size_t window = 0;      // Score: start of the current window in req.tokens
  struct Hyp {
    std::vector<int32_t> out;
    std::string text;
    double score;  // sum of log-probabilities / length
    const char* reason;
  };
  std::vector<Hyp> hyps;  // beams: finished hypotheses, the best `beams`
  bool finished = false;
  Result result;
  Clock::time_point t_start, t_first;
};

Generator::Generator(std::shared_ptr<const gguf::File> file, const tok::Tokenizer& tokenizer, Settings settings)
    : file_(std::move(file)), tok_(tokenizer), s_(std::move(settings)) {
  if (s_.parallel == 0 || s_.samples == 0 || s_.beams == 0) throw usage_error("--parallel, --n and --beams must be at least 1");
  if (s_.beams > 1 && s_.samples > 1) throw usage_error("--beams and --n cannot be combined");
  width_ = std::max(s_.samples, s_.beams);
  model_ = std::make_unique<model::Decoder>(
      file_, model::DecoderOptions{.n_ctx = s_.n_ctx,
                            .threads = std::max(1u, s_.threads),
                            .n_seq = s_.parallel * width_,
                            .loras = s_.loras,
                            .lora_scales = s_.lora_scales});
  const size_t V = n_vocab();
  // end of generation: the EOS id, and the end-of-turn tokens llama.cpp also stops at
  is_eog_.assign(V, 0);
  auto add_eog = [&](int64_t id) {
    if (id >= 0 && static_cast<size_t>(id) < V && !is_eog_[static_cast<size_t>(id)]) {
      is_eog_[static_cast<size_t>(id)] = 1;
      eog_.push_back(static_cast<int32_t>(id));
    }
  };
  if (auto e = file_->get_int("tokenizer.ggml.eos_token_id")) add_eog(*e);
  if (auto e = file_->get_int("tokenizer.ggml.eot_token_id")) add_eog(*e);
  if (const gguf::Value* toks = file_->find("tokenizer.ggml.tokens"))
    for (size_t i = 0; i < toks->size() && i < V; ++i) {
      const std::string_view t = toks->str(i);
      if (t == "<|im_end|>" || t == "<end_of_turn>" || t == "<|eot_id|>" || t == "<|end_of_text|>" || t == "<|endoftext|>")
        add_eog(static_cast<int64_t>(i));
    }
  byte_level_ = file_->get_string("tokenizer.ggml.model").value_or("") == "gpt2";
  for (const std::string& s : s_.stop) max_stop_ = std::max(max_stop_, s.size());
  row_cap_ = std::max<size_t>(2, (size_t(64) << 20) / sizeof(float) / V);
  work_.resize(V);
}

Generator::~Generator() = default;

size_t Generator::n_vocab() const { return model_->config().n_vocab; }

std::string Generator::token_bytes(int32_t id) const {
  const std::string_view piece = tok_.piece(id);
  int64_t type = 1;
  if (const gguf::Value* types = file_->find("tokenizer.ggml.token_type"); types && static_cast<size_t>(id) < types->size())
    type = types->at(static_cast<size_t>(id)).as_int().value_or(1);
  if (type == 3 || type == 4) return std::string(piece);  // control and user-defined tokens: as written
  std::string out;
  if (byte_level_) {
    static const std::vector<int> byte_of = gpt2_bytes_of_code_points();
    for (size_t i = 0; i < piece.size();) {
      const size_t at = i;
      int cp = next_code_point(piece, i);
      if (cp >= 0 && static_cast<size_t>(cp) < byte_of.size() && byte_of[static_cast<size_t>(cp)] >= 0)
        out += static_cast<char>(byte_of[static_cast<size_t>(cp)]);
      else
        out.append(piece.substr(at, i - at));
    }
    return out;
  }
  // SentencePiece: <0xNN> is a byte, U+2581 a space
  if (type == 6 && piece.size() == 6 && piece.substr(0, 3) == "<0x")
    return std::string(1, static_cast<char>(std::stoi(std::string(piece.substr(3, 2)), nullptr, 16)));
  for (size_t i = 0; i < piece.size(); ++i) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += piece[i];
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// The scheduler

void Generator::run(const std::function<std::optional<Request>()>& next, const std::function<void(Result&&)>& done,
                    const std::atomic<bool>* stop) {
  std::deque<std::unique_ptr<Job>> jobs;  // request order; finished ones wait for those before them
  std::vector<uint32_t> free_groups;
  for (uint32_t g = s_.parallel; g-- > 0;) free_groups.push_back(g);
  bool more = true;
  for (;;) {
    const bool interrupted = stop && stop->load();
    while (more && !interrupted && !free_groups.empty() && jobs.size() < size_t{4} * s_.parallel) {
      std::optional<Request> r = next();
      if (!r) {
        more = false;
        break;
      }
      jobs.push_back(start(std::move(*r), free_groups.back()));
      free_groups.pop_back();
    }
    std::vector<Job*> running;
    for (auto& j : jobs)
      if (!j->finished) running.push_back(j.get());
    if (interrupted)
      for (Job* j : running) interrupt(*j);
    else if (!running.empty())
      step(running);
    for (auto& j : jobs)
      if (j->finished && !j->group_free) {
        free_groups.push_back(j->group);
        j->group_free = true;
      }
    while (!jobs.empty() && jobs.front()->finished) {
      done(std::move(jobs.front()->result));
      jobs.pop_front();
    }
    if (jobs.empty() && (!more || interrupted)) return;
  }
}

std::unique_ptr<Generator::Job> Generator::start(Request r, uint32_t group) const {
  auto j = std::make_unique<Job>();
  j->req = std::move(r);
  j->group = group;
  j->max_tokens = j->req.max_tokens ? j->req.max_tokens : s_.max_tokens;
  j->t_start = Clock::now();
  Seq s;
  s.slot = group * width_;
  if (j->req.task == Task::Generate) {
    if (j->req.tokens.empty() || j->req.tokens.size() >= s_.n_ctx)
      throw input_error(fmt::format("a prompt of {} tokens does not fit the context of {}", j->req.tokens.size(), s_.n_ctx));
    s.tokens = j->req.tokens;
    j->result.prompt_tokens = s.tokens.size();
  } else if (j->req.tokens.size() < 2) {
    j->reading = false;
    j->finished = true;  // nothing to score
  }
  j->seqs.push_back(std::move(s));
  return j;
}

// One forward pass: a token for every decoding sequence, then prompt chunks.
void Generator::step(const std::vector<Job*>& running) {
  std::vector<model::BatchToken> batch;
  struct Row {
    Job* job;
    size_t seq;
  };
  std::vector<Row> rows;  // the owner of each row of logits
  for (Job* j : running)
    if (!j->reading)
      for (size_t i = 0; i < j->seqs.size(); ++i) {
        Seq& s = j->seqs[i];
        if (s.finish) continue;
        batch.push_back({.token = s.tokens.back(), .pos = static_cast<uint32_t>(s.n_past), .seq = s.slot, .logits = true});
        rows.push_back({j, i});
      }
  // Prompts are read in chunks of n_batch tokens from their start (the last one what remains), as
  // llama.cpp reads a prompt: a chunk's size never depends on what else is in the batch. Those
  // that fit what is left of n_batch go into this pass (the first always does).
  size_t budget = s_.n_batch - std::min<size_t>(batch.size(), s_.n_batch / 2);
  bool any = false;
  for (Job* j : running) {
    j->take = 0;
    if (!j->reading) continue;
    Seq& s = j->seqs[0];
    const bool score = j->req.task == Task::Score;
    const size_t end = score ? std::min<size_t>(s_.n_ctx, j->req.tokens.size() - j->window) : s.tokens.size();
    const size_t take = std::min(end - s.n_past, score ? std::min<size_t>(s_.n_batch, row_cap_) : size_t{s_.n_batch});
    if (any && take > budget) continue;
    any = true;
    j->take = take;
    for (size_t k = s.n_past; k < s.n_past + j->take; ++k) {
      const bool logits = score ? k + 1 < end : k + 1 == end;
      batch.push_back(
          {.token = score ? j->req.tokens[j->window + k] : s.tokens[k], .pos = static_cast<uint32_t>(k), .seq = s.slot, .logits = logits});
      if (logits) rows.push_back({j, 0});
    }
    budget -= std::min(budget, j->take);
  }
  const std::vector<float> logits = model_->decode(batch);
  const size_t V = n_vocab();
  for (Job* j : running) {
    j->from = j->seqs[0].n_past;
    if (j->reading) j->seqs[0].n_past += j->take;
  }
  // hand each job its rows (contiguous)
  for (size_t r = 0, n = 0; r < rows.size(); r += n) {
    Job& j = *rows[r].job;
    n = 0;
    while (r + n < rows.size() && rows[r + n].job == &j) ++n;
    const float* first = logits.data() + r * V;
    if (j.reading && j.req.task == Task::Score) {
      score_rows(j, j.from, first, n);
    } else if (j.reading) {
      prompt_read(j, first);  // the prompt's last token
    } else if (s_.beams > 1) {
      std::vector<const float*> beam_rows;
      for (size_t k = 0; k < n; ++k) beam_rows.push_back(first + k * V);
      for (Seq& s : j.seqs) ++s.n_past;
      beam_step(j, beam_rows);
    } else {
      for (size_t k = 0; k < n; ++k) {
        Seq& s = j.seqs[rows[r + k].seq];
        ++s.n_past;
        choose(j, s, first + k * V);
      }
    }
  }
  // Score: a finished window; the next starts at position 0, if 2 or more tokens are left
  for (Job* j : running) {
    if (!j->reading || j->req.task != Task::Score) continue;
    Seq& s = j->seqs[0];
    if (s.n_past < std::min<size_t>(s_.n_ctx, j->req.tokens.size() - j->window)) continue;
    j->window += s.n_past;
    s.n_past = 0;
    if (j->req.tokens.size() - j->window < 2) end_job(*j);
  }
}

// ------------------------------------------------------------------------------------------------
// Per job

void Generator::score_rows(Job& j, size_t pos, const float* logits, size_t n) {
  const size_t V = n_vocab();
  std::vector<double> lp(n);
  parallel_for(n, s_.threads, [&](size_t k) {
    const float* row = logits + k * V;
    lp[k] = row[j.req.tokens[j.window + pos + k + 1]] - model::log_sum_exp({row, V});
  });
  for (double x : lp) j.result.score_sum += x;  // in token order, however the text was chunked
  j.result.score_tokens += n;
}

// The prompt is in the cache (seqs[0]) and `logits` are its last token's: fork the samples or
// start the beams.
void Generator::prompt_read(Job& j, const float* logits) {
  j.reading = false;
  j.t_first = Clock::now();
  if (s_.beams > 1) {
    beam_step(j, {logits});
  } else {
    for (uint32_t i = 1; i < s_.samples; ++i) {
      Seq c;
      c.slot = j.seqs[0].slot + i;
      c.tokens = j.seqs[0].tokens;
      c.n_past = j.seqs[0].n_past;
      model_->copy_sequence(j.seqs[0].slot, c.slot, static_cast<uint32_t>(c.n_past));
      j.seqs.push_back(std::move(c));
    }
    for (uint32_t i = 0; i < s_.samples; ++i) {
      model::SamplerOptions so = s_.sampling;
      so.seed = j.req.seed + i;
      j.seqs[i].sampler.emplace(so);
    }
    for (Seq& s : j.seqs) choose(j, s, logits);
  }
}

void Generator::choose(Job& j, Seq& s, const float* logits) {
  const size_t V = n_vocab();
  std::copy(logits, logits + V, work_.begin());
  if (s_.ignore_eos)
    for (int32_t e : eog_) work_[static_cast<size_t>(e)] = -std::numeric_limits<float>::infinity();
  const int32_t t = s.sampler->sample(work_, s.tokens);
  if (is_eog_[static_cast<size_t>(t)]) return end_seq(j, s, "stop");
  if (s_.logprobs) {
    std::span<const float> row(logits, V);
    const double lse = model::log_sum_exp(row);
    TokenLogprob lp{.id = t, .logprob = row[static_cast<size_t>(t)] - lse, .top = {}};
    for (int32_t id : model::top_ids(row, s_.top_logprobs)) lp.top.emplace_back(id, row[static_cast<size_t>(id)] - lse);
    s.logprobs.push_back(std::move(lp));
  }
  s.tokens.push_back(t);
  s.out.push_back(t);
  if (update_text(j, s))
    end_seq(j, s, "stop");
  else if (s.out.size() >= j.max_tokens || s.tokens.size() >= s_.n_ctx)
    end_seq(j, s, "length");
}

namespace {
// Cuts `text` before the first stop string found at or after `from`; true when one was.
bool cut_at_stop(std::string& text, const std::vector<std::string>& stops, size_t from) {
  size_t cut = std::string::npos;
  for (const std::string& stop : stops)
    if (!stop.empty()) cut = std::min(cut, text.find(stop, from));
  if (cut == std::string::npos) return false;
  text.resize(cut);
  return true;
}
}  // namespace

// A text that ends in the middle of a character (its other bytes would have come with tokens
// never generated) shows it as U+FFFD: that is dropped, never written.
void Generator::drop_unfinished(const std::vector<int32_t>& out, std::string& text) const {
  std::string tail;  // the bytes of the last tokens: a character has 4 at most
  for (size_t i = out.size() > 4 ? out.size() - 4 : 0; i < out.size(); ++i) tail += token_bytes(out[i]);
  size_t k = 0;  // continuation bytes at the end
  while (k < 3 && k < tail.size() && (static_cast<unsigned char>(tail[tail.size() - 1 - k]) & 0xC0) == 0x80) ++k;
  if (k == tail.size()) return;
  const auto lead = static_cast<unsigned char>(tail[tail.size() - 1 - k]);
  const size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  if (need > k && text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) text.resize(text.size() - 3);
}

// Decodes the sequence's text after a new token; streams what is final. True at a stop string.
bool Generator::update_text(Job& j, Seq& s) {
  std::string text = tok_.decode(s.out, true);
  // earlier text is settled, except a few bytes of an unfinished character
  const size_t from = s.text.size() > max_stop_ + 16 ? s.text.size() - max_stop_ - 16 : 0;
  const bool stopped = cut_at_stop(text, s_.stop, from);
  s.text = std::move(text);
  s.cut = stopped;
  if (j.req.stream && width_ == 1 && !stopped) {
    // final: not an unfinished character (U+FFFD so far), not a possible start of a stop string
    size_t safe = s.text.size();
    while (safe >= s.streamed + 3 && s.text.compare(safe - 3, 3, "\xEF\xBF\xBD") == 0) safe -= 3;
    for (const std::string& stop : s_.stop)
      for (size_t k = std::min(stop.size() - 1, safe); k > 0; --k)
        if (s.text.compare(safe - k, k, stop, 0, k) == 0) {
          safe -= k;
          break;
        }
    if (safe > s.streamed) {
      j.req.stream(std::string_view(s.text).substr(s.streamed, safe - s.streamed));
      s.streamed = safe;
    }
  }
  return stopped;
}

void Generator::end_seq(Job& j, Seq& s, const char* reason) {
  s.finish = reason;
  if (!s.cut) drop_unfinished(s.out, s.text);
  if (j.req.stream && width_ == 1 && s.text.size() > s.streamed) {
    j.req.stream(std::string_view(s.text).substr(s.streamed));
    s.streamed = s.text.size();
  }
  for (const Seq& o : j.seqs)
    if (!o.finish) return;
  for (Seq& o : j.seqs)
    j.result.completions.push_back({.text = std::move(o.text),
                                    .finish_reason = o.finish,
                                    .tokens = o.out.size(),
                                    .ids = std::move(o.out),
                                    .logprobs = std::move(o.logprobs)});
  end_job(j);
}

// Beam search, one step (transformers' _beam_search): `rows` are the logits of the running beams
// (j.seqs).
void Generator::beam_step(Job& j, const std::vector<const float*>& rows) {
  const size_t V = n_vocab(), B = s_.beams;
  const size_t K = std::max<size_t>(2, 1 + (s_.ignore_eos ? 0 : eog_.size())) * B;  // candidates kept
  struct Cand {
    double score;  // the beam's sum of log-probabilities with this token
    size_t beam;
    int32_t token;
    size_t rank = 0;
  };
  std::vector<Cand> cands;
  for (size_t b = 0; b < rows.size(); ++b) {
    std::span<const float> row(rows[b], V);
    const double lse = model::log_sum_exp(row);
    for (int32_t id : model::top_ids(row, K + (s_.ignore_eos ? eog_.size() : 0))) {
      if (s_.ignore_eos && is_eog_[static_cast<size_t>(id)]) continue;
      cands.push_back({j.seqs[b].score + row[static_cast<size_t>(id)] - lse, b, id});
    }
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.score > b.score; });
  if (cands.size() > K) cands.resize(K);
  const size_t len = j.seqs[0].out.size() + 1;  // generated tokens, the new one included
  auto add_hyp = [&](Job::Hyp h) {
    j.hyps.push_back(std::move(h));
    std::stable_sort(j.hyps.begin(), j.hyps.end(), [](const Job::Hyp& a, const Job::Hyp& b) { return a.score > b.score; });
    if (j.hyps.size() > B) j.hyps.pop_back();
  };
  // the best B candidates that do not end go on; those that end (an end token, a stop string)
  // among the best B overall are finished hypotheses
  std::vector<Cand> next;
  for (size_t rank = 0; rank < cands.size() && next.size() < B; ++rank) {
    Cand& c = cands[rank];
    c.rank = rank;
    std::vector<int32_t> out = j.seqs[c.beam].out;
    bool ended = is_eog_[static_cast<size_t>(c.token)];
    std::string text;
    if (!ended) {
      out.push_back(c.token);
      if (!s_.stop.empty()) {
        text = tok_.decode(out, true);
        ended = cut_at_stop(text, s_.stop, 0);
      }
      if (!ended) {
        next.push_back(c);
        continue;
      }
    } else {
      text = tok_.decode(out, true);
      drop_unfinished(out, text);
    }
    if (rank < B) add_hyp({std::move(out), std::move(text), c.score / static_cast<double>(len), "stop"});
  }
  // done when no running beam can beat the B best finished ones (early_stopping=False)
  if (next.empty() || (j.hyps.size() >= B && j.hyps.back().score >= next[0].score / static_cast<double>(len))) return end_beams(j, nullptr);
  // the new beams: a parent's first child keeps its cache; other children get a copy of it in a
  // slot no parent of a new beam holds
  std::vector<char> has_child(j.seqs.size(), 0), kept(j.seqs.size(), 0);
  for (const Cand& c : next) has_child[c.beam] = 1;
  std::vector<uint32_t> spare;
  for (uint32_t slot = j.group * width_; slot < (j.group + 1) * width_; ++slot) {
    bool busy = false;
    for (size_t b = 0; b < j.seqs.size(); ++b) busy |= has_child[b] && j.seqs[b].slot == slot;
    if (!busy) spare.push_back(slot);
  }
  std::vector<Seq> beams;
  for (const Cand& c : next) {
    const Seq& p = j.seqs[c.beam];
    Seq s;
    if (!kept[c.beam]) {
      kept[c.beam] = 1;
      s.slot = p.slot;
    } else {
      s.slot = spare.back();
      spare.pop_back();
      model_->copy_sequence(p.slot, s.slot, static_cast<uint32_t>(p.n_past));
    }
    s.tokens = p.tokens;
    s.tokens.push_back(c.token);
    s.n_past = p.n_past;
    s.out = p.out;
    s.out.push_back(c.token);
    s.score = c.score;
    s.rank = c.rank;
    beams.push_back(std::move(s));
  }
  j.seqs = std::move(beams);
  if (len >= j.max_tokens || j.seqs[0].tokens.size() >= s_.n_ctx) end_beams(j, "length");
}

// Ends a beam search: the running beams join the finished hypotheses when it was cut short
// (`reason`); the best hypothesis is the completion.
void Generator::end_beams(Job& j, const char* reason) {
  if (reason)
    for (Seq& s : j.seqs) {
      if (s.rank >= s_.beams && std::string_view(reason) == "length") continue;  // only the best B candidates count
      const double len = static_cast<double>(std::max<size_t>(1, s.out.size()));
      std::string text = tok_.decode(s.out, true);
      drop_unfinished(s.out, text);
      j.hyps.push_back({s.out, std::move(text), s.score / len, reason});
    }
  Completion c{.text = "", .finish_reason = reason ? reason : "stop", .tokens = 0, .ids = {}, .logprobs = {}};
  if (!j.hyps.empty()) {
    auto best = std::max_element(j.hyps.begin(), j.hyps.end(), [](const Job::Hyp& a, const Job::Hyp& b) { return a.score < b.score; });
    c.text = best->text;
    c.tokens = best->out.size();
    c.ids = best->out;
    if (!reason || std::string_view(reason) != "interrupted") c.finish_reason = best->reason;
  }
  if (j.req.stream) j.req.stream(c.text);
  j.result.completions.push_back(std::move(c));
  j.seqs.clear();
  end_job(j);
}

void Generator::end_job(Job& j) {
  Result& r = j.result;
  if (j.req.task == Task::Generate && j.t_first != Clock::time_point{}) {
    const auto now = Clock::now();
    const double prompt_s = seconds(j.t_start, j.t_first), decode_s = seconds(j.t_first, now);
    size_t generated = 0;
    for (const Completion& c : r.completions) generated += c.tokens;
    const size_t first = std::min(generated, r.completions.size());  // the first token of each is in the prompt's time
    r.ttft_ms = prompt_s * 1e3;
    r.prompt_tokens_per_s = prompt_s > 0 ? static_cast<double>(r.prompt_tokens) / prompt_s : 0;
    r.decode_tokens_per_s = generated > first && decode_s > 0 ? static_cast<double>(generated - first) / decode_s : 0;
  }
  j.finished = true;
}

void Generator::interrupt(Job& j) {
  j.result.interrupted = true;
  if (j.req.task == Task::Score) return end_job(j);
  if (j.reading) {
    j.result.completions.assign(s_.beams > 1 ? 1 : s_.samples,
                                Completion{.text = "", .finish_reason = "interrupted", .tokens = 0, .ids = {}, .logprobs = {}});
    return end_job(j);
  }
  if (s_.beams > 1) return end_beams(j, "interrupted");
  for (Seq& s : j.seqs)
    if (!s.finish) end_seq(j, s, "interrupted");
}

}  // namespace loom::generate
