// Record I/O layer: JSON writing, records, the JSONL reader, zstd and atomic outputs.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "loom/core/error.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/io/stream.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_records(const std::string& data, std::vector<std::string>* errors = nullptr) {
  auto in = io::Input::from_memory(data, "mem.jsonl");
  io::JsonlReader reader(*in);
  io::Record rec;
  std::vector<std::string> out;
  for (;;) {
    try {
      if (!reader.next(rec)) break;
      out.push_back(rec.to_json());
    } catch (const Error& e) {
      if (!errors) throw;
      errors->push_back(e.located());
    }
  }
  return out;
}

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("loom-test-io-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

// ---- JSON writing ----------------------------------------------------------------------------

TEST(Json, EscapesControlQuotesBackslash) {
  std::string out;
  json::append_string(out, std::string("a\"b\\c\n\t\r\b\f\x01\x1f" "caf\xc3\xa9/"));
  EXPECT_EQ(out, R"("a\"b\\c\n\t\r\b\f\u0001\u001fcafé/")");
}

TEST(Json, RejectsInvalidUtf8) {
  std::string out;
  for (std::string bad : {"\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf5\x80\x80\x80", "ok\xff", "\xe2\x82"}) {
    EXPECT_FALSE(json::valid_utf8(bad)) << bad;
    EXPECT_THROW(json::append_string(out, bad), Error);
  }
  EXPECT_EQ(json::first_invalid_utf8("ab\xc3(x"), 2u);
  EXPECT_EQ(json::first_invalid_utf8("\xf0\x9f\x98\x80z"), 5u);  // valid 4-byte emoji: no error
}

TEST(Json, ShortestRoundTripNumbers) {
  auto num = [](auto v) { std::string s; json::append_number(s, v); return s; };
  EXPECT_EQ(num(0.1), "0.1");
  EXPECT_EQ(num(1e-7), "1e-07");
  EXPECT_EQ(num(0.1f), "0.1");
  EXPECT_EQ(num(3.0), "3");
  EXPECT_EQ(num(int64_t{-42}), "-42");
  EXPECT_EQ(num(std::numeric_limits<uint64_t>::max()), "18446744073709551615");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    double d = std::ldexp(static_cast<double>(rng()) / 1.8446744073709552e19, static_cast<int>(rng() % 200) - 100);
    EXPECT_EQ(std::strtod(num(d).c_str(), nullptr), d);
  }
  EXPECT_THROW(num(std::nan("")), Error);
  EXPECT_THROW(num(std::numeric_limits<float>::infinity()), Error);
}

TEST(Json, WriterNestsWithCommas) {
  json::Writer w;
  w.begin_object();
  w.key("a"); w.value(1);
  w.key("b"); w.begin_array(); w.value(1.5f); w.value("x"); w.null(); w.begin_object(); w.end_object(); w.end_array();
  w.key("c"); w.value(true);
  w.end_object();
  EXPECT_EQ(w.str(), R"({"a":1,"b":[1.5,"x",null,{}],"c":true})");
}

// ---- Records ---------------------------------------------------------------------------------

TEST(Record, UnknownFieldsPassThroughExactly) {
  std::string in = R"({ "id" : "x", "n": 1.0, "big": 123456789012345678901234567890, "e": 1E+5,)"
                   R"( "s": "a\u00e9\n\/", "meta": { "k" : [1, 2 ,"a b"] }, "nil": null })";
  io::Record r = io::Record::parse(in);
  EXPECT_EQ(r.to_json(), R"({"id":"x","n":1.0,"big":123456789012345678901234567890,"e":1E+5,)"
                         R"("s":"a\u00e9\n\/","meta":{"k":[1,2,"a b"]},"nil":null})");
  EXPECT_EQ(r.size(), 7u);
  EXPECT_EQ(*r.get_string("s"), "a\xc3\xa9\n/");
  EXPECT_FALSE(r.get_string("nil").has_value());
  EXPECT_FALSE(r.get_string("missing").has_value());
  EXPECT_EQ(*r.get_number("e"), 1e5);
}

TEST(Record, TypedGettersNameTheFieldOnWrongType) {
  io::Record r = io::Record::parse(R"({"text": 5, "n": "5"})");
  try {
    r.get_string("text");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::BadInput);
    EXPECT_NE(std::string(e.what()).find("\"text\" must be a string, not a number"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.get_number("n"), Error);
  EXPECT_THROW(r.get_int("n"), Error);
}

TEST(Record, SetReplacesInPlaceAndAppendsNew) {
  io::Record r = io::Record::parse(R"({"a":1,"text":"old","z":[]})");
  r.set("text", "new \"quoted\"");
  r.set("n", int64_t{3});
  r.set("f", 0.25);
  r.set("ok", true);
  EXPECT_TRUE(r.erase("z"));
  EXPECT_FALSE(r.erase("z"));
  EXPECT_EQ(r.to_json(), R"({"a":1,"text":"new \"quoted\"","n":3,"f":0.25,"ok":true})");
}

