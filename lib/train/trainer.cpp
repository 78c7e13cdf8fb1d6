#include "loom/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"

namespace loom::train {

using model::Module;

std::vector<Module> parse_targets(const std::string& spec) {
  if (spec == "all") return {std::begin(model::kModules), std::end(model::kModules)};
  std::vector<Module> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string word = spec.substr(start, comma - start);
    bool found = false;
    for (Module m : model::kModules)
      if (word == model::module_name(m)) {
        if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
        found = true;
      }
    if (!found)
      throw usage_error(fmt::format("--lora-targets: '{}' is not a module (q, k, v, o, gate, up, down, or all)", word));
    start = comma + 1;
  }
  return out;
}

namespace {

double log_sigmoid(double z) { return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); }
double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

DpoStats dpo_step(Network& net, const std::vector<const Preference*>& pairs, const std::vector<std::pair<double, double>>& ref,
                  double beta, size_t n_total, Gradients& g, uint64_t key) {
  DpoStats st;
  const double n = static_cast<double>(std::max<size_t>(1, n_total));
  std::vector<const Sequence*> ptrs;
  for (const Preference* p : pairs) {
    ptrs.push_back(&p->chosen.seq);
    ptrs.push_back(&p->rejected.seq);
  }
  // the policy's log-likelihoods first (the same dropout masks as the pass with gradients), then
  // the gradient: d loss / d logp(chosen) = -beta sigmoid(-z) / n, the opposite for rejected,
  // which the network's loss -sum w log p gives with w = +-beta sigmoid(-z) / n on the answers
  const auto pol = net.run(ptrs, nullptr, key);
  std::vector<Sequence> weighted;
  for (size_t j = 0; j < pairs.size(); ++j) {
    const double z = beta * ((pol.logp[2 * j] - ref[j].first) - (pol.logp[2 * j + 1] - ref[j].second));
    st.loss -= log_sigmoid(z) / n;
    st.margin += z / n;
    st.accuracy += z > 0 ? 1.0 / n : 0.0;
    st.rewards.emplace_back(beta * (pol.logp[2 * j] - ref[j].first), beta * (pol.logp[2 * j + 1] - ref[j].second));
    const float coef = static_cast<float>(beta * sigmoid(-z) / n);
    Sequence c = pairs[j]->chosen.seq, r = pairs[j]->rejected.seq;
    for (float& w : c.weight) w *= coef;
    for (float& w : r.weight) w *= -coef;
    weighted.push_back(std::move(c));
    weighted.push_back(std::move(r));
  }
  std::vector<const Sequence*> wp;
  for (const auto& s : weighted) wp.push_back(&s);
  net.run(wp, &g, key);
  return st;
}

Trainer::Trainer(const model::DecoderWeights& base, TrainOptions opt) : base_(base), opt_(std::move(opt)) {
  if (opt_.rank == 0) throw usage_error("--rank must be at least 1");
  if (opt_.targets.empty()) throw usage_error("--lora-targets names no module");
  if (opt_.batch == 0 || opt_.grad_accum == 0) throw usage_error("--batch and --grad-accum must be at least 1");
  if (opt_.dropout < 0 || opt_.dropout >= 1) throw usage_error("--dropout must be in [0, 1)");
  lora_.arch = base.cfg.arch_name;
  lora_.alpha = opt_.alpha;
  lora_.base_name = opt_.base_name;
  // PEFT's initialisation: A uniform in +-1/sqrt(in) (kaiming_uniform with a = sqrt(5)), B zero
  uint64_t k = 0;
  for (uint32_t l = 0; l < base.cfg.n_layer; ++l)
    for (Module m : opt_.targets) {
      const model::Weight* w = base.layers[l].linear(m);
      model::LoraPair p{.layer = l, .module = m, .in = w->cols, .out = w->rows, .rank = opt_.rank};
      p.a.resize(p.rank * p.in);
      p.b.assign(p.out * p.rank, 0.0f);
      const float bound = 1.0f / std::sqrt(static_cast<float>(p.in));
      for (float& x : p.a) x = bound * (2.0f * static_cast<float>(mix(opt_.seed * 0x100000001B3ull + ++k) >> 40) / 16777216.0f - 1.0f);
      lora_.pairs.push_back(std::move(p));
    }
  m_ = Gradients::like(lora_);
  v_ = Gradients::like(lora_);
}

