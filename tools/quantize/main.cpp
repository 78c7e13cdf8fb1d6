// loom-quantize — a GGUF model to another tensor type, as llama-quantize --pure does.
//
// Every weight tensor that llama.cpp would quantize (2-D and 3-D tensors whose name ends in
// "weight", except norms, position embeddings, token types and a few small ones: the rules of
// tensor_allows_quantization in llama.cpp's llama-quant.cpp) becomes --type, or the type of the
// first --tensor-type pattern its name matches; the others keep their type and bytes. A tensor
// whose row length is not a whole number of blocks of its target falls back as llama.cpp's
// tensor_type_fallback does (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16 when even that does
// not fit). Source tensors are dequantized to float32 (lib/tensor) and quantized row by row
// (lib/quant, bytes identical to ggml's quantizers); a tensor whose type does not change is
// copied. Metadata is copied, general.quantization_version (2) and general.file_type (llama.h's
// LLAMA_FTYPE_*) set at the end, as llama.cpp writes them. The output is written atomically.
//
// Mixed presets (Q4_K_M ...) and importance matrices are not implemented yet.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <regex>

#include "loom/cli/tool.h"
#include "loom/core/parallel.h"
#include "loom/gguf/gguf.h"
#include "loom/gguf/writer.h"
#include "loom/io/json.h"
#include "loom/quant/quantize.h"
#include "loom/tensor/dequant.h"

using namespace loom;
using kernels::GgmlType;

