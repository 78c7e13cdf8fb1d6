#include "loom/io/stream.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "loom/core/error.h"

namespace loom::io {

namespace {

std::function<void()>& before_block_hook() {
  static std::function<void()> hook;
  return hook;
}

std::string errno_text(int err) { return std::strerror(err); }

// --------------------------------------------------------------------------------------------
// Plain file descriptors
// --------------------------------------------------------------------------------------------

class FdInput final : public Input {
 public:
  FdInput(int fd, std::string name, bool owned) : fd_(fd), owned_(owned) {
    name_ = std::move(name);
    struct stat st {};
    if (fstat(fd_, &st) == 0) {
      may_block_ = !S_ISREG(st.st_mode);
      if (S_ISREG(st.st_mode)) size_ = static_cast<size_t>(st.st_size);
    }
  }
  size_t size_hint() const override { return pushback_.empty() ? 0 : size_; }
  ~FdInput() override {
    if (owned_) ::close(fd_);
  }

  // Bytes pushed back after sniffing the magic.
  void unread(std::string bytes) { pushback_ = std::move(bytes); }

  size_t read(char* buf, size_t n) override {
    if (!pushback_.empty()) {
      size_t k = std::min(n, pushback_.size());
      std::memcpy(buf, pushback_.data(), k);
      pushback_.erase(0, k);
      return k;
    }
    if (may_block_ && before_block_hook()) {
      struct pollfd p {fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) == 0) before_block_hook()();
    }
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno == EINTR) continue;
      throw runtime_error(fmt::format("read failed: {}", errno_text(errno)), name_);
    }
  }

 private:
  int fd_;
  bool owned_;
  bool may_block_ = false;
  size_t size_ = 0;
  std::string pushback_;
};

class MemoryInput final : public Input {
 public:
  MemoryInput(std::string data, std::string name) : data_(std::move(data)) { name_ = std::move(name); }
  size_t read(char* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

class ZstdInput final : public Input {
 public:
  explicit ZstdInput(std::unique_ptr<Input> src) : src_(std::move(src)) {
    name_ = src_->name();
    ds_ = ZSTD_createDStream();
    if (!ds_) throw runtime_error("out of memory creating a zstd stream", name_);
    ZSTD_initDStream(ds_);
    inbuf_.resize(ZSTD_DStreamInSize());
  }
  ~ZstdInput() override { ZSTD_freeDStream(ds_); }

  size_t read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (in_.pos == in_.size) {
        size_t got = src_->read(inbuf_.data(), inbuf_.size());
        if (got == 0) {
          if (!frame_done_) throw input_error("truncated zstd stream", name_);
          return 0;
        }
        in_ = ZSTD_inBuffer{inbuf_.data(), got, 0};
      }
      size_t r = ZSTD_decompressStream(ds_, &out, &in_);
      if (ZSTD_isError(r)) throw input_error(fmt::format("corrupt zstd stream: {}", ZSTD_getErrorName(r)), name_);
      frame_done_ = (r == 0);
    }
    return out.pos;
  }

 private:
  std::unique_ptr<Input> src_;
  ZSTD_DStream* ds_ = nullptr;
  std::vector<char> inbuf_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  bool frame_done_ = true;
};

// --------------------------------------------------------------------------------------------
// Outputs
// --------------------------------------------------------------------------------------------

// Writes all of `data` to fd, mapping EPIPE to BrokenPipe and other failures to runtime errors.
void write_fully(int fd, const char* data, size_t n, const std::string& name) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE) throw BrokenPipe{};
      throw runtime_error(fmt::format("write failed: {}", errno_text(errno)), name);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

// A byte sink under the buffered layer: fd or zstd-over-fd.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void put(const char* p, size_t n) = 0;
  virtual void flush() = 0;
  virtual void finish() = 0;
};

class FdSink final : public Sink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  void put(const char* p, size_t n) override { write_fully(fd_, p, n, name_); }
  void flush() override {}
  void finish() override {}

 private:
  int fd_;
  std::string name_;
};

