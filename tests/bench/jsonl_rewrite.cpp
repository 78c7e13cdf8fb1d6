// Bench program: read JSONL records (full validation) and write them back out, compact —
// the record I/O layer's equivalent of `jq -c .`. Used by tests/bench/bench-jsonl.
//   jsonl_rewrite [IN [OUT]]     (default stdin/stdout; .zst handled as everywhere)
#include "loom/cli/tool.h"
#include "loom/io/jsonl.h"

int main(int argc, char** argv) {
  loom::cli::Tool tool("bench-jsonl-rewrite", "Read records and write them back (benchmark).");
  std::string in_path = "-", out_path = "-";
  tool.app().add_option("input", in_path, "Input");
  tool.app().add_option("output", out_path, "Output");
  return tool.run(argc, argv, [&] {
    auto in = loom::io::Input::open(in_path);
    auto out = out_path == "-" ? nullptr : loom::io::Output::open(out_path);
    loom::io::Output& o = out ? *out : tool.out();
    loom::io::JsonlReader reader(*in);
    loom::io::Record rec;
    std::string line;
    while (reader.next(rec)) {
      line.clear();
      rec.append_to(line);
      line += '\n';
      o.write(line);
    }
    if (out) out->close();
  });
}