TEST(Record, EscapedKeysAreFound) {
  io::Record r = io::Record::parse(R"({"te\u0078t":"v"})");
  EXPECT_EQ(*r.get_string("text"), "v");
  EXPECT_EQ(r.key(0), "text");
  EXPECT_EQ(r.to_json(), R"({"te\u0078t":"v"})");  // key text untouched
}

TEST(Record, RejectsNonObjectsAndMalformedJson) {
  for (const char* bad : {"[1,2]", "\"s\"", "3", "{", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":\"\\q\"}",
                          "{\"a\":tru}", "{\"a\":1} x", "{\"a\":\"\x01\"}", "{\"a\":01}"}) {
    EXPECT_THROW(io::Record::parse(bad), Error) << bad;
  }
}

// ---- JSONL reader ----------------------------------------------------------------------------

TEST(JsonlReader, AKeyWithALoneSurrogateIsALineError) {
  // A value may hold a lone surrogate escape (it is refused only when decoded); a key may not,
  // since every field lookup decodes keys.
  std::vector<std::string> errors;
  auto recs = read_records("{\"a\\ud83d\":1}\n{\"v\":\"\\ud83d\"}\n{\"a\\u00e9\":2}\n", &errors);
  ASSERT_EQ(recs.size(), 2u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("mem.jsonl:1:", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("lone surrogate"), std::string::npos) << errors[0];
}

TEST(JsonlReader, BomCrlfBlankLinesAndMissingFinalNewline) {
  auto recs = read_records("\xEF\xBB\xBF{\"a\":1}\r\n\r\n   \n\t\n{\"b\":2}\r\n{\"c\":3}");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0], R"({"a":1})");
  EXPECT_EQ(recs[2], R"({"c":3})");
}

TEST(JsonlReader, ErrorsNameFileAndLineAndReadingGoesOn) {
  std::vector<std::string> errors;
  auto recs = read_records("{\"a\":1}\n\n{oops}\n[1]\n{\"b\":2}\n", &errors);
  ASSERT_EQ(recs.size(), 2u);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("mem.jsonl:3: not valid JSON at column 2: expected a string key", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("mem.jsonl:4: expected a JSON object", 0), 0u) << errors[1];
}

TEST(JsonlReader, InvalidUtf8IsALineError) {
  std::vector<std::string> errors;
  auto recs = read_records("{\"a\":\"ok\"}\n{\"a\":\"\xff\"}\n", &errors);
  EXPECT_EQ(recs.size(), 1u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("mem.jsonl:2:"), std::string::npos);
  EXPECT_NE(errors[0].find("UTF-8"), std::string::npos);
}

TEST(JsonlReader, LinesLongerThanTheBuffer) {
  std::string big(5 << 20, 'x');  // 5 MiB string value, more than the 1 MiB read buffer
  std::string data = "{\"a\":1}\n{\"big\":\"" + big + "\"}\n{\"c\":3}\n";
  auto recs = read_records(data);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].size(), big.size() + 10);
  EXPECT_EQ(recs[2], R"({"c":3})");
}

TEST(JsonlReader, ManyLinesAcrossBufferBoundaries) {
  std::string data;
  for (int i = 0; i < 200000; ++i) data += "{\"i\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 37, 'p') + "\"}\n";
  auto recs = read_records(data);
  ASSERT_EQ(recs.size(), 200000u);
  for (int i : {0, 1, 4095, 77777, 199999}) EXPECT_EQ(io::Record::parse(recs[i]).get_int("i"), i);
}

// ---- streams: zstd and atomic files -----------------------------------------------------------

TEST(Streams, ZstdRoundTripByNameAndMagic) {
  fs::path dir = temp_dir();
  std::string payload;
  for (int i = 0; i < 50000; ++i) payload += "{\"i\":" + std::to_string(i) + "}\n";
  {
    auto out = io::Output::open((dir / "x.jsonl.zst").string());
    for (size_t off = 0; off < payload.size(); off += 1000) out->write(std::string_view(payload).substr(off, 1000));
    out->close();
  }
  std::string compressed = slurp(dir / "x.jsonl.zst");
  EXPECT_TRUE(io::is_zstd_magic(compressed));
  EXPECT_LT(compressed.size(), payload.size() / 4);
  fs::rename(dir / "x.jsonl.zst", dir / "renamed.jsonl");  // detection is by magic, not name
  auto in = io::Input::open((dir / "renamed.jsonl").string());
  EXPECT_EQ(io::read_all(*in), payload);
  // two concatenated frames read as one stream
  auto two = io::Input::from_memory(compressed + compressed);
  EXPECT_EQ(io::read_all(*two), payload + payload);
  fs::remove_all(dir);
}

