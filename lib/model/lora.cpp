#include "loom/model/lora.h"

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/gguf/writer.h"
#include "loom/tensor/dequant.h"

namespace loom::model {

std::string LoraPair::tensor() const { return fmt::format("blk.{}.{}.weight", layer, module_tensor(module)); }

namespace {

// "blk.<l>.<stem>.weight" -> layer, module; false for any other name
bool parse_linear(const std::string& name, uint32_t* layer, Module* module) {
  unsigned l = 0;
  int used = 0;
  if (std::sscanf(name.c_str(), "blk.%u.%n", &l, &used) != 1 || used == 0) return false;
  const std::string rest = name.substr(static_cast<size_t>(used));
  for (Module m : kModules)
    if (rest == std::string(module_tensor(m)) + ".weight") {
      *layer = l;
      *module = m;
      return true;
    }
  return false;
}

std::vector<float> to_f32(const gguf::File& f, const gguf::TensorInfo& t, const std::string& path) {
  const auto type = static_cast<kernels::GgmlType>(t.ggml_type);
  if (!tensor::can_dequantize(type))
    throw input_error(fmt::format("adapter tensor {} has ggml type {}, which loom does not read", t.name, t.ggml_type), path);
  std::vector<float> v(t.n_elements());
  tensor::dequantize_row(type, f.tensor_data(t).data(), v.data(), v.size());
  return v;
}

}  // namespace

LoraAdapter LoraAdapter::read(const std::string& path, const DecoderWeights& base) {
  return from_gguf(gguf::File::open(path), path, base);
}

LoraAdapter LoraAdapter::from_gguf(const gguf::File& f, const std::string& path, const DecoderWeights& base) {
  f.validate_tensors();
  if (f.get_string("general.type").value_or("") != "adapter" || f.get_string("adapter.type").value_or("") != "lora")
    throw input_error("not a LoRA adapter (general.type must be \"adapter\" and adapter.type \"lora\")", path);
  LoraAdapter a;
  a.arch = f.get_string("general.architecture").value_or("");
  if (a.arch != base.cfg.arch_name)
    throw input_error(fmt::format("the adapter is for a {} model, the base model is {}", a.arch.empty() ? "(unnamed)" : a.arch,
                                  base.cfg.arch_name),
                      path);
  if (const gguf::Value* v = f.find("adapter.lora.alpha")) a.alpha = static_cast<float>(v->as_float().value_or(0));
  a.base_name = f.get_string("general.base_model.0.name").value_or(f.get_string("loom.lora.base_name").value_or(""));
  for (const auto& [k, v] : f.metadata())
    if (k.rfind("loom.", 0) == 0) a.extra.emplace_back(k, v);
  // pair the .lora_a / .lora_b tensors by their base tensor
  struct Half {
    const gguf::TensorInfo* a = nullptr;
    const gguf::TensorInfo* b = nullptr;
  };
  std::vector<std::pair<std::string, Half>> halves;
  auto slot = [&](const std::string& name) -> Half& {
    for (auto& [n, h] : halves)
      if (n == name) return h;
    halves.emplace_back(name, Half{});
    return halves.back().second;
  };
  for (const auto& t : f.tensors()) {
    const std::string& n = t.name;
    auto ends = [&](const char* s) { return n.size() > std::strlen(s) && n.compare(n.size() - std::strlen(s), std::string::npos, s) == 0; };
    if (ends(".lora_a"))
      slot(n.substr(0, n.size() - 7)).a = &t;
    else if (ends(".lora_b"))
      slot(n.substr(0, n.size() - 7)).b = &t;
    else if (ends("_norm.weight"))
      continue;  // llama.cpp ignores norm vectors in adapters too
    else
      throw input_error(fmt::format("adapter tensor {} is neither a .lora_a nor a .lora_b", n), path);
  }
  for (const auto& [name, h] : halves) {
    if (!h.a || !h.b) throw input_error(fmt::format("adapter tensor {} has only one of .lora_a and .lora_b", name), path);
    LoraPair p;
    if (!parse_linear(name, &p.layer, &p.module))
      throw input_error(fmt::format("adapter tensor {}: loom applies adapters to the blocks' linear layers only", name), path);
    const Weight* w = base.find(name);
    if (!w || p.layer >= base.layers.size())
      throw input_error(fmt::format("adapter tensor {} does not exist in the base model (an adapter for another model?)", name),
                        path);
    if (h.a->ne.size() != 2 || h.b->ne.size() != 2 || h.a->ne[0] != w->cols || h.b->ne[1] != w->rows || h.a->ne[1] != h.b->ne[0])
      throw input_error(fmt::format("adapter tensors for {} do not fit its {}x{} shape (an adapter for another model?)", name,
                                    w->cols, w->rows),
                        path);
    p.in = w->cols;
    p.out = w->rows;
    p.rank = h.a->ne[1];
    if (p.rank == 0) throw input_error(fmt::format("adapter tensors for {} have rank 0", name), path);
    p.a = to_f32(f, *h.a, path);
    p.b = to_f32(f, *h.b, path);
    a.pairs.push_back(std::move(p));
  }
  if (a.pairs.empty()) throw input_error("the adapter has no LoRA tensors", path);
  return a;
}

void LoraAdapter::write(const std::string& path) const {
  gguf::Writer w;
  w.set_string("general.architecture", arch);
  w.set_string("general.type", "adapter");
  w.set_string("adapter.type", "lora");
  w.set("adapter.lora.alpha", gguf::f32(alpha));
  if (!base_name.empty()) w.set_string("loom.lora.base_name", base_name);
  for (const auto& [k, v] : extra)
    if (k != "loom.lora.base_name") w.set(k, v);
  for (const LoraPair& p : pairs) {
    const std::string n = p.tensor();
    w.add_tensor(n + ".lora_a", {p.in, p.rank}, 0,
                 std::string_view(reinterpret_cast<const char*>(p.a.data()), p.a.size() * sizeof(float)));
    w.add_tensor(n + ".lora_b", {p.rank, p.out}, 0,
                 std::string_view(reinterpret_cast<const char*>(p.b.data()), p.b.size() * sizeof(float)));
  }
  w.write(path);
}

}  // namespace loom::model
