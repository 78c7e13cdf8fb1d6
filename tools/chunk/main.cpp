// loom-chunk — split documents into chunk records.
//
// Reads files and folders (recursively; known text extensions), doc records on stdin, or raw text
// (--raw), and writes one record per chunk: id, doc_id, chunk, text, start, end, section, plus the
// doc record's other fields. The splitting itself lives in lib/text/chunk.h.
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <set>
#include <thread>

#include "loom/cli/tool.h"
#include "loom/io/json.h"
#include "loom/io/jsonl.h"
#include "loom/text/chunk.h"
#include "loom/text/html.h"
#include "loom/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace loom;

namespace {

enum class Format { Auto, Text, Markdown, Html };

struct Options {
  std::vector<std::string> inputs;
  text::ChunkStrategy strategy = text::ChunkStrategy::Recursive;
  size_t size = 1000;
  size_t overlap = 200;
  std::string separators;  // JSON array, empty = defaults
  std::string field = "text";
  bool raw = false;
  std::string doc_id = "stdin";
  Format format = Format::Auto;
  std::string ext = "txt,md,markdown,rst,html,htm";
  bool by_tokens = false;
  std::string tokenizer;
};

// One document to chunk.
struct Doc {
  std::string doc_id;
  std::string text;
  std::string where;  // file name for errors
  size_t line = 0;    // record line for errors (0: whole file)
  Format format = Format::Text;
  io::Record rest;    // the doc record's other fields (passed through)
  bool load = false;  // text is still to be read from the file `where` (done on a worker thread)
  size_t load_size = 0;
  size_t n_bytes = 0;  // size of the document's text, for progress
  // results
  std::string out;
  size_t n_chunks = 0;
  std::exception_ptr error;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Format format_for_path(const std::string& path) {
  std::string e = lower(fs::path(path).extension().string());
  if (e == ".md" || e == ".markdown") return Format::Markdown;
  if (e == ".html" || e == ".htm") return Format::Html;
  return Format::Text;
}

// Parses a JSON array of strings (the --separators value).
std::vector<std::string> parse_separators(const std::string& json_array) {
  io::Record r;
  try {
    r = io::Record::parse("{\"s\":" + json_array + "}");
  } catch (const Error&) {
    throw usage_error("--separators: expected a JSON array of strings, e.g. '[\"\\n\\n\", \"\\n\", \" \", \"\"]'");
  }
  std::string_view a = *r.raw("s");
  if (a.empty() || a[0] != '[') throw usage_error("--separators: expected a JSON array of strings");
  std::vector<std::string> out;
  size_t i = 1;
  while (i < a.size() && a[i] != ']') {
    if (a[i] == ',') { ++i; continue; }
    if (a[i] != '"') throw usage_error("--separators: every separator must be a string");
    size_t j = i + 1;
    while (a[j] != '"') j += a[j] == '\\' ? 2 : 1;
    std::string s;
    json::unescape_string(a.substr(i, j + 1 - i), s);
    out.push_back(std::move(s));
    i = j + 1;
  }
  if (out.empty()) throw usage_error("--separators: the list is empty");
  return out;
}

size_t line_of_offset(std::string_view text, size_t off) {  // 1-based
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(off), '\n'));
}

