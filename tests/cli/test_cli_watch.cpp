// Watching and steering from the command line: TensorBoard files, curves and prediction
// pictures, metrics.csv, the callback flags, and a resumed run deciding as an uninterrupted one.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/error.h"
#include "tests/cli/cli_support.h"
#include "tests/support/python.h"
#include "watch/event_file.h"

namespace cli_test {
namespace {

using polytask::cat;
using polytask::watch::EventWriter;
using polytask::watch::read_events;

// Every events file under `dir`, and the steps of `tag` in them.
std::vector<int64_t> steps_of(const fs::path& dir, const std::string& tag) {
  std::vector<int64_t> steps;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents", 0) == 0)
      for (const auto& r : read_events(entry.path().string()))
        for (const auto& t : r.tags)
          if (t == tag) steps.push_back(r.step);
  std::sort(steps.begin(), steps.end());
  return steps;
}

bool is_png(const fs::path& p) { return read(p).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

TEST_F(Cli, TrainWritesTensorBoardCurvesAndCsv) {
  const Result r = polytask(cat("train ", kQuick, " --epochs 2 --log-every 3 --out ", path("run")));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(steps_of(dir_ / "run/tb/train", "epoch_loss"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(steps_of(dir_ / "run/tb/validation", "epoch_digit_accuracy"),
            (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(steps_of(dir_ / "run/tb/train", "batch_loss"), (std::vector<int64_t>{3, 6, 9, 12, 15}))
      << "8 steps per epoch (460 rows / 64), every third";
  for (const char* tag : {"balancer/weight/digit", "balancer/grad_cosine/digit,parity",
                          "epoch_learning_rate", "sample_predictions", "shared.weight"})
    EXPECT_EQ(steps_of(dir_ / "run/tb/train", tag).size(), 2u) << tag;
  EXPECT_EQ(steps_of(dir_ / "run/tb/train", "config"), (std::vector<int64_t>{0}));
  EXPECT_TRUE(is_png(dir_ / "run/curves.png"));
  EXPECT_NE(read(dir_ / "run/curves.svg").find("digit — accuracy"), std::string::npos);
  const auto csv = lines(read(dir_ / "run/metrics.csv"));
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[0].rfind("epoch,digit_accuracy,digit_loss,learning_rate,loss,", 0), 0u) << csv[0];

  const Result off =
      polytask(cat("train ", kQuick, " --epochs 1 --no-tensorboard --out ", path("quiet")));
  ASSERT_EQ(off.code, 0) << off.out;
  EXPECT_FALSE(fs::exists(dir_ / "quiet/tb"));
}

// TensorBoard's own reader on a real run of the colour preset (RGB images): the tags, steps and
// values a user sees in TensorBoard.
TEST_F(Cli, TensorBoardReadsARealRun) {
  const std::string py = polytask::testing::python_that_imports("tensorboard");
  if (py.empty())
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import tensorboard (pip install "
                    "tensorboard)";
  const Result r = polytask(cat("train --preset mnist-digit-colour-residual ", kQuick,
                                " --epochs 2 --log-every 4 --out ", path("run")));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto read_dir = [&](const std::string& sub) {
    const auto [status, out] = polytask::testing::run_command(
        py + " " + POLYTASK_SOURCE_DIR + "/tests/watch/tensorboard_interop.py " + path(sub));
    EXPECT_EQ(status, 0) << out;
    return nlohmann::json::parse(out);
  };
  const nlohmann::json train = read_dir("run/tb/train");
  const nlohmann::json validation = read_dir("run/tb/validation");
  const std::string jsonl = read(dir_ / "run/metrics.jsonl");
  const auto epochs = lines(jsonl);
  ASSERT_EQ(epochs.size(), 2u);
  for (int e = 0; e < 2; ++e) {
    const auto& loss = train["scalars"]["epoch_loss"][e];
    EXPECT_EQ(loss[0], e + 1);
    EXPECT_FLOAT_EQ(float(loss[2].get<double>()), float(field(epochs[size_t(e)], "loss")));
    const auto& val = validation["scalars"]["epoch_colour_accuracy"][e];
    EXPECT_FLOAT_EQ(float(val[2].get<double>()),
                    float(field(epochs[size_t(e)], "val_colour_accuracy")));
  }
  EXPECT_EQ(train["scalars"]["batch_loss"].size(), 4u) << "steps 4, 8, 12 and 16";
  EXPECT_EQ(train["scalars"]["balancer/weight/colour"].size(), 2u);
  const auto& image = train["images"]["sample_predictions"];
  ASSERT_EQ(image.size(), 2u);
  EXPECT_GT(image[1][1].get<int>(), 600);  // eight 28-pixel images at 3x side by side
  EXPECT_EQ(train["histograms"]["shared.weight"].size(), 2u);
  EXPECT_EQ(train["texts"]["config"][0][1], "text");
  EXPECT_NE(train["texts"]["config"][0][2].get<std::string>().find("mnist-digit-colour-residual"),
            std::string::npos);
}

// A run killed after writing epoch 3's events but before its checkpoint: the resumed run drops
// them and writes epoch 3 once.
TEST_F(Cli, AResumedRunNeitherDoublesNorLosesTensorBoardSteps) {
  ASSERT_EQ(polytask(cat("train ", kQuick, " --epochs 2 --log-every 4 --out ", path("run"))).code,
            0);
  {
    EventWriter stray((dir_ / "run/tb/train").string());
    stray.scalar("epoch_loss", 3, 9.0);
    stray.scalar("batch_loss", 20, 9.0);
    stray.flush();
  }
  const Result r = polytask(cat("train --resume ", path("run"), " --epochs 3 --device cpu"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(steps_of(dir_ / "run/tb/train", "epoch_loss"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(steps_of(dir_ / "run/tb/train", "batch_loss"),
            (std::vector<int64_t>{4, 8, 12, 16, 20, 24}));
  EXPECT_EQ(lines(read(dir_ / "run/metrics.csv")).size(), 4u);
}

// A damaged events file does not stop a run from resuming: it says so and goes on.
TEST_F(Cli, ADamagedEventsFileDoesNotBlockResuming) {
  ASSERT_EQ(polytask(cat("train ", kQuick, " --epochs 1 --out ", path("run"))).code, 0);
  fs::path events;
  for (const auto& entry : fs::directory_iterator(dir_ / "run/tb/train")) events = entry.path();
  std::string bytes = read(events);
  ASSERT_GT(bytes.size(), 200u);
  bytes[bytes.size() / 2] = char(bytes[bytes.size() / 2] ^ 0x5A);
  std::ofstream(events, std::ios::binary) << bytes;
  const Result r = polytask(cat("train --resume ", path("run"), " --epochs 2 --device cpu"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("note: TensorBoard files left as they are"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fails its CRC check"), std::string::npos) << r.out;
  EXPECT_EQ(lines(read(dir_ / "run/metrics.csv")).size(), 3u);
}

TEST_F(Cli, ResumedCallbacksDecideAsTheUninterruptedRun) {
  // With 25 validation rows the accuracy plateaus soon: the rate halves after epochs 5 and 6
  // and training stops after epoch 6 (a seeded run, the same on every machine and thread count).
  const std::string flags =
      " --val-split 0.05 --reduce-lr-on-plateau val_digit_accuracy:0.5:0 --early-stopping "
      "val_digit_accuracy:2 --save-best val_loss --epochs 10";
  ASSERT_EQ(polytask(cat("train ", kQuick, flags, " --out ", path("whole"))).code, 0);
  ASSERT_EQ(polytask(cat("train ", kQuick, flags, " --out ", path("cut"), " --epochs 5")).code, 0)
      << "the later --epochs wins";
  const Result r = polytask(cat("train --resume ", path("cut"), " --epochs 10 --device cpu"));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string whole = read(dir_ / "whole/metrics.csv");
  EXPECT_EQ(read(dir_ / "cut/metrics.csv"), whole);
  EXPECT_EQ(lines(whole).size(), 7u) << "stopped after epoch 6:\n" << whole;
  EXPECT_NE(whole.find(",0.000500000024,"), std::string::npos) << whole;
  EXPECT_NE(r.out.find("early stopping"), std::string::npos) << r.out;
  // A resumed run that had stopped stays stopped.
  const Result again = polytask(cat("train --resume ", path("cut"), " --epochs 10 --device cpu"));
  EXPECT_NE(again.out.find("nothing more to train"), std::string::npos) << again.out;
  EXPECT_EQ(read(dir_ / "cut/metrics.csv"), whole);
  EXPECT_EQ(polytask(cat("eval --run ", path("cut"), " --best --device cpu")).code, 0);
}

TEST_F(Cli, CallbackFlagsAreCheckedBeforeTraining) {
  expect_one_line_error(
      polytask(cat("train ", kQuick, " --early-stopping val_acc --out ", path("a"))), 2,
      "unknown monitor 'val_acc' (valid: loss, digit_loss, parity_loss, digit_accuracy");
  expect_one_line_error(
      polytask(cat("train ", kQuick, " --val-split 0 --save-best val_loss --out ", path("b"))), 2,
      "there is no validation data");
  expect_one_line_error(polytask(cat("train ", kQuick, " --lr-schedule linear --out ", path("c"))),
                        2, "--lr-schedule: unknown learning-rate schedule 'linear'");
  expect_one_line_error(
      polytask(cat("train ", kQuick, " --lr-schedule cosine --reduce-lr-on-plateau loss --out ",
                   path("d"))),
      2, "choose one");
  expect_one_line_error(
      polytask(cat("train ", kQuick, " --restore-best-weights --out ", path("e"))), 2,
      "--restore-best-weights needs --early-stopping");
  expect_one_line_error(
      polytask(cat("train ", kQuick, " --reduce-lr-on-plateau loss:2:1 --out ", path("f"))), 2,
      "FACTOR must be in (0, 1)");
  for (const char* dir : {"a", "b", "c", "d", "e", "f"}) EXPECT_FALSE(fs::exists(dir_ / dir));
  ASSERT_EQ(polytask(cat("train ", kQuick, " --epochs 1 --out ", path("run"))).code, 0);
  expect_one_line_error(
      polytask(cat("train --resume ", path("run"), " --epochs 2 --early-stopping loss")), 2,
      "--early-stopping cannot change when resuming");
}

TEST_F(Cli, PlotAndPredictGridDrawPictures) {
  ASSERT_EQ(polytask(cat("train ", kQuick, " --epochs 2 --no-tensorboard --out ", path("a"))).code,
            0);
  ASSERT_EQ(polytask(cat("train ", kQuick, " --epochs 1 --balancer dwa --no-tensorboard --out ",
                         path("b")))
                .code,
            0);
  const Result plot =
      polytask(cat("plot --run ", path("a"), " --run ", path("b"), " --out ", path("both.png")));
  ASSERT_EQ(plot.code, 0) << plot.out;
  EXPECT_TRUE(is_png(dir_ / "both.png"));
  const std::string svg = read(dir_ / "both.svg");
  EXPECT_NE(svg.find(">a<"), std::string::npos);
  EXPECT_NE(svg.find("b (dwa)"), std::string::npos);

  const Result grid = polytask(
      cat("predict --run ", path("a"), " --grid ", path("grid.png"), " --count 12 --device cpu"));
  ASSERT_EQ(grid.code, 0) << grid.out;
  EXPECT_TRUE(is_png(dir_ / "grid.png"));
  EXPECT_NE(grid.out.find("12 examples"), std::string::npos) << grid.out;
  const Result wrong =
      polytask(cat("predict --run ", path("a"), " --wrong --count 5 --device cpu"));
  ASSERT_EQ(wrong.code, 0) << wrong.out;
  const auto rows = lines(wrong.out);
  ASSERT_EQ(rows.size(), 6u) << wrong.out;  // header + 5 mistakes, each marked
  for (size_t i = 1; i < rows.size(); ++i)
    EXPECT_NE(rows[i].find(" x"), std::string::npos) << rows[i];

  expect_one_line_error(polytask(cat("plot --run ", path("nothing"))), 2, "no metrics.jsonl");
  ASSERT_EQ(polytask("train --data synthetic:two-input --preset two-input-cls-reg --limit 64 "
                     "--epochs 1 --device cpu --no-tensorboard --out " +
                     path("vectors"))
                .code,
            0);
  expect_one_line_error(
      polytask(cat("predict --run ", path("vectors"), " --grid ", path("v.png"), " --device cpu")),
      2, "not images");
}

}  // namespace
}  // namespace cli_test