TEST(Streams, TruncatedZstdIsAnError) {
  fs::path dir = temp_dir();
  {
    auto out = io::Output::open((dir / "t.zst").string());
    for (int i = 0; i < 10000; ++i) out->write("some text that compresses\n");
    out->close();
  }
  std::string c = slurp(dir / "t.zst");
  auto in = io::Input::from_memory(c.substr(0, c.size() / 2));
  EXPECT_THROW(io::read_all(*in), Error);
  fs::remove_all(dir);
}

TEST(Streams, DevicesAndPipesAreWrittenNotReplaced) {
  // A finished file renamed onto /dev/null would replace the device for every program on the
  // machine; a FIFO would lose its reader. Such paths are written directly.
  struct stat st;
  if (::stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)) {
    for (int round = 0; round < 2; ++round) {
      auto out = io::Output::open("/dev/null");
      out->write("{\"a\":1}\n");
      out->close();
    }
    ASSERT_EQ(::stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null is no longer a character device";
  } else {
    std::printf("[   note   ] this machine's /dev/null is not a character device: that part is not checked\n");
  }

  const std::string fifo = (std::filesystem::temp_directory_path() / ("loom-fifo-" + std::to_string(::getpid()))).string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // a reader, so that opening for writing does not block
  ASSERT_GE(rd, 0);
  {
    auto out = io::Output::open(fifo);
    out->write("through the pipe\n");
    out->close();
  }
  char buf[64] = {};
  const ssize_t got = ::read(rd, buf, sizeof buf - 1);
  ::close(rd);
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  std::remove(fifo.c_str());
  EXPECT_EQ(std::string(buf, got > 0 ? static_cast<size_t>(got) : 0), "through the pipe\n");
}

TEST(Streams, FilesAppearOnlyWhenClosed) {
  fs::path dir = temp_dir();
  fs::path target = dir / "out.jsonl";
  {
    auto out = io::Output::open(target.string());
    out->write("{\"a\":1}\n");
    out->flush();
    EXPECT_FALSE(fs::exists(target));
    // destroyed without close(): nothing at the target, no temporary left behind
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(fs::is_empty(dir));
  {
    auto out = io::Output::open(target.string());
    out->write("{\"a\":1}\n");
    out->close();
  }
  EXPECT_EQ(slurp(target), "{\"a\":1}\n");
  fs::remove_all(dir);
}

TEST(Streams, MissingInputIsAUsageError) {
  try {
    io::Input::open("/nonexistent/file.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_status(), 2);
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos);
  }
}

TEST(Streams, FullDiskIsARuntimeError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  int fd = ::open("/dev/full", O_WRONLY);
  ASSERT_GE(fd, 0);
  int saved = ::dup(1);
  ::dup2(fd, 1);
  bool threw = false;
  try {
    auto out = io::Output::open("-");
    out->write(std::string(1 << 20, 'x'));
    out->close();
  } catch (const Error& e) {
    threw = e.exit_status() == 1 && std::string(e.what()).find("No space left") != std::string::npos;
  }
  ::dup2(saved, 1);
  ::close(saved);
  ::close(fd);
  EXPECT_TRUE(threw);
}

TEST(Streams, FileBytesMapsLargeFilesAndReadsTheRest) {
  fs::path dir = temp_dir();
  std::string big(6 << 20, 'a');  // mapped
  for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  { std::ofstream(dir / "big.txt", std::ios::binary) << big; }
  { std::ofstream(dir / "small.txt", std::ios::binary) << "small"; }
  {
    auto out = io::Output::open((dir / "big.txt.zst").string());
    out->write(big);
    out->close();
  }
  EXPECT_EQ(io::FileBytes::load((dir / "big.txt").string()).view(), big);
  EXPECT_EQ(io::FileBytes::load((dir / "small.txt").string()).view(), "small");
  EXPECT_EQ(io::FileBytes::load((dir / "big.txt.zst").string()).view(), big);  // decompressed
  io::FileBytes moved = io::FileBytes::load((dir / "big.txt").string());
  io::FileBytes other = std::move(moved);
  EXPECT_EQ(other.view().size(), big.size());
  EXPECT_THROW(io::FileBytes::load((dir / "missing.txt").string()), Error);
  fs::remove_all(dir);
}
