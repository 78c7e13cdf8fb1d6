// Fuzz target: the Hugging Face folder importer (lib/quant/hf_import.h). The first byte picks the
// file of the tiny qwen2 checkpoint (tests/reference/golden/hf_import/qwen2) that the rest of the
// input replaces: config.json, tokenizer_config.json, tokenizer.json or a
// model.safetensors.index.json beside the real weights. Any bytes must convert or be refused with
// loom::Error: no crash, hang, leak, or exception of another kind.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "loom/core/error.h"
#include "loom/quant/hf_import.h"

namespace fs = std::filesystem;

namespace {

const char* const kFiles[] = {"config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors.index.json"};

// A private copy of the checkpoint (made once), so that each input changes one file of it.
const fs::path& folder() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("loom-fuzz-hf-" + std::to_string(::getpid()));
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(fs::path(LOOM_SOURCE_DIR) / "tests/reference/golden/hf_import/qwen2"))
      fs::copy_file(e.path(), d / e.path().filename(), fs::copy_options::overwrite_existing);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("loom-fuzz-hf-" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

void put(const fs::path& p, std::string_view bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const fs::path& dir = folder();
  const fs::path file = dir / kFiles[data[0] % 4];
  std::string original;
  if (fs::exists(file)) {
    std::ifstream in(file, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  put(file, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  const std::string out = (dir / "out.gguf").string();
  try {
    loom::quant::import_hf(dir.string(), out, loom::kernels::GgmlType::F16);
  } catch (const loom::Error&) {
  }
  if (original.empty()) {
    fs::remove(file);
  } else {
    put(file, original);
  }
  fs::remove(out);
  return 0;
}
