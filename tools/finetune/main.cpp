// loom-finetune: LoRA fine-tuning of a GGUF decoder on the CPU (supervised, or DPO on preference
// pairs), writing an adapter in llama.cpp's format; `loom finetune merge` folds adapters into the
// base model's weights.
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "loom/cli/tool.h"
#include "loom/core/error.h"
#include "loom/generate/prompt.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/io/json.h"
#include "loom/model/lora.h"
#include "loom/model/models_dir.h"
#include "loom/model/weights.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/train/data.h"
#include "loom/train/trainer.h"

extern char** environ;

using namespace loom;

namespace {

struct Options {
  std::string model, data, eval_data, output, log, resume, checkpoint, chat_template_file;
  std::string method = "sft", targets = "q,v";
  train::TrainOptions t;
  bool no_pack = false, train_on_prompt = false, dry_run = false;
};

double peak_rss_mib() {
  struct rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::string fmt_num(double x) { return std::isfinite(x) ? fmt::format("{:.6g}", x) : "null"; }

void run(cli::Tool& tool, CLI::App& app, Options& opt) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (a .gguf file or a model name)");
  if (opt.data.empty()) throw usage_error("--data is required (JSONL training records)");
  if (opt.output.empty() && !opt.dry_run) throw usage_error("-o/--output is required (the adapter to write)");
  if (opt.method == "sft")
    opt.t.method = train::Method::Sft;
  else if (opt.method == "dpo")
    opt.t.method = train::Method::Dpo;
  else
    throw usage_error(fmt::format("--method must be sft or dpo, not '{}'", opt.method));
  if (opt.t.method == train::Method::Dpo && opt.train_on_prompt) throw usage_error("--train-on-prompt is for --method sft");
  if (opt.t.lr <= 0 || !std::isfinite(opt.t.lr)) throw usage_error("--lr must be positive");
  opt.t.targets = train::parse_targets(opt.targets);
  opt.t.pack = !opt.no_pack;
  opt.t.threads = tool.common().threads;
  if (app.get_option("--steps")->count() && opt.t.max_steps == 0) throw usage_error("--steps must be at least 1");
  if (opt.t.save_every && opt.checkpoint.empty()) opt.checkpoint = opt.output + ".ckpt";
  opt.t.checkpoint_path = opt.checkpoint;
  if (!opt.output.empty() && (opt.output == "-" || opt.output.ends_with(".zst")))
    throw usage_error("-o/--output names the adapter file (a .gguf, not '-' or .zst)");

  const std::string path = model::find_gguf(opt.model);
  auto file = std::make_shared<gguf::File>(gguf::File::open(path));
  model::DecoderWeights base(*file);
  opt.t.base_name = file->get_string("general.name").value_or("");
  tok::Tokenizer tokenizer = tok::Tokenizer::from_gguf(*file, path);
  generate::Prompter prompter(*file, path, tokenizer,
                              {.field = "prompt", .chat = false, .rag = false, .score = false, .template_file = "", .chat_template_file = opt.chat_template_file, .n_ctx = opt.t.n_ctx, .truncate = false});
  train::DataEncoder enc(*file, tokenizer, prompter, {.n_ctx = opt.t.n_ctx, .train_on_prompt = opt.train_on_prompt});
  train::Trainer trainer(base, opt.t);
  if (!opt.resume.empty()) trainer.resume(opt.resume);

  const bool dpo = opt.t.method == train::Method::Dpo;
  std::vector<train::Example> train_ex, eval_ex;
  std::vector<train::Preference> train_pr, eval_pr;
  size_t n_tokens = 0, n_targets = 0, n_records = 0;
  if (dpo) {
    train_pr = train::read_preferences(opt.data, enc);
    if (!opt.eval_data.empty()) eval_pr = train::read_preferences(opt.eval_data, enc);
    for (const auto& p : train_pr) {
      n_tokens += p.chosen.seq.tokens.size() + p.rejected.seq.tokens.size();
      n_targets += p.chosen.targets() + p.rejected.targets();
    }
    n_records = train_pr.size();
  } else {
    train_ex = train::read_examples(opt.data, enc);
    if (!opt.eval_data.empty()) eval_ex = train::read_examples(opt.eval_data, enc);
    for (const auto& e : train_ex) {
      n_tokens += e.seq.tokens.size();
      n_targets += e.targets();
    }
    n_records = train_ex.size();
  }
  std::vector<size_t> lengths;
  if (dpo)
    for (const auto& p : train_pr) lengths.push_back(p.chosen.seq.tokens.size() + p.rejected.seq.tokens.size());
  else
    for (const auto& e : train_ex) lengths.push_back(e.seq.tokens.size());
  const uint64_t steps = trainer.total_steps(lengths);

  if (opt.dry_run) {
    std::string j = "{\"model\":";
    json::append_string(j, path);
    j += fmt::format(",\"method\":\"{}\",\"targets\":", opt.method);
    json::append_string(j, opt.targets);
    j += fmt::format(",\"rank\":{},\"alpha\":{},\"adapted_layers\":{},\"trainable_parameters\":{},\"records\":{},\"tokens\":{},"
                     "\"target_tokens\":{},\"steps\":{},\"memory_estimate_mib\":{:.1f},\"model_file_mib\":{:.1f}}}\n",
                     opt.t.rank, fmt_num(opt.t.alpha), trainer.adapter().pairs.size(), trainer.trainable_parameters(), n_records,
                     n_tokens, n_targets, steps, static_cast<double>(trainer.memory_estimate()) / (1 << 20),
                     static_cast<double>(std::filesystem::file_size(path)) / (1 << 20));
    tool.out().write(j);
    return;
  }

  // the log is written line by line as training goes (tail -f), not atomically at the end
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(nullptr, std::fclose);
  if (!opt.log.empty()) {
    log.reset(std::fopen(opt.log.c_str(), "w"));
    if (!log) throw runtime_error(fmt::format("cannot write the log: {}", std::strerror(errno)), opt.log);
  }
  cli::Progress progress(tool, "finetune");
  train::StepReport last;
  std::optional<double> best_eval;
  size_t tokens_total = 0;
  double train_seconds = 0;
  auto report = [&](const train::StepReport& r) {
    if (r.tokens) {
      last = r;
      tokens_total += r.tokens;
      train_seconds += r.seconds;
    }
    if (r.eval_loss && (!best_eval || *r.eval_loss < *best_eval)) best_eval = r.eval_loss;
    if (log) {
      std::string j;
      if (r.tokens) {
        j = fmt::format("{{\"step\":{},\"epoch\":{:.4f},\"loss\":{},\"lr\":{},\"grad_norm\":{},\"tokens\":{},\"tokens_per_s\":{:.1f},"
                        "\"elapsed_s\":{:.3f}",
                        r.step, r.epoch, fmt_num(r.loss), fmt_num(r.lr), fmt_num(r.grad_norm), r.tokens,
                        r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0.0, r.elapsed);
        if (dpo) j += fmt::format(",\"reward_margin\":{},\"reward_accuracy\":{}", fmt_num(r.reward_margin), fmt_num(r.accuracy));
      } else {
        j = fmt::format("{{\"step\":{},\"elapsed_s\":{:.3f}", r.step, r.elapsed);
      }
      if (r.eval_loss) j += fmt::format(",\"eval_loss\":{}", fmt_num(*r.eval_loss));
      j += "}\n";
      std::fwrite(j.data(), 1, j.size(), log.get());
      std::fflush(log.get());
    }
    progress.tick([&] {
      const double rate = train_seconds > 0 ? static_cast<double>(tokens_total) / train_seconds : 0.0;
      const double eta = rate > 0 && last.step ? train_seconds / static_cast<double>(last.step) * static_cast<double>(last.total - last.step) : 0;
      std::string s = fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s  eta {:.0f}s", last.step, last.total, last.loss,
                                  last.lr, rate, eta);
      if (best_eval) s += fmt::format("  eval {:.4f}", *best_eval);
      return s;
    });
  };
  if (dpo)
    trainer.fit_dpo(train_pr, eval_pr, opt.output, report);
  else
    trainer.fit(train_ex, eval_ex, opt.output, report);
  progress.done();
  log.reset();
  std::string j = "{\"adapter\":";
  json::append_string(j, opt.output);
  j += fmt::format(",\"method\":\"{}\",\"steps\":{},\"epoch\":{:.4f},\"loss\":{},\"tokens\":{},\"seconds\":{:.3f},\"tokens_per_s\":{:.1f}",
                   opt.method, last.step, last.epoch, fmt_num(last.loss), tokens_total, train_seconds,
                   train_seconds > 0 ? static_cast<double>(tokens_total) / train_seconds : 0.0);
  if (best_eval) j += fmt::format(",\"best_eval_loss\":{}", fmt_num(*best_eval));
  j += fmt::format(",\"trainable_parameters\":{},\"peak_rss_mib\":{:.1f}}}\n", trainer.trainable_parameters(), peak_rss_mib());
  tool.out().write(j);
}