namespace {

struct Options {
  std::string input, output;
  std::string type;
  std::vector<std::string> tensor_types;
  bool dry_run = false;
};

// The pure types, their names and the general.file_type llama-quantize writes for them (llama.h:
// "Q4_K" and "Q5_K" are llama-quantize's aliases of Q4_K_M and Q5_K_M, which --pure turns into
// all-Q4_K / all-Q5_K files labelled 15 and 17).
struct PureType {
  const char* name;
  GgmlType type;
  uint32_t ftype;
};
constexpr PureType kPure[] = {
    {"F32", GgmlType::F32, 0},    {"F16", GgmlType::F16, 1},    {"BF16", GgmlType::BF16, 32},
    {"Q8_0", GgmlType::Q8_0, 7},  {"Q4_0", GgmlType::Q4_0, 2},  {"Q4_1", GgmlType::Q4_1, 3},
    {"Q5_0", GgmlType::Q5_0, 8},  {"Q5_1", GgmlType::Q5_1, 9},  {"Q4_K", GgmlType::Q4_K, 15},
    {"Q5_K", GgmlType::Q5_K, 17}, {"Q6_K", GgmlType::Q6_K, 18},
};

// llama-quantize's names that are not (yet) loom's: mixes and types loom cannot write.
constexpr const char* kNotYet[] = {
    "Q2_K",    "Q2_K_S",  "Q3_K",    "Q3_K_S",  "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S",
    "Q5_K_M",  "IQ1_S",   "IQ1_M",   "IQ2_XXS", "IQ2_XS", "IQ2_S",  "IQ2_M",  "IQ3_XXS", "IQ3_XS",
    "IQ3_S",   "IQ3_M",   "IQ4_NL",  "IQ4_XS",  "TQ1_0",  "TQ2_0",  "MXFP4_MOE", "NVFP4", "COPY",
};

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string valid_types() {
  std::string s;
  for (const auto& p : kPure) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

// `what` is the argument as written up to the type ("--type ", "--tensor-type attn_q=").
const PureType& parse_type(const std::string& what, const std::string& word, bool presets) {
  const std::string u = upper(word);
  for (const auto& p : kPure)
    if (u == p.name) return p;
  for (const char* n : kNotYet)
    if (presets && u == n)
      throw usage_error(fmt::format("{}{}: not supported yet (this version writes the pure types: {}; "
                                    "mixed presets and importance matrices are to come)",
                                    what, word, valid_types()));
  throw usage_error(fmt::format("{}{}: unknown type (valid: {})", what, word, valid_types()));
}

// ggml_n_dims: trailing dimensions of 1 do not count.
size_t n_dims(const gguf::TensorInfo& t) {
  size_t n = t.ne.size();
  while (n > 1 && t.ne[n - 1] == 1) --n;
  return std::max<size_t>(n, 1);
}

// llama.cpp's tensor_allows_quantization (llama-quant.cpp), for the architectures loom runs.
bool allows_quantization(const gguf::TensorInfo& t) {
  if (n_dims(t) < 2) return false;
  const std::string& name = t.name;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  bool q = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
  q &= !has("_norm.weight");
  q &= !has("ffn_gate_inp.weight");
  q &= !has("ffn_gate_tid2eid.weight");
  q &= !has("altup") && !has("laurel") && !has("per_layer_model_proj");
  q &= name != "position_embd.weight" && name != "token_types.weight";
  q &= !has("ssm_conv1d") && !has("shortconv.conv.weight");
  q &= !has("indexer.k_proj.weight") && !has("indexer.q_proj.weight");
  return q;
}

bool is_quantized(GgmlType t) { return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16; }

// llama.cpp's tensor_type_fallback.
GgmlType fallback(GgmlType target, uint64_t ncols) {
  const uint64_t qk = kernels::type_size(target).block_elems;
  if (ncols % qk == 0) return target;
  GgmlType r = target;
  switch (target) {
    case GgmlType::Q4_K: r = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: r = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: r = GgmlType::Q8_0; break;
    default: break;
  }
  if (ncols % kernels::type_size(r).block_elems != 0) r = GgmlType::F16;
  return r;
}

struct Override {
  std::string pattern;
  std::regex re;
  GgmlType type;
};

struct Plan {
  const gguf::TensorInfo* t;
  GgmlType from, to;
  uint64_t bytes_before, bytes_after;
  bool fell_back;
};

uint64_t type_bytes(GgmlType t, uint64_t n) {
  auto ts = kernels::type_size(t);
  return n / ts.block_elems * ts.block_bytes;
}

std::string report(const Options& opt, const PureType& pt, const std::vector<Plan>& plan, bool dry_run) {
  std::string j = "{\"input\":";
  json::append_string(j, opt.input);
  j += ",\"output\":";
  json::append_string(j, opt.output);
  j += ",\"type\":";
  json::append_string(j, pt.name);
  j += ",\"file_type\":";
  json::append_number(j, static_cast<uint64_t>(pt.ftype));
  j += dry_run ? ",\"dry_run\":true" : ",\"dry_run\":false";
  j += ",\"tensors\":[";
  uint64_t before = 0, after = 0, elems = 0, fallbacks = 0, changed = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Plan& p = plan[i];
    if (i) j += ',';
    j += "{\"name\":";
    json::append_string(j, p.t->name);
    j += ",\"shape\":[";
    for (size_t d = 0; d < p.t->ne.size(); ++d) {
      if (d) j += ',';
      json::append_number(j, p.t->ne[d]);
    }
    j += "],\"from\":";
    json::append_string(j, kernels::type_name(p.from));
    j += ",\"to\":";
    json::append_string(j, kernels::type_name(p.to));
    j += ",\"bytes_before\":";
    json::append_number(j, p.bytes_before);
    j += ",\"bytes\":";
    json::append_number(j, p.bytes_after);
    if (p.fell_back) j += ",\"fallback\":true";
    j += '}';
    before += p.bytes_before;
    after += p.bytes_after;
    elems += p.t->n_elements();
    fallbacks += p.fell_back;
    changed += p.from != p.to;
  }
  j += "],\"n_tensors\":";
  json::append_number(j, static_cast<uint64_t>(plan.size()));
  j += ",\"n_converted\":";
  json::append_number(j, changed);
  j += ",\"n_fallback\":";
  json::append_number(j, fallbacks);
  j += ",\"n_weights\":";
  json::append_number(j, elems);
  j += ",\"bytes_before\":";
  json::append_number(j, before);
  j += ",\"bytes_after\":";
  json::append_number(j, after);
  j += ",\"bits_per_weight_before\":";
  json::append_number(j, elems ? std::round(800.0 * before / elems) / 100 : 0.0);
  j += ",\"bits_per_weight\":";
  json::append_number(j, elems ? std::round(800.0 * after / elems) / 100 : 0.0);
  j += "}\n";
  return j;
}

void run(cli::Tool& tool, Options& opt) {
  const PureType& pt = parse_type("--type ", opt.type, true);
  std::vector<Override> overrides;
  for (const auto& s : opt.tensor_types) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      throw usage_error(fmt::format("--tensor-type {}: expected REGEX=TYPE", s));
    std::string pat = s.substr(0, eq);
    for (char& c : pat) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // as llama-quantize
    std::regex re;
    try {
      re = std::regex(pat);
    } catch (const std::regex_error& e) {
      throw usage_error(fmt::format("--tensor-type {}: bad regular expression: {}", s, e.what()));
    }
    overrides.push_back({pat, std::move(re), parse_type("--tensor-type " + s.substr(0, eq + 1), s.substr(eq + 1), false).type});
  }
  if (!opt.dry_run && opt.output.empty()) throw usage_error("OUT is required (or --dry-run)");

  gguf::File f = gguf::File::open(opt.input);
  f.validate_tensors();

