// Byte streams for every loom program: files, stdin/stdout, and zstd, streaming in constant memory.
//
//   Input::open("-")            stdin
//   Input::open("docs.jsonl")   a file; zstd-compressed input is detected by its magic bytes
//                               (28 b5 2f fd), whatever the name, and decompressed on the fly
//   Output::open("-")           stdout
//   Output::open("out.jsonl.zst")  written through zstd because of the ".zst" suffix
//
// Files are written atomically: bytes go to a temporary file next to the target, and only
// Output::close() renames it into place. An Output destroyed without close() (an error, Ctrl-C
// unwinding) removes its temporary file, so a half-written result never looks whole.
//
// Errors: a missing or unreadable input is a usage error (exit 2); a failed read or write is a
// runtime error (exit 1); writing to a closed pipe throws loom::BrokenPipe (a quiet exit 0).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace loom::io {

class Input {
 public:
  virtual ~Input() = default;
  // Opens `path` ("-" for stdin). Throws loom::Error.
  static std::unique_ptr<Input> open(const std::string& path);
  // An input over bytes in memory (tests, fuzzing); zstd data is decompressed as from a file.
  static std::unique_ptr<Input> from_memory(std::string data, std::string name = "<memory>");
  // Reads up to n bytes; returns 0 only at end of input.
  virtual size_t read(char* buf, size_t n) = 0;
  const std::string& name() const { return name_; }
  // Total bytes still to come when known before reading (an unread regular file), else 0.
  virtual size_t size_hint() const { return 0; }

 protected:
  std::string name_;
};

// Reads a whole input into memory (documents for chunking; small files).
std::string read_all(Input& in);

// The bytes of a whole file: mapped read-only when it is a large (4 MiB+), plain, uncompressed
// regular file (no copy), read and decompressed otherwise. Errors as Input::open. Movable, not copyable.
class FileBytes {
 public:
  static FileBytes load(const std::string& path);
  FileBytes() = default;
  FileBytes(FileBytes&& o) noexcept { *this = std::move(o); }
  FileBytes& operator=(FileBytes&& o) noexcept;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes();
  std::string_view view() const { return map_ ? std::string_view(static_cast<const char*>(map_), size_) : owned_; }

 private:
  std::string owned_;
  void* map_ = nullptr;
  size_t size_ = 0;
};

class Output {
 public:
  virtual ~Output() = default;
  // Opens `path` ("-" for stdout). A ".zst" suffix compresses with zstd (level 3).
  static std::unique_ptr<Output> open(const std::string& path);
  // Appends bytes; buffered.
  virtual void write(std::string_view bytes) = 0;
  // Pushes buffered bytes to the operating system (for zstd: ends the current block).
  virtual void flush() = 0;
  // Flushes, finishes the stream and (for files) renames the temporary file into place.
  // Must be called for the output to count as complete. Throws on a failed write.
  virtual void close() = 0;
  const std::string& name() const { return name_; }

 protected:
  std::string name_;
};

// Called by stream reads just before they would block waiting for more input (a pipe or terminal
// with nothing ready). Programs set it to flush their output, so results stream promptly without a
// write per record. Pass nullptr to clear.
void set_before_block(std::function<void()> hook);

// True when the zstd frame magic starts `bytes`.
bool is_zstd_magic(std::string_view bytes);

}  // namespace loom::io
