#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "kernels/error.h"
#include "watch/run_history.h"

namespace polytask::watch {
namespace {

namespace fs = std::filesystem;

// A file in a fresh directory of its own under the system's temporary directory.
std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path dir =
      fs::temp_directory_path() /
      ("polytask_run_history_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

const char* kLine1 =
    R"({"epoch": 1, "seconds": 2.1, "loss": 0.63, "digit_loss": 0.45, "parity_loss": 0.36, )"
    R"("digit_accuracy": 0.86, "parity_accuracy": 0.88, "val_loss": 0.6, "val_digit_loss": null, )"
    R"("val_digit_accuracy": 0.87, "balancer": "static", "weights": {"digit": 1.0, "parity": 0.5}, )"
    R"("grad_norm": {"digit": 0.1, "parity": 0.05}, "grad_cosine": {"digit,parity": -0.1}, )"
    R"("grad_conflict": {"digit,parity": 0.6}, "lr": 0.001})";
const char* kLine2 =
    R"({"epoch": 2, "seconds": 2.0, "loss": 0.5, "digit_loss": 0.4, "parity_loss": 0.3, )"
    R"("digit_accuracy": 0.9, "parity_accuracy": null, "balancer": "static", )"
    R"("weights": {"digit": 0.9, "parity": null}})";

TEST(RunHistory, ReadsTheTrainersLines) {
  const std::string path = write_temp("metrics.jsonl", std::string(kLine1) + "\n" + kLine2 + "\n");
  const RunHistory run = read_run_history(path, "mnist (static)");
  EXPECT_EQ(run.label, "mnist (static)");
  EXPECT_EQ(run.balancer, "static");
  ASSERT_EQ(run.epochs.size(), 2u);
  const EpochRecord& first = run.epochs[0];
  EXPECT_EQ(first.epoch, 1);
  EXPECT_DOUBLE_EQ(first.values.at("seconds"), 2.1);
  EXPECT_DOUBLE_EQ(first.values.at("digit_accuracy"), 0.86);
  EXPECT_DOUBLE_EQ(first.values.at("lr"), 0.001);
  EXPECT_TRUE(std::isnan(first.values.at("val_digit_loss")));
  EXPECT_DOUBLE_EQ(first.weights.at("parity"), 0.5);
  // Strings and objects other than "weights" are not values.
  EXPECT_EQ(first.values.count("balancer"), 0u);
  EXPECT_EQ(first.values.count("grad_norm"), 0u);
  EXPECT_EQ(first.values.count("epoch"), 0u);
  EXPECT_EQ(run.epochs[1].epoch, 2);
  EXPECT_TRUE(std::isnan(run.epochs[1].values.at("parity_accuracy")));
  EXPECT_TRUE(std::isnan(run.epochs[1].weights.at("parity")));
  EXPECT_EQ(run.epochs[1].values.count("lr"), 0u);
}

TEST(RunHistory, TasksComeInFileOrderNotSorted) {
  const std::string path = write_temp(
      "metrics.jsonl",
      R"({"epoch": 1, "zeta_loss": 1, "alpha_loss": 2, "weights": {"zeta": 1, "alpha": 1}})");
  EXPECT_EQ(read_run_history(path, "r").tasks, (std::vector<std::string>{"zeta", "alpha"}));
}

TEST(RunHistory, TasksFromLossKeysWithoutWeights) {
  const std::string path =
      write_temp("metrics.jsonl",
                 R"({"epoch": 1, "loss": 3, "zeta_loss": 1, "val_zeta_loss": 1, "alpha_loss": 2})");
  EXPECT_EQ(read_run_history(path, "r").tasks, (std::vector<std::string>{"zeta", "alpha"}));
}

TEST(RunHistory, MetricsOfAHead) {
  const std::string path = write_temp(
      "metrics.jsonl",
      R"({"epoch": 1, "digit_loss": 1, "digit_accuracy": 0.5, "val_digit_top5": 0.9, )"
      R"("brightness_loss": 2, "brightness_mae": 0.1, "digit_extra_loss": 1, )"
      R"("digit_extra_accuracy": 0.2, "weights": {"digit": 1, "brightness": 1, "digit_extra": 1}})");
  const RunHistory run = read_run_history(path, "r");
  EXPECT_EQ(run.metrics_of("digit"), (std::vector<std::string>{"accuracy"}));
  EXPECT_EQ(run.metrics_of("brightness"), (std::vector<std::string>{"mae"}));
  EXPECT_EQ(run.metrics_of("digit_extra"), (std::vector<std::string>{"accuracy"}));
  EXPECT_TRUE(run.metrics_of("missing").empty());
}

TEST(RunHistory, CorruptLineNamesFileAndLine) {
  const std::string path =
      write_temp("metrics.jsonl", std::string(kLine1) + "\n" + R"({"epoch": 2, "loss": )" + "\n");
  try {
    read_run_history(path, "r");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2:"), std::string::npos) << e.what();
  }
}

// Found by fuzz_run_history: nlohmann-json reports a number beyond double as out_of_range, not
// as a parse error.
TEST(RunHistory, ANumberBeyondDoubleIsAnErrorNamingTheLine) {
  const std::string path = write_temp("metrics.jsonl", R"({"epoch": 1, "loss": 1e309})" "\n");
  try {
    read_run_history(path, "r");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":1: not JSON"), std::string::npos) << e.what();
  }
}

TEST(RunHistory, LineWithoutEpochNamesFileAndLine) {
  const std::string path = write_temp("metrics.jsonl", "\n[1, 2]\n");
  try {
    read_run_history(path, "r");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2:"), std::string::npos) << e.what();
  }
}

TEST(RunHistory, MissingFileIsNamed) {
  const std::string path = "/nonexistent-polytask-dir/metrics.jsonl";
  try {
    read_run_history(path, "r");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(RunHistory, EmptyFileHasNoEpochsYet) {
  const std::string path = write_temp("metrics.jsonl", "\n");
  try {
    read_run_history(path, "r");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no epochs yet"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace polytask::watch