// ---- merge ----------------------------------------------------------------------------------

struct MergeOptions {
  std::string model, output, type;
  std::vector<std::string> loras;
  std::vector<float> scales;
};

// loom-quantize beside this program
std::string sibling(const std::string& name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto p = self.parent_path() / name;
    if (std::filesystem::exists(p)) return p.string();
  }
  return name;
}

void run_merge(cli::Tool& tool, MergeOptions& opt) {
  if (opt.model.empty()) throw usage_error("-m/--model is required (the base model)");
  if (opt.loras.empty()) throw usage_error("--lora is required (one or more adapters)");
  if (opt.output.empty() || opt.output == "-") throw usage_error("-o/--output is required (the merged .gguf)");
  if (!opt.scales.empty() && opt.scales.size() != opt.loras.size())
    throw usage_error(fmt::format("--lora-scale given {} times for {} adapters (give none, or one per --lora)", opt.scales.size(),
                                  opt.loras.size()));
  const std::string path = model::find_gguf(opt.model);
  if (std::filesystem::exists(opt.output) && std::filesystem::equivalent(path, opt.output))
    throw usage_error("-o/--output must not be the base model itself");
  gguf::File file = gguf::File::open(path);
  model::DecoderWeights base(file);
  std::vector<model::LoraAdapter> adapters;
  for (const auto& l : opt.loras) adapters.push_back(model::LoraAdapter::read(l, base));
  // W' = W + sum of scale * B A, per adapted tensor
  struct Delta {
    const model::LoraAdapter* a;
    const model::LoraPair* p;
    float scale;
  };
  std::vector<std::vector<Delta>> deltas(file.tensors().size());
  size_t merged = 0;
  for (size_t k = 0; k < adapters.size(); ++k)
    for (const auto& p : adapters[k].pairs) {
      const gguf::TensorInfo* t = file.find_tensor(p.tensor());
      const size_t idx = static_cast<size_t>(t - file.tensors().data());
      if (deltas[idx].empty()) ++merged;
      deltas[idx].push_back({&adapters[k], &p, adapters[k].scale(p, opt.scales.empty() ? 1.0f : opt.scales[k])});
    }
  const bool requantize = !opt.type.empty();
  gguf::Writer w(file.alignment());
  for (const auto& [k, v] : file.metadata())
    if (k != "general.alignment") w.set(k, v);
  std::vector<std::string> merged_bytes(file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const auto& t = file.tensors()[i];
    if (deltas[i].empty()) {
      w.add_tensor_info(t.name, t.ne, t.ggml_type);
      continue;
    }
    // merged tensors keep their type unless the whole file is requantized after (then F32)
    const auto type = static_cast<kernels::GgmlType>(t.ggml_type);
    const uint32_t out_type = requantize || !quant::can_quantize(type) ? 0u : t.ggml_type;
    w.add_tensor_info(t.name, t.ne, out_type);
  }
  std::string tmp_path;
  const std::string target = requantize ? (tmp_path = (std::filesystem::path(opt.output).parent_path() /
                                                       fmt::format(".{}.merge.tmp-{}", std::filesystem::path(opt.output).filename().string(), ::getpid()))
                                                          .string())
                                        : opt.output;
  struct Cleanup {
    std::string p;
    ~Cleanup() {
      if (!p.empty()) std::filesystem::remove(p);
    }
  } cleanup{tmp_path};
  std::string buf;
  w.write(target, [&](size_t i) -> std::string_view {
    const auto& t = file.tensors()[i];
    if (deltas[i].empty()) return file.tensor_data(t);
    const size_t cols = t.ne[0], rows = t.n_elements() / cols;
    std::vector<float> W(rows * cols);
    tensor::dequantize_row(static_cast<kernels::GgmlType>(t.ggml_type), file.tensor_data(t).data(), W.data(), W.size());
    for (const Delta& d : deltas[i]) {
      const auto& p = *d.p;
      std::vector<float> ba(cols);
      for (size_t r = 0; r < rows; ++r) {
        std::fill(ba.begin(), ba.end(), 0.0f);
        for (size_t k = 0; k < p.rank; ++k) {
          const float b = p.b[r * p.rank + k];
          const float* a = &p.a[k * cols];
          for (size_t c = 0; c < cols; ++c) ba[c] += b * a[c];
        }
        for (size_t c = 0; c < cols; ++c) W[r * cols + c] += d.scale * ba[c];
      }
    }
    const auto type = static_cast<kernels::GgmlType>(t.ggml_type);
    if (requantize || !quant::can_quantize(type)) {
      buf.assign(reinterpret_cast<const char*>(W.data()), W.size() * sizeof(float));
    } else {
      buf.resize(quant::row_bytes(type, cols) * rows);
      quant::quantize_rows(type, W.data(), buf.data(), rows, cols, nullptr);
    }
    return buf;
  });
  std::string j = "{\"merged\":";
  json::append_string(j, opt.output);
  j += fmt::format(",\"adapters\":{},\"tensors_merged\":{}", adapters.size(), merged);
  if (requantize) {
    // the merged float file quantized by loom-quantize (its mix rules, its report on stderr)
    const std::string q = sibling("loom-quantize");
    std::vector<std::string> args = {q, target, opt.output, "--type", opt.type, "-q"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawn(&pid, q.c_str(), &fa, nullptr, argv.data(), environ) != 0)
      throw runtime_error(fmt::format("cannot run {} to quantize the merged model", q));
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw Error(WIFEXITED(status) && WEXITSTATUS(status) == 2 ? Error::Kind::Usage : Error::Kind::Runtime,
                  fmt::format("loom-quantize failed on the merged model (--type {})", opt.type));
    j += ",\"type\":";
    json::append_string(j, opt.type);
  }
  j += "}\n";
  tool.out().write(j);
}

