// The training loop of loom-finetune: LoRA adapters on a frozen base, trained by AdamW with a
// warmup + cosine learning-rate schedule, gradient accumulation and clipping, on supervised
// examples (SFT) or preference pairs (DPO); held-out loss and early stopping; checkpoints from
// which a run resumes exactly.
//
//   train::Trainer t(base, opts, log);                 // fresh adapter (PEFT's initialisation)
//   t.fit(train_examples, eval_examples, "out.lora.gguf");
//
// Everything random (data order, dropout masks, A's initialisation) is a function of --seed and
// the step, so a resumed run computes what the uninterrupted one would have.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "loom/model/lora.h"
#include "loom/model/weights.h"
#include "loom/train/data.h"
#include "loom/train/network.h"

namespace loom::gguf {
class File;
}

namespace loom::train {

enum class Method { Sft, Dpo };

struct TrainOptions {
  Method method = Method::Sft;
  float beta = 0.1f;  // DPO
  std::vector<model::Module> targets = {model::Module::Q, model::Module::V};
  uint32_t rank = 8;
  float alpha = 16.0f;
  float dropout = 0.05f;
  float lr = 2e-4f, weight_decay = 0.0f, adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f;
  uint64_t warmup = 0;          // steps of linear warmup
  float clip = 1.0f;            // max global gradient norm (0: none)
  uint32_t epochs = 1;
  uint64_t max_steps = 0;       // 0: epochs decide
  uint32_t batch = 4;           // examples (pairs) per micro-batch; with pack: batch * n_ctx tokens
  uint32_t grad_accum = 1;      // micro-batches per optimizer step
  uint32_t n_ctx = 512;
  bool pack = true;
  uint64_t seed = 42;
  unsigned threads = 1;
  bool checkpoint_activations = false;
  size_t weight_cache = size_t{2048} << 20;  // bytes of dequantized base matrices kept (NetworkOptions)
  uint64_t eval_every = 0;      // steps between held-out evaluations (0: at the end of each epoch)
  uint32_t patience = 0;        // stop after this many evaluations without improvement (0: never)
  uint64_t save_every = 0;      // steps between checkpoints (0: none)
  std::string checkpoint_path;  // where checkpoints go
  std::string base_name;        // general.name of the base (recorded in the adapter)
};

// What the loop reports: one per optimizer step, and one per evaluation.
struct StepReport {
  uint64_t step = 0, total = 0;
  double epoch = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  size_t tokens = 0;            // tokens run through the model this step
  double seconds = 0;           // this step
  double elapsed = 0;           // since the start (of this process)
  std::optional<double> eval_loss;
  // DPO
  double reward_margin = 0, accuracy = 0;
};

class Trainer {
 public:
  Trainer(const model::DecoderWeights& base, TrainOptions opt);

  const model::LoraAdapter& adapter() const { return lora_; }
  size_t trainable_parameters() const;
  // A rough peak: activations of one micro-batch plus adapters, gradients and AdamW moments (the
  // base model itself is mapped, not counted).
  size_t memory_estimate() const;

  // Restores the state of a checkpoint written by an earlier run with the same options.
  // loom::Error (BadInput) naming the file when it is corrupt or from other options.
  void resume(const std::string& path);
  void resume(const gguf::File& f, const std::string& name);

  // Trains; writes the adapter to `out` (atomically) at the end and, with eval data, whenever the
  // held-out loss improves (so `out` holds the best one). report() is called after every step.
  void fit(const std::vector<Example>& train, const std::vector<Example>& eval, const std::string& out,
           const std::function<void(const StepReport&)>& report);
  void fit_dpo(const std::vector<Preference>& train, const std::vector<Preference>& eval, const std::string& out,
               const std::function<void(const StepReport&)>& report);

  // The micro-batches of an epoch (indices into lengths, in the epoch's seeded order).
  std::vector<std::vector<size_t>> micro_batches(const std::vector<size_t>& lengths, uint32_t epoch) const;
  // The optimizer steps of the whole run: --steps, else each epoch's micro-batches / grad_accum.
  uint64_t total_steps(const std::vector<size_t>& lengths) const;

 private:
  struct Loop;
  void adam_step(const Gradients& g, double lr);
  // tokens in the largest micro-batch of any epoch (the network's buffers are sized for it)
  size_t largest_micro_batch(const std::vector<size_t>& lengths) const;
  void save_checkpoint(uint64_t step, uint64_t epoch_step, uint32_t epoch, double best, uint32_t bad) const;
  std::string fingerprint() const;

  const model::DecoderWeights& base_;
  TrainOptions opt_;
  model::LoraAdapter lora_;
  Gradients m_, v_;  // AdamW moments
  uint64_t step_ = 0;
  uint32_t epoch_ = 0;
  uint64_t epoch_step_ = 0;  // steps done within epoch_
  double best_eval_ = 0;
  bool have_best_ = false;
  uint32_t bad_evals_ = 0;
};

// One DPO micro-batch: the pairs' policy log-likelihoods (one pass), then the gradient of their
// share of the mean loss -log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r))) over n_total pairs,
// added to g (a second pass, the same dropout key). ref: the reference model's (chosen, rejected)
// log-likelihoods per pair.
struct DpoStats {
  double loss = 0, margin = 0, accuracy = 0;          // shares of the means over n_total
  std::vector<std::pair<double, double>> rewards;       // beta (pi - ref) of chosen, rejected
};
DpoStats dpo_step(Network& net, const std::vector<const Preference*>& pairs, const std::vector<std::pair<double, double>>& ref,
                  double beta, size_t n_total, Gradients& g, uint64_t key);

// Parses --lora-targets: "q,v", "all", any of q,k,v,o,gate,up,down. Usage error otherwise.
std::vector<model::Module> parse_targets(const std::string& spec);

}  // namespace loom::train
