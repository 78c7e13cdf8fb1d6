// A file mapped read-only into memory (the model readers: GGUF, safetensors).
//
//   MappedFile m = MappedFile::open("model.safetensors");   // usage error: cannot open / not a
//   std::string_view bytes = m.bytes();                     // regular file; runtime: mmap failed
//
// Movable, not copyable; the mapping ends with the object.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace loom {

class MappedFile {
 public:
  MappedFile() = default;
  static MappedFile open(const std::string& path);
  MappedFile(MappedFile&& o) noexcept { *this = static_cast<MappedFile&&>(o); }
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::string_view bytes() const { return {static_cast<const char*>(map_), size_}; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace loom
