// Program conventions (loom::cli::Tool): exit statuses, error kinds, skip counting, choices.
#include <gtest/gtest.h>

#include <vector>

#include "loom/cli/tool.h"

using namespace loom;

namespace {

// Runs a Tool over argv with `body`; returns the exit status.
int run_tool(std::vector<std::string> args, const std::function<void(cli::Tool&)>& body, cli::Tool* out = nullptr) {
  cli::Tool local("test", "A test program.");
  cli::Tool& tool = out ? *out : local;
  tool.add_on_error();
  std::vector<char*> argv;
  std::string name = "loom-test";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  return tool.run(static_cast<int>(argv.size()), argv.data(), [&] { body(tool); });
}

}  // namespace

TEST(Tool, ExitStatusesFollowTheErrorKind) {
  EXPECT_EQ(run_tool({}, [](cli::Tool&) {}), 0);
  EXPECT_EQ(run_tool({}, [](cli::Tool&) { throw input_error("bad record", "f.jsonl", 3); }), 2);
  EXPECT_EQ(run_tool({}, [](cli::Tool&) { throw usage_error("bad flag"); }), 2);
  EXPECT_EQ(run_tool({}, [](cli::Tool&) { throw runtime_error("disk on fire"); }), 1);
  EXPECT_EQ(run_tool({}, [](cli::Tool&) { throw BrokenPipe{}; }), 0);
  EXPECT_EQ(run_tool({}, [](cli::Tool&) { throw std::bad_alloc(); }), 1);
}

TEST(Tool, UsageErrorsAreExitTwo) {
  bool ran = false;
  EXPECT_EQ(run_tool({"--no-such-flag"}, [&](cli::Tool&) { ran = true; }), 2);
  EXPECT_EQ(run_tool({"--threads", "lots"}, [&](cli::Tool&) { ran = true; }), 2);
  EXPECT_EQ(run_tool({"--on-error", "ignore"}, [&](cli::Tool&) { ran = true; }), 2);
  EXPECT_FALSE(ran);
}

TEST(Tool, HelpAndVersionExitZeroWithoutRunning) {
  bool ran = false;
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_tool({"--help"}, [&](cli::Tool&) { ran = true; }), 0);
  EXPECT_EQ(run_tool({"--version"}, [&](cli::Tool&) { ran = true; }), 0);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_FALSE(ran);
  EXPECT_NE(out.find("Usage: loom-test"), std::string::npos);
  EXPECT_NE(out.find("--on-error"), std::string::npos);
  EXPECT_NE(out.find("loom-test 0."), std::string::npos);
  EXPECT_NE(out.find("cuda: "), std::string::npos);
}

TEST(Tool, SkipCountsOnlyWithOnErrorSkip) {
  Error e = input_error("bad", "x", 1);
  {
    cli::Tool tool("test", "t");
    EXPECT_EQ(run_tool({"-q"}, [&](cli::Tool& t) { EXPECT_FALSE(t.skip(e)); }, &tool), 0);
    EXPECT_EQ(tool.skipped(), 0u);
  }
  {
    cli::Tool tool("test", "t");
    EXPECT_EQ(run_tool({"-q", "--on-error", "skip"}, [&](cli::Tool& t) {
                EXPECT_TRUE(t.skip(e));
                EXPECT_TRUE(t.skip(e));
              }, &tool),
              0);
    EXPECT_EQ(tool.skipped(), 2u);
  }
}

TEST(Tool, ThreadsDefaultToAllCores) {
  cli::Tool tool("test", "t");
  unsigned seen = 0;
  EXPECT_EQ(run_tool({}, [&](cli::Tool& t) { seen = t.common().threads; }, &tool), 0);
  EXPECT_GE(seen, 1u);
  cli::Tool tool2("test", "t");
  EXPECT_EQ(run_tool({"-t", "3"}, [&](cli::Tool& t) { seen = t.common().threads; }, &tool2), 0);
  EXPECT_EQ(seen, 3u);
}

TEST(Tool, ChoicesMapWordsToValues) {
  enum class Color { Red, Green };
  Color c = Color::Red;
  cli::Tool tool("test", "t");
  tool.add_choice("--color", c, {{"red", Color::Red}, {"green", Color::Green}}, "A color");
  EXPECT_EQ(run_tool({"--color", "green"}, [](cli::Tool&) {}, &tool), 0);
  EXPECT_EQ(c, Color::Green);
}