class ZstdSink final : public Sink {
 public:
  ZstdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {
    cs_ = ZSTD_createCCtx();
    if (!cs_) throw runtime_error("out of memory creating a zstd stream", name_);
    ZSTD_CCtx_setParameter(cs_, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cs_, ZSTD_c_checksumFlag, 1);
    outbuf_.resize(ZSTD_CStreamOutSize());
  }
  ~ZstdSink() override { ZSTD_freeCCtx(cs_); }

  void put(const char* p, size_t n) override { run(p, n, ZSTD_e_continue); }
  void flush() override { run(nullptr, 0, ZSTD_e_flush); }
  void finish() override { run(nullptr, 0, ZSTD_e_end); }

 private:
  void run(const char* p, size_t n, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{p, n, 0};
    for (;;) {
      ZSTD_outBuffer out{outbuf_.data(), outbuf_.size(), 0};
      size_t left = ZSTD_compressStream2(cs_, &out, &in, mode);
      if (ZSTD_isError(left)) throw runtime_error(fmt::format("zstd: {}", ZSTD_getErrorName(left)), name_);
      write_fully(fd_, outbuf_.data(), out.pos, name_);
      bool done = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
      if (done) break;
    }
  }

  int fd_;
  std::string name_;
  ZSTD_CCtx* cs_ = nullptr;
  std::vector<char> outbuf_;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

class BufferedOutput final : public Output {
 public:
  static constexpr size_t kBuffer = 256 * 1024;

  // fd: open descriptor; tmp/final: for atomic files (empty for stdout and devices); close_fd:
  // the descriptor is this output's to close (a device or FIFO opened by path).
  BufferedOutput(int fd, std::string name, bool zstd, std::string tmp, std::string final_path, bool close_fd = false)
      : fd_(fd), tmp_(std::move(tmp)), final_(std::move(final_path)), close_fd_(close_fd) {
    name_ = std::move(name);
    if (zstd)
      sink_ = std::make_unique<ZstdSink>(fd_, name_);
    else
      sink_ = std::make_unique<FdSink>(fd_, name_);
    buf_.reserve(kBuffer + 4096);
  }

  ~BufferedOutput() override {
    if (!closed_ && !tmp_.empty()) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    } else if (!closed_ && close_fd_) {
      ::close(fd_);
    }
  }

  void write(std::string_view bytes) override {
    if (buf_.size() + bytes.size() > kBuffer || bytes.size() >= kBuffer / 4) {
      drain();
      if (bytes.size() >= kBuffer / 4) {  // large pieces go out directly, without a copy
        sink_->put(bytes.data(), bytes.size());
        return;
      }
    }
    buf_.append(bytes);
  }

  void flush() override {
    drain();
    sink_->flush();
  }

  void close() override {
    if (closed_) return;
    drain();
    sink_->finish();
    if (!tmp_.empty()) {
      if (::fsync(fd_) != 0 && errno != EINVAL)
        throw runtime_error(fmt::format("write failed: {}", errno_text(errno)), name_);
      if (::close(fd_) != 0) throw runtime_error(fmt::format("write failed: {}", errno_text(errno)), name_);
      closed_ = true;
      if (::rename(tmp_.c_str(), final_.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp_.c_str());
        throw runtime_error(fmt::format("cannot rename into place: {}", errno_text(err)), name_);
      }
    } else {
      closed_ = true;
      if (close_fd_ && ::close(fd_) != 0) throw runtime_error(fmt::format("write failed: {}", errno_text(errno)), name_);
    }
  }

 private:
  void drain() {
    if (buf_.empty()) return;
    sink_->put(buf_.data(), buf_.size());
    buf_.clear();
  }

  int fd_;
  std::string tmp_, final_;
  bool close_fd_ = false;
  std::unique_ptr<Sink> sink_;
  std::string buf_;
  bool closed_ = false;
};

std::string temp_name_for(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::random_device rd;
  return fmt::format("{}.{}.tmp-{}-{:08x}", dir, base, ::getpid(), rd());
}

}  // namespace

void set_before_block(std::function<void()> hook) { before_block_hook() = std::move(hook); }