size_t Trainer::trainable_parameters() const {
  size_t n = 0;
  for (const auto& p : lora_.pairs) n += p.a.size() + p.b.size();
  return n;
}

size_t Trainer::memory_estimate() const {
  model::LoraAdapter copy = lora_;
  Network net(base_, copy, {.threads = 1, .checkpoint = opt_.checkpoint_activations});
  const size_t tokens = size_t{opt_.batch} * opt_.n_ctx;  // a micro-batch holds at most this many (packed or not)
  const size_t per_seq = opt_.method == Method::Dpo ? 2 : 1;
  // activations + the logits of a chunk of rows + dequantized matrices (the cache, or the largest
  // one) + adapters, gradients and the two AdamW moments
  size_t largest = 0, all = 0;
  for (const auto& w : base_.all)
    if (w->rows > 1 && w->type != kernels::GgmlType::F32) {
      largest = std::max<size_t>(largest, w->rows * w->cols * sizeof(float));
      all += w->rows * w->cols * sizeof(float);
    }
  return net.activation_bytes(tokens * per_seq) + (size_t{64} << 20) + std::max(largest, std::min(all, opt_.weight_cache)) +
         4 * trainable_parameters() * sizeof(float);
}

std::vector<std::vector<size_t>> Trainer::micro_batches(const std::vector<size_t>& lengths, uint32_t epoch) const {
  std::vector<size_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  uint64_t state = mix(opt_.seed ^ (0xA5A5A5A5ull + epoch));
  for (size_t i = order.size(); i > 1; --i) {  // Fisher-Yates with our own generator (portable)
    state = mix(state);
    std::swap(order[i - 1], order[state % i]);
  }
  std::vector<std::vector<size_t>> out;
  const size_t budget = size_t{opt_.batch} * opt_.n_ctx;
  size_t used = 0;
  for (size_t i : order) {
    const bool full = out.empty() || (opt_.pack && opt_.method == Method::Sft ? used + lengths[i] > budget : out.back().size() >= opt_.batch);
    if (full) {
      out.emplace_back();
      used = 0;
    }
    out.back().push_back(i);
    used += lengths[i];
  }
  return out;
}

uint64_t Trainer::total_steps(const std::vector<size_t>& lengths) const {
  if (opt_.max_steps) return opt_.max_steps;
  uint64_t total = 0;
  for (uint32_t e = 0; e < opt_.epochs; ++e) total += (micro_batches(lengths, e).size() + opt_.grad_accum - 1) / opt_.grad_accum;
  return total;
}

size_t Trainer::largest_micro_batch(const std::vector<size_t>& lengths) const {
  size_t most = 0;
  for (uint32_t e = 0; e < opt_.epochs; ++e)
    for (const auto& mb : micro_batches(lengths, e)) {
      size_t n = 0;
      for (size_t i : mb) n += lengths[i];
      most = std::max(most, n);
    }
  return most;
}

void Trainer::adam_step(const Gradients& g, double lr) {
  const double b1 = opt_.adam_beta1, b2 = opt_.adam_beta2;
  const double t = static_cast<double>(step_ + 1);
  const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
  const float step_size = static_cast<float>(lr / bc1), bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - lr * opt_.weight_decay);
  auto update = [&](std::vector<float>& p, const std::vector<float>& gr, std::vector<float>& m, std::vector<float>& v) {
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] *= decay;
      m[i] = static_cast<float>(b1) * m[i] + static_cast<float>(1.0 - b1) * gr[i];
      v[i] = static_cast<float>(b2) * v[i] + static_cast<float>(1.0 - b2) * gr[i] * gr[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + opt_.adam_eps);
    }
  };
  for (size_t i = 0; i < lora_.pairs.size(); ++i) {
    update(lora_.pairs[i].a, g.a[i], m_.a[i], v_.a[i]);
    update(lora_.pairs[i].b, g.b[i], m_.b[i], v_.b[i]);
  }
}

