// End to end: the real polytask binary on small synthetic data in a temporary directory.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/cli/cli_support.h"

namespace {

using namespace cli_test;

TEST_F(Cli, TrainWritesTheRunAndTheLossFalls) {
  const Result r = polytask(std::string("train --preset mnist-digit-parity --epochs 2 ") + kQuick + " --out " + path("run"));
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"config.toml", "run.conf", "model.safetensors", "training_state.safetensors",
                        "metrics.jsonl", "test_metrics.json"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / f)) << f;
  const auto epochs = lines(read(dir_ / "run" / "metrics.jsonl"));
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_LT(field(epochs[1], "loss"), field(epochs[0], "loss"));
  EXPECT_GT(field(epochs[1], "val_digit_accuracy"), 0.3);  // well above chance (0.1)
  EXPECT_NE(r.out.find("Epoch 2/2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test_digit_accuracy"), std::string::npos) << r.out;
}

TEST_F(Cli, EvalOfTheSavedModelReproducesTheTestMetrics) {
  const Result train = polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run"));
  ASSERT_EQ(train.code, 0) << train.out;
  const Result eval = polytask("eval --run " + path("run"));
  ASSERT_EQ(eval.code, 0) << eval.out;
  const std::string trained = last_line_starting(train.out, "Test ("), evaluated = last_line_starting(eval.out, "Test (");
  ASSERT_FALSE(trained.empty()) << train.out;
  EXPECT_EQ(evaluated, trained);
}

TEST_F(Cli, ResumeAfterEpochOneGivesTheSameEpochTwo) {
  const std::string fixed = std::string(kQuick) + " --preset fashion-type-brightness";
  ASSERT_EQ(polytask("train --epochs 2 " + fixed + " --out " + path("straight")).code, 0);
  const Result first = polytask("train --epochs 1 " + fixed + " --out " + path("resumed"));
  ASSERT_EQ(first.code, 0) << first.out;
  const Result second = polytask("train --resume " + path("resumed") + " --epochs 2");
  ASSERT_EQ(second.code, 0) << second.out;
  const auto a = lines(read(dir_ / "straight" / "metrics.jsonl"));
  const auto b = lines(read(dir_ / "resumed" / "metrics.jsonl"));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(without_seconds(b[0]), without_seconds(a[0]));
  EXPECT_EQ(without_seconds(b[1]), without_seconds(a[1]));
}

TEST_F(Cli, PredictPrintsATableWithTrueLabels) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  const Result r = polytask("predict --run " + path("run") + " --indices 0,5,7");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto rows = lines(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  EXPECT_NE(rows[0].find("digit true"), std::string::npos);
  EXPECT_NE(rows[0].find("parity predicted"), std::string::npos);
  EXPECT_EQ(rows[2].rfind("5", 0), 0u) << rows[2];
  EXPECT_NE(rows[1].find("(p="), std::string::npos);
}

TEST_F(Cli, EveryCommandHasHelp) {
  for (const char* cmd :
       {"--help", "train --help", "eval --help", "predict --help", "plot --help", "models --help"}) {
    const Result r = polytask(cmd);
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("usage: polytask"), std::string::npos) << cmd << ": " << r.out;
  }
}

TEST_F(Cli, ModelsListsEveryPresetAndShowsOneAsAConfigThatTrains) {
  const Result r = polytask("models");
  ASSERT_EQ(r.code, 0);
  for (const char* p : {"mnist-digit-parity", "mnist-digit-colour-residual", "two-input-cls-reg",
                        "cifar-object-colour", "fashion-type-brightness", "synthetic-cls-reg"})
    EXPECT_NE(r.out.find(p), std::string::npos) << p;
  const Result shown = polytask("models --show two-input-cls-reg");
  ASSERT_EQ(shown.code, 0) << shown.out;
  std::ofstream(path("mine.toml")) << shown.out;
  const Result trained = polytask("train --config " + path("mine.toml") +
                                  " --data synthetic:two-input --limit 256 --epochs 1 --batch-size 32 --out " + path("run"));
  EXPECT_EQ(trained.code, 0) << trained.out;
  EXPECT_NE(trained.out.find("test_value_mae"), std::string::npos) << trained.out;
}