// Chunks one document into doc.out (JSON lines). Runs on worker threads.
void chunk_doc(Doc& doc, const text::ChunkParams& params) {
  try {
    io::FileBytes file;  // a file's bytes, mapped: no copy
    std::string_view text = doc.text;
    if (doc.load) {
      file = io::FileBytes::load(doc.where);
      text = file.view();
    }
    doc.n_bytes = text.size();
    size_t bad = json::first_invalid_utf8(text);
    if (bad != text.size()) {
      if (doc.line) throw input_error(fmt::format("invalid UTF-8 in the text at byte {}", bad), doc.where, doc.line);
      throw input_error(fmt::format("invalid UTF-8 at byte {}", bad), doc.where, line_of_offset(text, bad));
    }
    std::vector<text::Heading> headings;
    std::string title;
    if (doc.format == Format::Html) {
      text::HtmlDocument h = text::html_to_text(text);
      doc.text = std::move(h.text);
      text = doc.text;
      headings = std::move(h.headings);
      title = std::move(h.title);
    } else if (doc.format == Format::Markdown && params.strategy != text::ChunkStrategy::Markdown) {
      headings = text::markdown_headings(text);
    }
    std::vector<text::Chunk> chunks = text::chunk_text(text, params, headings);

    // Fields of the doc record that pass through: everything we do not write ourselves.
    static const std::set<std::string> ours = {"id", "doc_id", "chunk", "text", "start", "end", "section"};
    if (!json::valid_utf8(doc.doc_id))
      throw input_error("the document's id (or file name) is not valid UTF-8", doc.where, doc.line);
    std::string id_prefix;
    json::append_string_unchecked(id_prefix, doc.doc_id + "#");
    id_prefix.pop_back();  // drop the closing quote: the chunk number goes inside
    std::string doc_id_json;
    json::append_string_unchecked(doc_id_json, doc.doc_id);
    std::string tail;  // passed-through fields, identical for every chunk
    if (!title.empty() && !doc.rest.has("title")) {
      tail += ",\"title\":";
      json::append_string_unchecked(tail, title);
    }
    for (size_t i = 0; i < doc.rest.size(); ++i) {
      std::string k = doc.rest.key(i);
      if (ours.count(k)) continue;
      tail += ',';
      tail += doc.rest.raw_key(i);
      tail += ':';
      tail += doc.rest.raw_value(i);
    }
    std::string& o = doc.out;
    size_t covered = 0;
    for (const auto& c : chunks) covered += c.end - c.start;
    o.reserve(covered + covered / 8 + chunks.size() * (2 * doc_id_json.size() + tail.size() + 96));
    for (size_t n = 0; n < chunks.size(); ++n) {
      const text::Chunk& c = chunks[n];
      o += "{\"id\":";
      o += id_prefix;
      o += std::to_string(n);
      o += "\",\"doc_id\":";
      o += doc_id_json;
      o += ",\"chunk\":";
      o += std::to_string(n);
      o += ",\"text\":";
      json::append_string_unchecked(o, text.substr(c.start, c.end - c.start));
      o += ",\"start\":";
      o += std::to_string(c.start);
      o += ",\"end\":";
      o += std::to_string(c.end);
      o += ",\"section\":";
      json::append_string_unchecked(o, c.section);
      o += tail;
      o += "}\n";
    }
    doc.n_chunks = chunks.size();
  } catch (...) {
    doc.error = std::current_exception();
  }
}

class Chunker {
 public:
  Chunker(cli::Tool& tool, text::ChunkParams params)
      : tool_(tool), params_(std::move(params)), progress_(tool, "loom-chunk") {}

  // Queues a document; runs a batch when enough text is waiting.
  void add(Doc doc) {
    pending_bytes_ += doc.load ? doc.load_size : doc.text.size();
    batch_.push_back(std::move(doc));
    if (batch_.size() >= 64 || pending_bytes_ >= (4u << 20)) run_batch();
  }

  void finish() {
    run_batch();
    progress_.done();
  }

  // Chunks and writes what is queued now (the input is about to wait for more).
  void drain() {
    run_batch();
    tool_.out().flush();
  }

 private:
  void run_batch() {
    if (batch_.empty()) return;
    std::vector<Doc> batch;
    batch.swap(batch_);  // taken whole: an error below never leaves documents to be written twice
    pending_bytes_ = 0;
    unsigned workers = std::min<unsigned>(tool_.common().threads, static_cast<unsigned>(batch.size()));
    // Workers chunk documents in any order; this thread writes them in input order as each one
    // is done, so writing overlaps chunking.
    std::vector<std::atomic<bool>> done(batch.size());
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < batch.size();) {
        chunk_doc(batch[i], params_);
        done[i].store(true, std::memory_order_release);
        done[i].notify_one();
      }
    };
    if (workers > 1)
      for (unsigned w = 0; w < workers; ++w) pool.emplace_back(work);
    else
      work();
    struct Joiner {  // the workers are joined however this function is left
      std::vector<std::thread>& pool;
      std::atomic<size_t>& next;
      size_t n;
      ~Joiner() {
        next.store(n);  // hand out no more documents
        for (auto& t : pool) t.join();
      }
    } joiner{pool, next, batch.size()};
    for (size_t i = 0; i < batch.size(); ++i) {
      done[i].wait(false, std::memory_order_acquire);
      Doc& d = batch[i];
      if (d.error) {
        try {
          std::rethrow_exception(d.error);
        } catch (const Error& e) {
          if (!tool_.skip(e)) throw;
        }
        continue;
      }
      tool_.out().write(d.out);
      std::string().swap(d.out);  // give the memory back as we go
      ++docs_;
      chunks_ += d.n_chunks;
      bytes_ += d.n_bytes;
    }
    progress_.tick([&] { return fmt::format("{} docs, {} chunks, {:.1f} MB", docs_, chunks_, bytes_ / 1e6); });
  }

  cli::Tool& tool_;
  text::ChunkParams params_;
  cli::Progress progress_;
  std::vector<Doc> batch_;
  size_t pending_bytes_ = 0;
  uint64_t docs_ = 0, chunks_ = 0, bytes_ = 0;
};