  std::vector<Plan> plan;
  size_t n_fallback = 0;
  for (const auto& t : f.tensors()) {
    const GgmlType from = static_cast<GgmlType>(t.ggml_type);
    GgmlType to = from;
    bool fell_back = false;
    if (allows_quantization(t)) {
      to = pt.type;
      for (const auto& o : overrides)
        if (std::regex_search(t.name, o.re)) {
          to = o.type;
          break;
        }
      const GgmlType fb = is_quantized(to) ? fallback(to, t.ne[0]) : to;
      if (fb != to) {
        to = fb;
        fell_back = true;
        ++n_fallback;
      }
      if (to != from && !tensor::can_dequantize(from))
        throw input_error(fmt::format("tensor {}: type {} cannot be converted (loom reads F32, F16, BF16, Q4_0, Q4_1, "
                                      "Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)",
                                      t.name, kernels::type_name(from) ? kernels::type_name(from) : "?"),
                          opt.input);
    }
    plan.push_back({&t, from, to, f.tensor_bytes(t), type_bytes(to, t.n_elements()), fell_back});
  }

  // Tensors in llama.cpp's order (llama_model_loader's weight_name_comparer: by layer, the tensors
  // of no layer first, then by name), so that the file is byte for byte llama-quantize's.
  auto layer = [](const std::string& name) {
    int l = -1;
    std::sscanf(name.c_str(), "blk.%d.", &l);
    return l;
  };
  std::stable_sort(plan.begin(), plan.end(), [&](const Plan& a, const Plan& b) {
    const int la = layer(a.t->name), lb = layer(b.t->name);
    return la != lb ? la < lb : a.t->name < b.t->name;
  });
  if (n_fallback)
    tool.warn("{} of {} tensors have rows that are not whole blocks of their type and fell back as llama.cpp does "
              "(\"fallback\" in the report)",
              n_fallback, plan.size());
  if (opt.dry_run) {
    tool.out().write(report(opt, pt, plan, true));
    return;
  }

  gguf::Writer w(f.alignment());
  for (const auto& [key, v] : f.metadata()) {
    if (key == "general.quantization_version" || key == "general.file_type" || key == "split.no" ||
        key == "split.count" || key == "split.tensors.count")
      continue;
    w.set(key, v);
  }
  w.set("general.quantization_version", gguf::u32(2));
  w.set("general.file_type", gguf::u32(pt.ftype));

  ThreadPool pool(tool.common().threads);
  std::string out;
  for (const Plan& p : plan) {
    std::string_view src = f.tensor_data(*p.t);
    if (p.from == p.to) {
      w.add_tensor(p.t->name, p.t->ne, p.t->ggml_type, src);
      continue;
    }
    const uint64_t ncols = p.t->ne[0];
    const uint64_t nrows = p.t->n_elements() / ncols;
    const uint64_t src_row = type_bytes(p.from, ncols), dst_row = type_bytes(p.to, ncols);
    out.assign(p.bytes_after, '\0');
    const uint64_t per_task = std::max<uint64_t>(1, (uint64_t{1} << 16) / ncols);
    const size_t tasks = (nrows + per_task - 1) / per_task;
    pool.for_each(tasks, [&](size_t k) {
      thread_local std::vector<float> row;
      row.resize(ncols);
      const uint64_t r0 = k * per_task, r1 = std::min(nrows, r0 + per_task);
      for (uint64_t r = r0; r < r1; ++r) {
        tensor::dequantize_row(p.from, src.data() + r * src_row, row.data(), ncols);
        quant::quantize_row(p.to, row.data(), out.data() + r * dst_row, ncols);
      }
    });
    w.add_tensor(p.t->name, p.t->ne, static_cast<uint32_t>(p.to), out);
  }
  w.write(opt.output);
  tool.out().write(report(opt, pt, plan, false));
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("quantize",
                 "Convert a GGUF model's weights to another tensor type.\n\n"
                 "As llama-quantize --pure does: every weight matrix becomes TYPE (or the type of the first --tensor-type\n"
                 "pattern its name matches); norms, biases and other 1-D tensors keep their type. A matrix whose rows are\n"
                 "not a whole number of TYPE's blocks falls back as llama.cpp does (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to\n"
                 "Q8_0, else F16). The quantized bytes are identical to llama.cpp's (no importance matrix). Prints a JSON\n"
                 "report (per tensor: name, shape, from, to, bytes; totals and bits per weight) on stdout.\n"
                 "Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. Mixed presets (Q4_K_M ...)\n"
                 "and importance matrices are not supported yet.");
  Options opt;
  auto& app = tool.app();
  app.add_option("input", opt.input, "The GGUF model to convert")->type_name("IN.gguf")->required();
  app.add_option("output", opt.output, "The GGUF file to write (atomically: a temporary name renamed into place)")
      ->type_name("OUT.gguf");
  app.add_option("--type", opt.type, "Target type of the weight matrices: " + valid_types())
      ->type_name("TYPE")
      ->required();
  app.add_option("--tensor-type", opt.tensor_types,
                 "A type for the tensors whose name matches REGEX (searched, lower-cased as llama-quantize does); "
                 "repeatable, the first match wins (unlike llama-quantize, also with --type F32, F16 or BF16)")
      ->type_name("REGEX=TYPE")
      ->default_str("");
  app.add_flag("--dry-run", opt.dry_run, "Print the plan (the same JSON report) and write nothing");
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