std::string Trainer::fingerprint() const {
  std::string t;
  for (Module m : opt_.targets) t += std::string(model::module_name(m)) + ",";
  const model::Config& c = base_.cfg;
  return fmt::format(
      "method={} beta={} targets={} rank={} alpha={} dropout={} lr={} wd={} adam={},{},{} warmup={} clip={} epochs={} "
      "max_steps={} batch={} accum={} ctx={} pack={} seed={} base={}:{}x{}x{}:{}",
      opt_.method == Method::Dpo ? "dpo" : "sft", opt_.beta, t, opt_.rank, opt_.alpha, opt_.dropout, opt_.lr, opt_.weight_decay,
      opt_.adam_beta1, opt_.adam_beta2, opt_.adam_eps, opt_.warmup, opt_.clip, opt_.epochs, opt_.max_steps, opt_.batch,
      opt_.grad_accum, opt_.n_ctx, opt_.pack, opt_.seed, c.arch_name, c.n_layer, c.n_embd, c.n_vocab, c.n_ff);
}

void Trainer::save_checkpoint(uint64_t step, uint64_t epoch_step, uint32_t epoch, double best, uint32_t bad) const {
  gguf::Writer w;
  w.set_string("general.type", "loom-finetune-checkpoint");
  w.set_string("general.architecture", lora_.arch);
  w.set("adapter.lora.alpha", gguf::f32(lora_.alpha));
  w.set_string("loom.checkpoint.options", fingerprint());
  w.set("loom.checkpoint.step", gguf::u64(step));
  w.set("loom.checkpoint.epoch", gguf::u32(epoch));
  w.set("loom.checkpoint.epoch_step", gguf::u64(epoch_step));
  w.set("loom.checkpoint.have_best", gguf::boolean(have_best_));
  w.set("loom.checkpoint.best_eval", gguf::f64(best));
  w.set("loom.checkpoint.bad_evals", gguf::u32(bad));
  auto add = [&](const std::string& name, const std::vector<float>& v, uint64_t cols, uint64_t rows) {
    w.add_tensor(name, {cols, rows}, 0, std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  };
  for (size_t i = 0; i < lora_.pairs.size(); ++i) {
    const auto& p = lora_.pairs[i];
    const std::string n = p.tensor();
    add(n + ".lora_a", p.a, p.in, p.rank);
    add(n + ".lora_b", p.b, p.rank, p.out);
    add(n + ".lora_a.adam_m", m_.a[i], p.in, p.rank);
    add(n + ".lora_a.adam_v", v_.a[i], p.in, p.rank);
    add(n + ".lora_b.adam_m", m_.b[i], p.rank, p.out);
    add(n + ".lora_b.adam_v", v_.b[i], p.rank, p.out);
  }
  w.write(opt_.checkpoint_path);
}

void Trainer::resume(const std::string& path) { resume(gguf::File::open(path), path); }

void Trainer::resume(const gguf::File& f, const std::string& path) {
  f.validate_tensors();
  if (f.get_string("general.type").value_or("") != "loom-finetune-checkpoint")
    throw input_error("not a loom-finetune checkpoint", path);
  const std::string fp = f.get_string("loom.checkpoint.options").value_or("");
  if (fp != fingerprint())
    throw input_error(fmt::format("the checkpoint was made with other options or another base model:\n  checkpoint: {}\n  this run:   {}", fp,
                                  fingerprint()),
                      path);
  auto need_int = [&](const char* key) {
    auto v = f.get_int(key);
    if (!v || *v < 0) throw input_error(fmt::format("the checkpoint has no {}", key), path);
    return static_cast<uint64_t>(*v);
  };
  step_ = need_int("loom.checkpoint.step");
  epoch_ = static_cast<uint32_t>(need_int("loom.checkpoint.epoch"));
  epoch_step_ = need_int("loom.checkpoint.epoch_step");
  bad_evals_ = static_cast<uint32_t>(need_int("loom.checkpoint.bad_evals"));
  have_best_ = f.get_bool("loom.checkpoint.have_best").value_or(false);
  const gguf::Value* best = f.find("loom.checkpoint.best_eval");
  best_eval_ = best ? best->as_float().value_or(0) : 0;
  auto load = [&](const std::string& name, std::vector<float>& v) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (!t || t->ggml_type != 0 || t->n_elements() != v.size())
      throw input_error(fmt::format("the checkpoint's tensor {} is missing or of the wrong size", name), path);
    std::string_view b = f.tensor_data(*t);
    std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
    for (float x : v)
      if (!std::isfinite(x)) throw input_error(fmt::format("the checkpoint's tensor {} holds a non-finite value", name), path);
  };
  for (size_t i = 0; i < lora_.pairs.size(); ++i) {
    auto& p = lora_.pairs[i];
    const std::string n = p.tensor();
    load(n + ".lora_a", p.a);
    load(n + ".lora_b", p.b);
    load(n + ".lora_a.adam_m", m_.a[i]);
    load(n + ".lora_a.adam_v", v_.a[i]);
    load(n + ".lora_b.adam_m", m_.b[i]);
    load(n + ".lora_b.adam_v", v_.b[i]);
  }
}