Doc file_doc(const std::string& path, const Options& opt) {
  Doc d;
  d.doc_id = path;
  d.where = path;
  d.load = true;
  std::error_code ec;
  d.load_size = static_cast<size_t>(fs::file_size(path, ec));
  d.format = opt.format == Format::Auto ? format_for_path(path) : opt.format;
  return d;
}

void read_records(cli::Tool& tool, const Options& opt, io::Input& in, Chunker& chunker) {
  io::JsonlReader reader(in);
  io::Record rec;
  for (;;) {
    try {
      if (!reader.next(rec)) break;
      Doc d;
      d.where = reader.name();
      d.line = reader.line();
      auto text = rec.get_string(opt.field);
      if (!text) throw input_error(fmt::format("record has no \"{}\" field (a string)", opt.field));
      d.text = std::move(*text);
      if (auto id = rec.raw("id"); id && *id != "null") {
        if ((*id)[0] == '"') json::unescape_string(*id, d.doc_id);
        else d.doc_id = std::string(*id);
      } else {
        d.doc_id = std::to_string(reader.line());
      }
      rec.erase(opt.field);
      d.rest = std::move(rec);
      rec = io::Record();
      d.format = opt.format == Format::Auto ? Format::Text : opt.format;
      chunker.add(std::move(d));
    } catch (Error& e) {
      e.at(reader.name(), reader.line());
      if (reader.failed() || !tool.skip(e)) {  // a broken stream is not a bad record to skip
        chunker.finish();  // the documents before the bad one are still written
        throw;
      }
    }
  }
}

void run(cli::Tool& tool, Options& opt) {
  if (opt.size == 0) throw usage_error("--size must be at least 1");
  if (opt.overlap >= opt.size) throw usage_error(fmt::format("--overlap ({}) must be smaller than --size ({})", opt.overlap, opt.size));
  text::ChunkParams params;
  params.strategy = opt.strategy;
  params.size = opt.size;
  params.overlap = opt.overlap;
  std::shared_ptr<tok::Tokenizer> tokenizer;
  if (opt.by_tokens) {
    if (opt.tokenizer.empty()) throw usage_error("--by tokens needs --tokenizer MODEL");
    if (opt.strategy == text::ChunkStrategy::Fixed)
      throw usage_error("--by tokens works with the recursive, sentence and markdown strategies (fixed windows count characters)");
    tokenizer = std::make_shared<tok::Tokenizer>(tok::Tokenizer::load(opt.tokenizer));
    // the length of a piece: its tokens without the model's special tokens (LangChain's
    // from_huggingface_tokenizer counts the same way)
    params.length = [tokenizer](std::string_view piece) { return tokenizer->encode(piece, {false, false}).ids.size(); };
  } else if (!opt.tokenizer.empty()) {
    throw usage_error("--tokenizer is used with --by tokens");
  }
  if (!opt.separators.empty()) {
    if (opt.strategy != text::ChunkStrategy::Recursive) throw usage_error("--separators applies to the recursive strategy only");
    params.separators = parse_separators(opt.separators);
  }
  std::set<std::string> exts;
  for (size_t s = 0; s <= opt.ext.size();) {
    size_t c = opt.ext.find(',', s);
    if (c == std::string::npos) c = opt.ext.size();
    std::string e = lower(opt.ext.substr(s, c - s));
    if (!e.empty()) exts.insert(e[0] == '.' ? e : "." + e);
    s = c + 1;
  }

  Chunker chunker(tool, params);
  // When the input would block (a slow producer), finish the queued documents first, so chunks
  // stream out as their documents arrive.
  io::set_before_block([&] { chunker.drain(); });
  if (opt.inputs.empty()) opt.inputs.push_back("-");
  uint64_t skipped_files = 0;
  for (const auto& arg : opt.inputs) {
    if (arg == "-") {
      auto in = io::Input::open("-");
      if (opt.raw) {
        Doc d;
        d.doc_id = opt.doc_id;
        d.where = in->name();
        d.text = io::read_all(*in);
        d.format = opt.format == Format::Auto ? Format::Text : opt.format;
        chunker.add(std::move(d));
      } else {
        read_records(tool, opt, *in, chunker);
      }
      continue;
    }
    std::error_code ec;
    auto st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) throw usage_error(fmt::format("{}: No such file or directory", arg));
    if (!fs::is_directory(st)) {
      // A file named on the command line is always read, whatever its extension (as ripgrep does).
      chunker.add(file_doc(arg, opt));
      continue;
    }
    std::vector<std::string> files;
    fs::recursive_directory_iterator it(arg, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) throw usage_error(fmt::format("{}: {}", arg, ec.message()));
    for (; it != end; it.increment(ec)) {
      if (ec) throw runtime_error(ec.message(), arg);
      std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {  // hidden files and folders are not documents
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file()) continue;
      if (!exts.count(lower(it->path().extension().string()))) {
        ++skipped_files;
        continue;
      }
      files.push_back(it->path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) chunker.add(file_doc(f, opt));
  }
  chunker.finish();
  if (skipped_files)
    tool.note("{} file{} skipped: not a known text type (see --ext)", skipped_files, skipped_files == 1 ? "" : "s");
}

}  // namespace