bool is_zstd_magic(std::string_view b) {
  return b.size() >= 4 && static_cast<unsigned char>(b[0]) == 0x28 && static_cast<unsigned char>(b[1]) == 0xB5 &&
         static_cast<unsigned char>(b[2]) == 0x2F && static_cast<unsigned char>(b[3]) == 0xFD;
}

std::unique_ptr<Input> Input::open(const std::string& path) {
  std::unique_ptr<FdInput> raw;
  if (path == "-") {
    raw = std::make_unique<FdInput>(0, "<stdin>", false);
  } else {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw usage_error(fmt::format("{}: {}", path, errno_text(errno)));
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw usage_error(fmt::format("{}: is a directory", path));
    }
    raw = std::make_unique<FdInput>(fd, path, true);
  }
  // Sniff the first bytes for the zstd magic.
  char head[4];
  size_t got = 0;
  while (got < 4) {
    size_t r = raw->read(head + got, 4 - got);
    if (r == 0) break;
    got += r;
  }
  std::string sniffed(head, got);
  bool zstd = is_zstd_magic(sniffed);
  raw->unread(std::move(sniffed));
  if (zstd) return std::make_unique<ZstdInput>(std::move(raw));
  return raw;
}

std::unique_ptr<Input> Input::from_memory(std::string data, std::string name) {
  bool zstd = is_zstd_magic(data);
  auto in = std::make_unique<MemoryInput>(std::move(data), std::move(name));
  if (zstd) return std::make_unique<ZstdInput>(std::move(in));
  return in;
}

std::string read_all(Input& in) {
  std::string out;
  if (size_t hint = in.size_hint()) {  // a regular file: one allocation, usually one read
    out.resize(hint);
    size_t got = 0;
    while (got < hint) {
      size_t r = in.read(out.data() + got, hint - got);
      if (r == 0) break;
      got += r;
    }
    out.resize(got);
    if (got < hint) return out;
  }
  size_t chunk = 1 << 16;
  for (;;) {
    size_t old = out.size();
    out.resize(old + chunk);
    size_t got = in.read(out.data() + old, chunk);
    out.resize(old + got);
    if (got == 0) break;
    if (chunk < (1u << 22)) chunk *= 2;
  }
  return out;
}

FileBytes FileBytes::load(const std::string& path) {
  FileBytes f;
  int fd = path == "-" ? -1 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  // Mapping pays off for large files only: for small ones the page faults and the unmapping (a
  // TLB flush on every thread) cost more than one read() copy.
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= (4 << 20)) {
    void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m != MAP_FAILED) {
      if (!is_zstd_magic(std::string_view(static_cast<const char*>(m), 4))) {
        ::madvise(m, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
        ::close(fd);
        f.map_ = m;
        f.size_ = static_cast<size_t>(st.st_size);
        return f;
      }
      ::munmap(m, static_cast<size_t>(st.st_size));
    }
  }
  if (fd >= 0) ::close(fd);
  auto in = Input::open(path);  // stdin, pipes, tiny or compressed files; reports open errors
  f.owned_ = read_all(*in);
  return f;
}

FileBytes& FileBytes::operator=(FileBytes&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, size_);
    owned_ = std::move(o.owned_);
    map_ = o.map_;
    size_ = o.size_;
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

FileBytes::~FileBytes() {
  if (map_) ::munmap(map_, size_);
}

std::unique_ptr<Output> Output::open(const std::string& path) {
  if (path == "-") return std::make_unique<BufferedOutput>(1, "<stdout>", false, "", "");
  // A path that names something other than a regular file (/dev/null, a FIFO, a terminal) is
  // written as it is: renaming a finished file onto it would replace the device or pipe itself.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw runtime_error(fmt::format("cannot open: {}", errno_text(errno)), path);
    return std::make_unique<BufferedOutput>(fd, path, ends_with(path, ".zst"), "", "", true);
  }
  std::string tmp = temp_name_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw runtime_error(fmt::format("cannot create: {}", errno_text(errno)), path);
  return std::make_unique<BufferedOutput>(fd, path, ends_with(path, ".zst"), tmp, path);
}

}  // namespace loom::io