// The loop shared by SFT and DPO: `run_step(micro-batches, grads, key)` computes one optimizer
// step's loss and gradients; `evaluate()` the held-out loss.
struct Trainer::Loop {
  Trainer& t;
  std::function<double(const std::vector<const std::vector<size_t>*>&, Gradients&, uint64_t, StepReport&)> run_step;
  std::function<std::optional<double>()> evaluate;
  std::vector<size_t> lengths;

  void go(const std::string& out, const std::function<void(const StepReport&)>& report) {
    const TrainOptions& o = t.opt_;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::vector<std::vector<size_t>>> epochs(o.epochs);
    for (uint32_t e = 0; e < o.epochs; ++e) epochs[e] = t.micro_batches(lengths, e);
    const uint64_t total = t.total_steps(lengths);
    Gradients g = Gradients::like(t.lora_);
    const uint64_t eval_every = o.eval_every;
    bool stopped = false, evaluated_last = false;
    auto do_eval = [&](StepReport& r) {
      std::optional<double> l = evaluate();
      evaluated_last = true;
      if (!l) return;
      r.eval_loss = l;
      if (!t.have_best_ || *l < t.best_eval_) {
        t.best_eval_ = *l;
        t.have_best_ = true;
        t.bad_evals_ = 0;
        t.lora_.write(out);
      } else if (o.patience && ++t.bad_evals_ >= o.patience) {
        stopped = true;
      }
    };
    for (uint32_t e = t.epoch_; e < o.epochs && t.step_ < total && !stopped; ++e, t.epoch_step_ = 0) {
      t.epoch_ = e;
      const auto& mbs = epochs[e];
      const uint64_t steps_here = (mbs.size() + o.grad_accum - 1) / o.grad_accum;
      for (uint64_t s = t.epoch_step_; s < steps_here && t.step_ < total && !stopped; ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<const std::vector<size_t>*> group;
        for (uint64_t k = s * o.grad_accum; k < std::min<uint64_t>(mbs.size(), (s + 1) * o.grad_accum); ++k) group.push_back(&mbs[k]);
        g.zero();
        StepReport r;
        r.loss = run_step(group, g, t.step_ + 1, r);
        for (const auto* mb : group)
          for (size_t i : *mb) r.tokens += lengths[i];
        r.grad_norm = std::sqrt(g.sq_norm());
        if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
          throw runtime_error(fmt::format("the loss became {} at step {} (lower --lr?)", r.loss, t.step_ + 1));
        if (o.clip > 0 && r.grad_norm > o.clip) g.scale(static_cast<float>(o.clip / (r.grad_norm + 1e-6)));
        // warmup then cosine decay to 0 (transformers' get_cosine_schedule_with_warmup)
        const double cur = static_cast<double>(t.step_);
        double f;
        if (cur < static_cast<double>(o.warmup))
          f = cur / std::max<double>(1.0, static_cast<double>(o.warmup));
        else {
          const double progress = (cur - static_cast<double>(o.warmup)) / std::max<double>(1.0, static_cast<double>(total - o.warmup));
          f = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
        }
        r.lr = o.lr * f;
        t.adam_step(g, r.lr);
        ++t.step_;
        t.epoch_step_ = s + 1;
        r.step = t.step_;
        r.total = total;
        r.epoch = e + static_cast<double>(s + 1) / static_cast<double>(steps_here);
        r.seconds = seconds_since(t0);
        r.elapsed = seconds_since(start);
        evaluated_last = false;
        const bool epoch_end = s + 1 == steps_here;
        if ((eval_every && t.step_ % eval_every == 0) || (!eval_every && epoch_end)) do_eval(r);
        if (o.save_every && t.step_ % o.save_every == 0 && !o.checkpoint_path.empty()) {
          // the position after this step: the next step of this epoch, or the next epoch
          const bool next_epoch = t.epoch_step_ >= steps_here;
          t.save_checkpoint(t.step_, next_epoch ? 0 : t.epoch_step_, next_epoch ? e + 1 : e, t.best_eval_, t.bad_evals_);
        }
        report(r);
      }
    }
    if (!evaluated_last) {
      StepReport r;
      r.step = t.step_;
      r.total = total;
      r.elapsed = seconds_since(start);
      do_eval(r);
      if (r.eval_loss) report(r);
    }
    if (!t.have_best_) t.lora_.write(out);  // no held-out data: the final adapter
  }
};

