// End to end: the --sharing family on the command line — every mode trains, a soft-sharing run
// logs its penalty, writes its [sharing] table, refuses to change it on resume and resumes
// exactly; mistakes get one line and exit code 2.
#include <gtest/gtest.h>

#include <string>

#include "tests/cli/cli_support.h"

namespace {

using namespace cli_test;

TEST_F(Cli, EverySharingModeTrainsTheThreeTaskPreset) {
  for (const std::string mode : {"hard --branch-after 4", "separate", "soft", "cross_stitch",
                                 "mmoe --experts 2"}) {
    SCOPED_TRACE(mode);
    const std::string out = path("run-" + std::to_string(mode.size()));
    const Result r = polytask("train --preset fashion-three-tasks --epochs 1 " + std::string(kQuick) +
                              " --sharing " + mode + " --out " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("fashion-three-tasks [sharing " + mode.substr(0, mode.find(' '))),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("test_region_accuracy"), std::string::npos) << r.out;
  }
}

TEST_F(Cli, ASoftSharingRunLogsItsPenaltyAndResumesExactly) {
  const std::string fixed = std::string(kQuick) +
                            " --preset fashion-three-tasks --sharing soft --soft-strength 0.01 "
                            "--branch-after pool1";
  ASSERT_EQ(polytask("train --epochs 2 " + fixed + " --out " + path("straight")).code, 0);
  const Result first = polytask("train --epochs 1 " + fixed + " --out " + path("resumed"));
  ASSERT_EQ(first.code, 0) << first.out;
  EXPECT_NE(first.out.find("soft_sharing_penalty: "), std::string::npos) << first.out;
  const std::string config = read(dir_ / "resumed" / "config.toml");
  EXPECT_NE(config.find("[sharing]\nmode = \"soft\"\nbranch_after = \"pool1\"\nsoft_strength = 0.01"),
            std::string::npos)
      << config;
  expect_one_line_error(polytask("train --resume " + path("resumed") + " --epochs 2 --sharing hard"),
                        2, "--sharing cannot change when resuming");
  const Result second = polytask("train --resume " + path("resumed") + " --epochs 2");
  ASSERT_EQ(second.code, 0) << second.out;
  const auto a = lines(read(dir_ / "straight" / "metrics.jsonl"));
  const auto b = lines(read(dir_ / "resumed" / "metrics.jsonl"));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(without_seconds(b[1]), without_seconds(a[1]));
  // The copies are pulled together: the penalty falls from epoch to epoch.
  EXPECT_GT(field(a[0], "soft_sharing_penalty"), 0.0);
  EXPECT_LT(field(a[1], "soft_sharing_penalty"), field(a[0], "soft_sharing_penalty"));
}

TEST_F(Cli, SharingMistakesGetOneClearLine) {
  const std::string run = "train --preset fashion-three-tasks --epochs 1 " + std::string(kQuick) +
                          " --out " + path("never");
  expect_one_line_error(polytask(run + " --sharing sideways"), 2, "unknown sharing mode 'sideways'");
  expect_one_line_error(polytask(run + " --branch-after 11"), 2, "outside 0..10");
  expect_one_line_error(polytask(run + " --branch-after type_hidden"), 2, "not a trunk layer");
  expect_one_line_error(polytask(run + " --sharing mmoe --experts 9"), 2, "experts must be 2 to 8");
  expect_one_line_error(polytask(run + " --sharing cross_stitch --cross-stitch-after pool1 --branch-after 4"),
                        2, "not an unshared trunk layer");
  expect_one_line_error(polytask(run + " --sharing soft --soft-strength -1"), 2, "soft_strength");
  EXPECT_FALSE(fs::exists(dir_ / "never" / "model.safetensors"));
}

}  // namespace