TEST_F(Cli, BadInputGetsOneClearLine) {
  expect_one_line_error(polytask("train --preset no-such-preset"), 2, "no-such-preset");
  expect_one_line_error(polytask("train --batch-size 0"), 2, "--batch-size");
  expect_one_line_error(polytask("train --batch-size -3"), 2, "--batch-size");
  expect_one_line_error(polytask("train --epochs two"), 2, "--epochs");
  expect_one_line_error(polytask("train --bogus 1"), 2, "--bogus");
  expect_one_line_error(polytask("train --data " + path("missing-dir") + " --out " + path("r")), 1, "missing-dir");
  expect_one_line_error(polytask("train --loss-weight nosuchtask=1 --data synthetic:digits"), 2, "nosuchtask");
  expect_one_line_error(polytask("frobnicate"), 2, "frobnicate");
  expect_one_line_error(polytask("train --precision fp16"), 2, "--precision");
  expect_one_line_error(polytask(std::string("train --precision tf32 ") + kQuick + " --out " + path("tc")),
                        1, "precision tf32 runs on the GPU's tensor cores");
  expect_one_line_error(polytask("eval --run " + path("nothing-here")), 1, "nothing-here");
  std::ofstream(path("broken.toml")) << "name = \"x\"\n[[layers]\n";
  expect_one_line_error(polytask("train --config " + path("broken.toml") + " --data synthetic:digits"), 1, "broken.toml:2");
  // A truncated IDX file.
  fs::create_directories(dir_ / "idx");
  std::ofstream(path("idx/train-images-idx3-ubyte"), std::ios::binary) << std::string("\0\0\x08\x03\0\0\0\x05", 8);
  expect_one_line_error(polytask("train --data " + path("idx") + " --out " + path("r")), 1, "idx");
}

// Eight 28x28 images per split in raw IDX files (a big-endian header: magic, then the dimension
// sizes). The family is read from the whole path (datasets/data.cpp), so the test's own name
// must not say "fashion".
void write_small_idx(const fs::path& dir) {
  const auto header = [](std::string& out, std::initializer_list<uint32_t> words) {
    for (uint32_t w : words)
      for (int shift = 24; shift >= 0; shift -= 8) out += char(w >> shift);
  };
  std::string images, labels;
  header(images, {0x803, 8, 28, 28});
  for (int p = 0; p < 8 * 28 * 28; ++p) images += char(p * 7 % 256);
  header(labels, {0x801, 8});
  for (int c : {0, 1, 2, 3, 5, 7, 8, 9}) labels += char(c);
  fs::create_directories(dir);
  for (const std::string split : {"train", "t10k"}) {
    std::ofstream(dir / (split + "-images-idx3-ubyte"), std::ios::binary) << images;
    std::ofstream(dir / (split + "-labels-idx1-ubyte"), std::ios::binary) << labels;
  }
}

TEST_F(Cli, RegionRuleIsRefusedOnDigitsAndTrainsOnGarmentPairs) {
  const Result shown = polytask("models --show fashion-type-brightness");
  ASSERT_EQ(shown.code, 0);
  std::string config = shown.out;
  const auto label = config.find("label = \"class\"");
  ASSERT_NE(label, std::string::npos) << config;
  config.replace(label, 15, "label = \"region\"");
  std::ofstream(path("region.toml")) << config;
  write_small_idx(dir_ / "mnist");
  write_small_idx(dir_ / "fashion");
  const std::string run = " --config " + path("region.toml") + " --epochs 1 --batch-size 4 --device cpu";
  expect_one_line_error(polytask("train" + run + " --data " + path("mnist") + " --out " + path("r1")), 1,
                        "rule 'region' maps Fashion-MNIST garments; this data's classes are MNIST digits");
  const Result trained = polytask("train" + run + " --data multi:" + path("fashion") + " --out " + path("r2"));
  EXPECT_EQ(trained.code, 0) << trained.out;
  EXPECT_NE(trained.out.find("MultiFashion: 8 train / 8 test 36x36 pairs"), std::string::npos) << trained.out;
  const Result predicted = polytask("predict --run " + path("r2") + " --indices 0,1");
  EXPECT_EQ(predicted.code, 0) << predicted.out;
  EXPECT_NE(predicted.out.find("upper body"), std::string::npos) << predicted.out;  // row 0: T-shirt
}