void Trainer::fit(const std::vector<Example>& train, const std::vector<Example>& eval, const std::string& out,
                  const std::function<void(const StepReport&)>& report) {
  if (opt_.method != Method::Sft) throw usage_error("fit() trains SFT; use fit_dpo()");
  Network net(base_, lora_,
              {.threads = opt_.threads, .dropout = opt_.dropout, .checkpoint = opt_.checkpoint_activations, .weight_cache = opt_.weight_cache});
  Loop loop{*this, nullptr, nullptr, {}};
  for (const auto& ex : train) loop.lengths.push_back(ex.seq.tokens.size());
  net.reserve(largest_micro_batch(loop.lengths));
  loop.run_step = [&](const std::vector<const std::vector<size_t>*>& group, Gradients& g, uint64_t step, StepReport&) {
    size_t targets = 0;
    for (const auto* mb : group)
      for (size_t i : *mb) targets += train[i].targets();
    const float inv = 1.0f / static_cast<float>(std::max<size_t>(1, targets));
    double loss = 0;
    for (size_t k = 0; k < group.size(); ++k) {
      std::vector<Sequence> seqs;
      for (size_t i : *group[k]) {
        Sequence s = train[i].seq;
        for (float& w : s.weight) w *= inv;
        seqs.push_back(std::move(s));
      }
      std::vector<const Sequence*> ptrs;
      for (const auto& s : seqs) ptrs.push_back(&s);
      loss += net.run(ptrs, &g, mix(opt_.seed + step * 1024 + k) | 1).loss;
    }
    return loss;
  };
  loop.evaluate = [&]() -> std::optional<double> {
    if (eval.empty()) return std::nullopt;
    double loss = 0;
    size_t targets = 0;
    for (size_t i = 0; i < eval.size(); i += opt_.batch) {
      std::vector<const Sequence*> ptrs;
      for (size_t j = i; j < std::min(eval.size(), i + opt_.batch); ++j) {
        ptrs.push_back(&eval[j].seq);
        targets += eval[j].targets();
      }
      loss += net.run(ptrs, nullptr, 0).loss;
    }
    return loss / static_cast<double>(std::max<size_t>(1, targets));
  };
  loop.go(out, report);
}