int merge_main(int argc, char** argv) {
  cli::Tool tool("finetune merge",
                 "Fold LoRA adapters into a base model: each adapted matrix becomes W + scale * B A (scale = --lora-scale\n"
                 "times alpha / rank, as llama.cpp applies the adapter at run time). The adapted matrices keep their type\n"
                 "(re-quantized with llama.cpp's quantizers), everything else is copied; with --type, the merged model is\n"
                 "then quantized as `loom quantize --type` does. Prints a JSON summary.");
  MergeOptions opt;
  auto& app = tool.app();
  app.add_option("-m,--model", opt.model, "The base model: a .gguf file or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("--lora", opt.loras, "An adapter (llama.cpp's LoRA GGUF format); repeatable")->type_name("ADAPTER");
  app.add_option("--lora-scale", opt.scales, "The scale of each --lora, in order (default 1)")->type_name("S");
  app.add_option("-o,--output", opt.output, "The merged model to write (GGUF, atomically)")->type_name("FILE");
  app.add_option("--type", opt.type, "Quantize the merged model to TYPE (loom quantize's types)")->type_name("TYPE");
  return tool.run(argc, argv, [&] { run_merge(tool, opt); });
}

int finetune_main(int argc, char** argv) {
  cli::Tool tool("finetune",
                 "LoRA fine-tuning of a GGUF decoder (llama, qwen2, qwen3, gemma3) on the CPU.\n\n"
                 "Trains low-rank adapters on the chosen linear layers while the base model stays frozen in its file's\n"
                 "type (quantized bases train too: each matrix is dequantized when used). AdamW, linear warmup then\n"
                 "cosine decay, gradient accumulation and clipping. Writes the adapter in llama.cpp's LoRA GGUF format\n"
                 "(llama.cpp --lora, loom generate --lora; fold it in with `loom finetune merge`).\n\n"
                 "Records (JSONL): {\"prompt\", \"completion\"} (the loss covers the completion and EOS only, unless\n"
                 "--train-on-prompt), {\"messages\": [...]} (the chat template applied; the loss covers the assistant turns)\n"
                 "or, with --method dpo, {\"prompt\", \"chosen\", \"rejected\"}. Examples are packed into micro-batches of up\n"
                 "to --batch x --ctx tokens, each attending only to itself. Prints a JSON summary on stdout; per-step\n"
                 "metrics go to --log as JSONL.\n\n"
                 "usage: loom finetune -m MODEL --data train.jsonl -o adapter.gguf [options]\n"
                 "       loom finetune merge -m MODEL --lora adapter.gguf -o merged.gguf [--type TYPE]");
  Options opt;
  auto& app = tool.app();
  app.add_option("-m,--model", opt.model, "The base model: a .gguf file or a model name under $LOOM_MODELS")->type_name("MODEL");
  app.add_option("--data", opt.data, "Training records (JSONL, .zst read too)")->type_name("FILE");
  app.add_option("-o,--output", opt.output, "The adapter to write (GGUF, atomically)")->type_name("FILE");
  app.add_option("--eval-data", opt.eval_data, "Held-out records: their mean loss every --eval-every steps; -o then keeps the best adapter")
      ->type_name("FILE");
  app.add_option("--method", opt.method, "sft (supervised) or dpo (preference pairs)")->type_name("METHOD")->default_str("sft");
  app.add_option("--beta", opt.t.beta, "DPO's beta (the strength of the pull toward the base model)")->type_name("X")->default_str("0.1");
  app.add_option("--lora-targets", opt.targets, "The linear layers to adapt: a list of q,k,v,o,gate,up,down, or all")
      ->type_name("LIST")
      ->default_str("q,v");
  app.add_option("--rank", opt.t.rank, "LoRA rank")->type_name("R")->default_str("8");
  app.add_option("--alpha", opt.t.alpha, "LoRA alpha (the adapter's output is scaled by alpha / rank)")->type_name("X")->default_str("16");
  app.add_option("--dropout", opt.t.dropout, "Dropout on the adapted layers' inputs to A")->type_name("P")->default_str("0.05");
  app.add_option("--lr", opt.t.lr, "Peak learning rate")->type_name("X")->default_str("2e-4");
  app.add_option("--weight-decay", opt.t.weight_decay, "AdamW weight decay")->type_name("X")->default_str("0");
  app.add_option("--warmup", opt.t.warmup, "Steps of linear warmup before the cosine decay")->type_name("N")->default_str("0");
  app.add_option("--clip", opt.t.clip, "Clip the gradient's global norm to X (0: no clipping)")->type_name("X")->default_str("1");
  app.add_option("--epochs", opt.t.epochs, "Passes over the data")->type_name("N")->default_str("1");
  app.add_option("--steps", opt.t.max_steps, "Stop after N optimizer steps (the schedule spans N)")->type_name("N");
  app.add_option("--batch", opt.t.batch, "Examples (DPO: pairs) per micro-batch; packed: up to batch x ctx tokens")
      ->type_name("N")
      ->default_str("4");
  app.add_option("--grad-accum", opt.t.grad_accum, "Micro-batches per optimizer step")->type_name("N")->default_str("1");
  app.add_option("-c,--ctx", opt.t.n_ctx, "Context length: the longest example allowed")->type_name("N")->default_str("512");
  app.add_flag("--no-pack", opt.no_pack, "Exactly --batch examples per micro-batch instead of packing by tokens");
  app.add_flag("--train-on-prompt", opt.train_on_prompt, "The loss covers the prompt's tokens too");
  app.add_option("--seed", opt.t.seed, "Seed of the data order, dropout and initialisation")->type_name("N")->default_str("42");
  app.add_flag("--grad-checkpoint", opt.t.checkpoint_activations,
               "Activation checkpointing: keep only each layer's input and recompute the layer for the backward pass");
  app.add_option_function<double>(
         "--weight-cache", [&opt](double mib) { opt.t.weight_cache = static_cast<size_t>(std::max(0.0, mib) * (1 << 20)); },
         "MiB of dequantized base matrices kept between uses (0: dequantize each matrix whenever it is used, the least memory)")
      ->type_name("MIB")
      ->default_str("2048");
  app.add_option("--eval-every", opt.t.eval_every, "Steps between held-out evaluations (0: at each epoch's end)")
      ->type_name("N")
      ->default_str("0");
  app.add_option("--patience", opt.t.patience, "Stop after N evaluations without a better held-out loss (0: never)")
      ->type_name("N")
      ->default_str("0");
  app.add_option("--save-every", opt.t.save_every, "Write a checkpoint every N steps (0: none)")->type_name("N")->default_str("0");
  app.add_option("--checkpoint", opt.checkpoint, "The checkpoint file (default: OUTPUT.ckpt)")->type_name("FILE");
  app.add_option("--resume", opt.resume, "Continue from a checkpoint of a run with the same options and data")->type_name("FILE");
  app.add_option("--log", opt.log, "Per-step metrics as JSONL (step, epoch, loss, lr, grad_norm, tokens, tokens_per_s, eval_loss)")
      ->type_name("FILE");
  app.add_option("--chat-template-file", opt.chat_template_file, "Chat template (Jinja) for messages instead of the model's own")
      ->type_name("FILE");
  app.add_flag("--dry-run", opt.dry_run, "Print the trainable parameter count, the data's size and a memory estimate; train nothing");
  return tool.run(argc, argv, [&] { run(tool, app, opt); });
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view first = argc > 1 ? argv[1] : "";
  if (first == "merge") return merge_main(argc - 1, argv + 1);
  if (first == "--help-man") {  // both option tables, for the man page
    std::printf(".SS loom finetune\n");
    std::fflush(stdout);
    finetune_main(argc, argv);
    std::printf(".SS loom finetune merge\n");
    std::fflush(stdout);
    return merge_main(argc, argv);
  }
  return finetune_main(argc, argv);
}
