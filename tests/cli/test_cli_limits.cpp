// End to end: numbers and files from the user that are out of range or damaged are refused
// with one line naming what and where, never a crash, a wrapped-around size or a silent
// misreading; command-line mistakes exit 2, damaged files 1.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/cli/cli_support.h"

namespace {

using namespace cli_test;

TEST_F(Cli, HugeSizesAreRefusedNamingTheValue) {
  // These overflowed the buffer size (batch × sample) and crashed in the first batch.
  for (const char* batch : {"4611686018427387904", "9223372036854775807", "1048577"})
    expect_one_line_error(polytask(std::string("train ") + kQuick + " --batch-size " + batch +
                                   " --out " + path("r")),
                          2, std::string("--batch-size must be between 1 and 1048576, got ") + batch);
  const Result shown = polytask("models --show mnist-digit-parity");
  ASSERT_EQ(shown.code, 0);
  std::string config = shown.out;
  const auto units = config.find("units = 128");
  ASSERT_NE(units, std::string::npos) << config;
  config.replace(units, 11, "units = 4000000000000000000");
  std::ofstream(path("huge.toml")) << config;
  expect_one_line_error(polytask("train --config " + path("huge.toml") + " " + kQuick + " --out " +
                                 path("r")),
                        1, "'units' must be at most 1048576, got 4000000000000000000");
  EXPECT_FALSE(fs::exists(dir_ / "r"));
  // eval and predict take --batch-size too.
  ASSERT_EQ(polytask(std::string("train --epochs 0 ") + kQuick + " --out " + path("run")).code, 0);
  expect_one_line_error(polytask("predict --run " + path("run") + " --batch-size 4611686018427387904"),
                        2, "--batch-size must be between 1 and 1048576, got 4611686018427387904");
  expect_one_line_error(polytask("eval --run " + path("run") + " --batch-size 9223372036854775807"),
                        2, "--batch-size must be between 1 and 1048576");
}

TEST_F(Cli, EpochsOutOfRangeAreRefusedNotNarrowed) {
  // int(4294967296) was 0 epochs with exit 0; 99999999999 printed "Epoch 1/1215752191".
  for (const char* epochs : {"4294967296", "99999999999", "-1"})
    expect_one_line_error(
        polytask(std::string("train ") + kQuick + " --epochs " + epochs + " --out " + path("r")), 2,
        std::string("--epochs must be between 0 and 1000000, got ") + epochs);
  EXPECT_FALSE(fs::exists(dir_ / "r"));
}

TEST_F(Cli, ALearningRateTheRunCannotUseIsAUsageError) {
  expect_one_line_error(polytask(std::string("train ") + kQuick + " --lr 1e3 --out " + path("r")),
                        2, "--lr 1e3");
  expect_one_line_error(polytask(std::string("train ") + kQuick + " --lr 1e39 --out " + path("r")),
                        2, "--lr 1e39");
  // Past float's range: the optimiser computes in f32.
  expect_one_line_error(polytask(std::string("train ") + kQuick +
                                 " --balancer uncertainty --balancer-lr 0.01 --lr 1e39 --out " +
                                 path("r")),
                        2, "--lr must be positive and finite, got 1e39");
  EXPECT_FALSE(fs::exists(dir_ / "r"));
}

TEST_F(Cli, ADamagedMetricsFileIsNamedWithLineAndField) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  const std::string metrics = read(dir_ / "run" / "metrics.jsonl");
  std::ofstream(path("run/metrics.jsonl")) << metrics << "{\"epoch\": x1, \"loss\": 1}\n";
  expect_one_line_error(polytask("train --resume " + path("run") + " --epochs 2"), 1,
                        path("run/metrics.jsonl") + ":2: field 'epoch' is not a positive integer");
  std::ofstream(path("run/metrics.jsonl")) << "garbage\n";
  expect_one_line_error(polytask("train --resume " + path("run") + " --epochs 2"), 1,
                        path("run/metrics.jsonl") + ":1: expected a line starting with");
}

}  // namespace
