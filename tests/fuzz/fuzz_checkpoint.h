// The fixed network the checkpoint targets load into, and a valid checkpoint of it (written
// once per process into the scratch directory): a fuzzed file then meets a real model with
// parameters (conv, dense), state tensors (BatchNorm statistics) and Adam moments.
//
// With POLYTASK_FUZZ_WRITE_SEEDS=DIR in the environment the target writes its seed files (the
// valid file and a few near-valid variants) into DIR and exits: scripts/make-fuzz-seeds.sh.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace polytask::fuzz {

struct FixedRun {
  FixedRun() : model(build()) {
    Task digit{.name = "digit"};
    Task size{.name = "size", .loss = LossKind::MeanSquaredError, .weight = 0.5};
    net = std::make_unique<Network>(model, std::vector<Task>{digit, size},
                                    NetworkOptions{.max_batch = 2, .seed = 3});
  }
  static Model build() {
    using namespace layers;
    ModelBuilder b;
    Value x = b.input("image", {1, 4, 4});
    Value c = relu("bn_relu")(batch_norm({.name = "bn"})(conv2d(2, 3, {.name = "conv"})(x)));
    Value z = dense(4, Activation::ReLU, "trunk")(flatten("flatten")(c));
    return b.build({{"digit", dense(3, Activation::None, "digit_logits")(z)},
                    {"size", dense(1, Activation::None, "size_out")(z)}});
  }
  Model model;
  std::unique_ptr<Network> net;
  Adam adam;
};

inline std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A committed checkpoint of a fresh FixedRun: scratch_dir()/valid/{model,training_state}.
inline const std::string& valid_checkpoint_dir() {
  static const std::string dir = [] {
    const std::string d = scratch_dir() + "/valid";
    FixedRun run;
    save_checkpoint(d, *run.net, &run.adam, {.epoch = 1, .metadata = {{"config", "x = 1"}}});
    return d;
  }();
  return dir;
}

// POLYTASK_FUZZ_WRITE_SEEDS: writes `valid` and near-valid variants of it (cut short, one byte
// of the header length changed, header text changed) as DIR/<stem>-*, then exits.
inline void write_seeds_if_asked(const std::string& stem, const std::string& valid) {
  const char* dir = std::getenv("POLYTASK_FUZZ_WRITE_SEEDS");
  if (!dir) return;
  std::filesystem::create_directories(dir);
  auto put = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(std::string(dir) + "/" + stem + "-" + name, std::ios::binary) << bytes;
  };
  put("valid", valid);
  put("truncated", valid.substr(0, valid.size() / 2));
  std::string length = valid;
  length[0] = char(length[0] + 8);
  put("header-length", length);
  std::string shape = valid;
  if (const auto at = shape.find("\"shape\":["); at != std::string::npos) shape[at + 9] = '9';
  put("shape", shape);
  std::exit(0);
}

}  // namespace polytask::fuzz