void Trainer::fit_dpo(const std::vector<Preference>& train, const std::vector<Preference>& eval, const std::string& out,
                      const std::function<void(const StepReport&)>& report) {
  if (opt_.method != Method::Dpo) throw usage_error("fit_dpo() trains DPO");
  Network net(base_, lora_,
              {.threads = opt_.threads, .dropout = opt_.dropout, .checkpoint = opt_.checkpoint_activations, .weight_cache = opt_.weight_cache});
  // the reference model's log-likelihoods: the base alone, once
  auto reference = [&](const std::vector<Preference>& pairs) {
    std::vector<std::pair<double, double>> ref(pairs.size());
    for (size_t i = 0; i < pairs.size(); i += opt_.batch) {
      std::vector<const Sequence*> ptrs;
      for (size_t j = i; j < std::min(pairs.size(), i + opt_.batch); ++j) {
        ptrs.push_back(&pairs[j].chosen.seq);
        ptrs.push_back(&pairs[j].rejected.seq);
      }
      auto p = net.run(ptrs, nullptr, 0, false);
      for (size_t j = i; j < std::min(pairs.size(), i + opt_.batch); ++j) ref[j] = {p.logp[2 * (j - i)], p.logp[2 * (j - i) + 1]};
    }
    return ref;
  };
  const auto ref_train = reference(train), ref_eval = reference(eval);
  const double beta = opt_.beta;
  Loop loop{*this, nullptr, nullptr, {}};
  for (const auto& p : train) loop.lengths.push_back(p.chosen.seq.tokens.size() + p.rejected.seq.tokens.size());
  net.reserve(largest_micro_batch(loop.lengths));
  loop.run_step = [&](const std::vector<const std::vector<size_t>*>& group, Gradients& g, uint64_t step, StepReport& r) {
    size_t n = 0;
    for (const auto* mb : group) n += mb->size();
    DpoStats total;
    for (size_t k = 0; k < group.size(); ++k) {
      std::vector<const Preference*> pairs;
      std::vector<std::pair<double, double>> ref;
      for (size_t i : *group[k]) {
        pairs.push_back(&train[i]);
        ref.push_back(ref_train[i]);
      }
      const DpoStats st = dpo_step(net, pairs, ref, opt_.beta, n, g, mix(opt_.seed + step * 1024 + k) | 1);
      total.loss += st.loss;
      total.margin += st.margin;
      total.accuracy += st.accuracy;
    }
    r.reward_margin = total.margin;
    r.accuracy = total.accuracy;
    return total.loss;
  };
  loop.evaluate = [&]() -> std::optional<double> {
    if (eval.empty()) return std::nullopt;
    double loss = 0;
    for (size_t i = 0; i < eval.size(); i += opt_.batch) {
      std::vector<const Sequence*> ptrs;
      for (size_t j = i; j < std::min(eval.size(), i + opt_.batch); ++j) {
        ptrs.push_back(&eval[j].chosen.seq);
        ptrs.push_back(&eval[j].rejected.seq);
      }
      auto p = net.run(ptrs, nullptr, 0);
      for (size_t j = i; j < std::min(eval.size(), i + opt_.batch); ++j) {
        const double z = beta * ((p.logp[2 * (j - i)] - ref_eval[j].first) - (p.logp[2 * (j - i) + 1] - ref_eval[j].second));
        loss -= log_sigmoid(z);
      }
    }
    return loss / static_cast<double>(eval.size());
  };
  loop.go(out, report);
}

}  // namespace loom::train