TEST_F(Cli, TrainingIntoAnExistingRunIsRefusedAndNothingIsOverwritten) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  const std::string before = read(dir_ / "run" / "model.safetensors");
  expect_one_line_error(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")), 2, "--resume");
  EXPECT_EQ(read(dir_ / "run" / "model.safetensors"), before);
}

TEST_F(Cli, ACheckpointFromAnotherModelIsRejected) {
  ASSERT_EQ(polytask(std::string("train --epochs 1 ") + kQuick + " --out " + path("run")).code, 0);
  // Swap in another preset's config (same data shapes, other layers).
  const Result other = polytask("models --show fashion-type-brightness");
  ASSERT_EQ(other.code, 0);
  std::ofstream(path("run/config.toml")) << other.out;
  const Result r = polytask("eval --run " + path("run"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("another model"), std::string::npos) << r.out;
}

}  // namespace

// ---- gradient balancing ----------------------------------------------------------------------

namespace {

// The JSON object after "key": in a line, as text ("{...}"), or "" when absent.
std::string object_field(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": {");
  if (at == std::string::npos) return "";
  const auto begin = json.find('{', at);
  return json.substr(begin, json.find('}', begin) + 1 - begin);
}

}  // namespace

TEST_F(Cli, EveryBalancerTrainsAndLogsItsWeightsNormsAndCosines) {
  for (const std::string balancer :
       {"static", "dynamic", "uncertainty", "gradnorm", "dwa", "pcgrad", "mgda", "upgrad", "famo",
        "cagrad", "nash-mtl", "imtl", "aligned-mtl", "rlw", "static-from-norms"}) {
    const std::string out = path("run-" + balancer);
    const Result r = polytask(std::string("train --epochs 2 ") + kQuick +
                              " --limit 256 --balancer " + balancer + " --out " + out);
    ASSERT_EQ(r.code, 0) << balancer << ": " << r.out;
    EXPECT_NE(r.out.find("  weights: digit "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" | cos(digit,parity) "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("% of steps < 0)"), std::string::npos) << r.out;
    const auto epochs = lines(read(fs::path(out) / "metrics.jsonl"));
    ASSERT_EQ(epochs.size(), 2u) << balancer;
    EXPECT_NE(epochs[1].find(std::string("\"balancer\": \"") + balancer + "\""), std::string::npos)
        << epochs[1];
    const std::string weights = object_field(epochs[1], "weights");
    EXPECT_GT(field(weights, "digit"), 0.0) << balancer << ": " << epochs[1];
    EXPECT_GT(field(object_field(epochs[1], "grad_norm"), "parity"), 0.0) << epochs[1];
    const double cosine = field(object_field(epochs[1], "grad_cosine"), "digit,parity");
    EXPECT_TRUE(cosine >= -1 && cosine <= 1) << epochs[1];
    const double conflict = field(object_field(epochs[1], "grad_conflict"), "digit,parity");
    EXPECT_TRUE(conflict >= 0 && conflict <= 1) << epochs[1];
    const std::string config = read(fs::path(out) / "config.toml");
    EXPECT_EQ(config.find("[balancer]") != std::string::npos, balancer != "static")
        << config;
  }
}

TEST_F(Cli, BalancerMistakesGetOneClearLine) {
  expect_one_line_error(polytask("train --balancer nosuch --data synthetic:digits"), 2,
                        "unknown balancer 'nosuch'");
  expect_one_line_error(polytask("train --balancer nosuch --data synthetic:digits"), 2,
                        "gradnorm, dwa, pcgrad, mgda");
  expect_one_line_error(
      polytask("train --balancer mgda --gradnorm-alpha 1 --data synthetic:digits"), 2,
      "--gradnorm-alpha applies to --balancer gradnorm");
  expect_one_line_error(polytask("train --dwa-temperature 2 --data synthetic:digits"), 2,
                        "this run uses static");
  expect_one_line_error(
      polytask("train --balancer dwa --dwa-temperature 0 --data synthetic:digits"), 2,
      "--dwa-temperature must be positive");
  expect_one_line_error(
      polytask("train --balancer dynamic --schedule nosuch=1,0.5 --data synthetic:digits"), 2,
      "no task named 'nosuch'");
  expect_one_line_error(
      polytask("train --balancer dynamic --schedule parity=1,x --data synthetic:digits"), 2,
      "--schedule parity");
  expect_one_line_error(
      polytask("train --balancer mgda --mgda-normalization max --data synthetic:digits"), 2,
      "normalization");
  expect_one_line_error(polytask("train --balancer mgda --balancer-lr 0.1 --data synthetic:digits"),
                        2, "--balancer-lr applies to --balancer uncertainty, gradnorm, imtl or famo");
  expect_one_line_error(polytask("train --balancer upgrad --cagrad-c 1 --data synthetic:digits"), 2,
                        "--cagrad-c applies to --balancer cagrad; this run uses upgrad");
  expect_one_line_error(polytask("train --balancer cagrad --cagrad-c -1 --data synthetic:digits"),
                        2, "--cagrad-c must be in [0, 100]");
  expect_one_line_error(
      polytask("train --balancer imtl --imtl-mode both --data synthetic:digits"), 2,
      "imtl mode must be hybrid, gradient or loss");
  expect_one_line_error(
      polytask("train --balancer aligned-mtl --aligned-scale max --data synthetic:digits"), 2,
      "scale must be min, median or rmse");
  expect_one_line_error(polytask("train --balancer famo --famo-decay 2 --data synthetic:digits"),
                        2, "--famo-decay must be in [0, 1]");
}

TEST_F(Cli, AResumedRunKeepsItsBalancerAndContinuesExactly) {
  const std::string fixed =
      std::string(kQuick) +
      " --preset fashion-type-brightness --balancer uncertainty --balancer-lr 0.01";
  ASSERT_EQ(polytask("train --epochs 2 " + fixed + " --out " + path("straight")).code, 0);
  const Result first = polytask("train --epochs 1 " + fixed + " --out " + path("resumed"));
  ASSERT_EQ(first.code, 0) << first.out;
  // Another balancer, or another option of this one, is refused; the run is untouched.
  const std::string before = read(dir_ / "resumed" / "training_state.safetensors");
  expect_one_line_error(
      polytask("train --resume " + path("resumed") + " --epochs 2 --balancer mgda"), 2,
      "trained with --balancer uncertainty");
  expect_one_line_error(
      polytask("train --resume " + path("resumed") + " --epochs 2 --balancer-lr 0.1"), 2,
      "--balancer-lr cannot change when resuming");
  EXPECT_EQ(read(dir_ / "resumed" / "training_state.safetensors"), before);
  // Naming the same balancer is fine.
  const Result second =
      polytask("train --resume " + path("resumed") + " --epochs 2 --balancer uncertainty");
  ASSERT_EQ(second.code, 0) << second.out;
  const auto a = lines(read(dir_ / "straight" / "metrics.jsonl"));
  const auto b = lines(read(dir_ / "resumed" / "metrics.jsonl"));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(without_seconds(b[0]), without_seconds(a[0]));
  EXPECT_EQ(without_seconds(b[1]), without_seconds(a[1]));
  EXPECT_NE(object_field(a[1], "weights"), "{\"type\": 1, \"brightness\": 1}")
      << a[1];  // it did learn
}

TEST_F(Cli, TheConfigsBalancerTableIsUsedAndTheCommandLineOverridesIt) {
  const Result shown = polytask("models --show mnist-digit-parity");
  ASSERT_EQ(shown.code, 0);
  std::ofstream(path("dwa.toml")) << shown.out << "\n[balancer]\nname = \"dwa\"\ntemperature = 3\n";
  const Result r = polytask("train --config " + path("dwa.toml") + " --epochs 1 " + kQuick +
                            " --limit 128 --out " + path("a"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("balancer: dwa (temperature 3)"), std::string::npos) << r.out;
  // A flag of the config's strategy overrides its option; --balancer replaces the strategy.
  const Result t =
      polytask("train --config " + path("dwa.toml") + " --dwa-temperature 5 --epochs 1 " + kQuick +
               " --limit 128 --out " + path("b"));
  ASSERT_EQ(t.code, 0) << t.out;
  EXPECT_NE(t.out.find("balancer: dwa (temperature 5)"), std::string::npos) << t.out;
  EXPECT_NE(read(dir_ / "b" / "config.toml").find("temperature = 5.0"), std::string::npos);
  const Result p =
      polytask("train --config " + path("dwa.toml") + " --balancer pcgrad --epochs 1 " + kQuick +
               " --limit 128 --out " + path("c"));
  ASSERT_EQ(p.code, 0) << p.out;
  EXPECT_NE(p.out.find("balancer: pcgrad"), std::string::npos) << p.out;
}