int main(int argc, char** argv) {
  cli::Tool tool("chunk", "Split documents into chunk records for embedding and retrieval.\n\n"
                          "Reads files and folders (recursively), doc records on stdin ({\"id\", \"text\", ...}),\n"
                          "or raw text with --raw. Writes one JSON record per chunk:\n"
                          "  id (<doc_id>#<n>), doc_id, chunk, text, start, end, section, and the doc record's other fields.\n"
                          "text is exactly the bytes [start, end) of the document's text (for HTML: of its extracted text).");
  Options opt;
  auto& app = tool.app();
  app.add_option("inputs", opt.inputs, "Files and folders to chunk; '-' or nothing reads stdin")->type_name("PATH...")->default_str("");
  tool.add_choice("-s,--strategy", opt.strategy,
                  {{"recursive", text::ChunkStrategy::Recursive},
                   {"fixed", text::ChunkStrategy::Fixed},
                   {"sentence", text::ChunkStrategy::Sentence},
                   {"markdown", text::ChunkStrategy::Markdown}},
                  "recursive: paragraphs, lines, sentences, words; fixed: exact windows; sentence; markdown: split at headings");
  app.add_option("--size", opt.size, "Largest chunk, in characters (Unicode code points), or tokens with --by tokens")->type_name("N");
  app.add_option("--overlap", opt.overlap, "Shared by consecutive chunks, same unit (fixed: exactly; others: whole pieces up to N)")->type_name("N");
  tool.add_choice("--by", opt.by_tokens, {{"chars", false}, {"tokens", true}}, "Unit of --size and --overlap");
  app.add_option("--tokenizer", opt.tokenizer, "With --by tokens: a tokenizer.json, a folder with one, or a model name (e.g. minilm)")
      ->type_name("MODEL");
  app.add_option("--separators", opt.separators, "Recursive separators (literal strings) as a JSON array, coarsest first; \"\" splits characters")
      ->type_name("JSON")->default_str("paragraphs, lines, sentences, words, characters");
  app.add_option("--field", opt.field, "Field of doc records that holds the text")->type_name("NAME");
  app.add_flag("--raw", opt.raw, "Read stdin as one raw text document, not records");
  app.add_option("--doc-id", opt.doc_id, "doc_id of the --raw document")->type_name("ID");
  tool.add_choice("--format", opt.format,
                  {{"auto", Format::Auto}, {"text", Format::Text}, {"markdown", Format::Markdown}, {"html", Format::Html}},
                  "Document format (auto: by file extension; records and --raw are text)");
  app.add_option("--ext", opt.ext, "File extensions read when walking folders (others are skipped and counted)")->type_name("LIST");
  tool.add_output();
  tool.add_on_error();
  return tool.run(argc, argv, [&] { run(tool, opt); });
}
