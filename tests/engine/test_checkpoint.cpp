// Checkpoints: resuming continues the exact trajectory (losses and parameters bit-identical to
// an uninterrupted run, for Adam and SGD, F32 and F64), loading refuses another model, another
// optimiser, another seed or a torn pair of files with a clear error and leaves the network
// untouched, and model.safetensors opens in Python under the parameter names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/layers.h"
#include "engine/safetensors.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

namespace fs = std::filesystem;
using namespace layers;
using testing::contains;
using testing::error_message;
using testing::fill_batch;
using testing::values_of;

constexpr int64_t kBatch = 6;

// Two heads over a trunk with BatchNorm (non-trainable running statistics) and dropout (masks
// keyed on the network's step): image (1, 6, 6) -> conv "conv" -> batch_norm "bn" -> relu ->
// max_pool -> flatten -> dense relu "trunk" -> dropout "drop" -> heads "digit" dense(3)
// (softmax-CE) and "size" dense(1) (MSE). `filters` and `extra_layer` make other models.
Model small_model(int64_t filters = 4, bool extra_layer = false) {
  ModelBuilder b;
  Value x = b.input("image", {1, 6, 6});
  Value c = conv2d(filters, 3, {.padding = Padding::Same, .name = "conv"})(x);
  c = relu("bn_relu")(batch_norm({.name = "bn"})(c));
  Value z = dense(8, Activation::ReLU, "trunk")(flatten("flatten")(max_pool2d(2, 0, "pool")(c)));
  if (extra_layer) z = dense(8, Activation::ReLU, "extra")(z);
  z = dropout(0.25, "drop")(z);
  return b.build({{"digit", dense(3, Activation::None, "digit_logits")(z)},
                  {"size", dense(1, Activation::None, "size_out")(z)}});
}

enum class Opt { Adam, Sgd };

// A model, its network and an optimiser: one training run.
struct TrainingRun {
  explicit TrainingRun(DType dtype = DType::F32, Opt opt = Opt::Adam, uint64_t seed = 5,
                       Model m = small_model())
      : model(std::move(m)) {
    NetworkOptions o;
    o.max_batch = kBatch;
    o.dtype = dtype;
    o.seed = seed;
    net = std::make_unique<Network>(model, testing::two_head_tasks(), o);
    if (opt == Opt::Adam) {
      kernels::AdamParams p;
      p.lr = 0.01f;
      optimizer = std::make_unique<Adam>(p);
    } else {
      kernels::SgdParams p;
      p.lr = 0.05f;
      p.momentum = 0.9f;
      p.nesterov = true;
      optimizer = std::make_unique<Sgd>(p);
    }
  }

  // One optimiser step on batch `batch` (the same seeded data whichever run takes it).
  double step(uint64_t batch) {
    fill_batch(*net, 1000 + batch);
    net->forward(kBatch, true);
    const double loss = net->total_loss();
    net->backward();
    optimizer->step(net->parameters());
    return loss;
  }

  std::vector<double> trainable() const { return values_of(net->parameters().values); }
  std::vector<double> state() const { return values_of(net->parameters().state); }

  Model model;
  std::unique_ptr<Network> net;
  std::unique_ptr<Optimizer> optimizer;
};

std::vector<std::vector<double>> optimizer_state(Optimizer& opt) {
  std::vector<std::vector<double>> out;
  for (const auto& [name, t] : opt.state())
    if (t.defined()) out.push_back(values_of(t));
  return out;
}

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : test)
      if (c == '/') c = '_';  // parameterised tests: "Name/f32_adam"
    dir_ =
        (fs::temp_directory_path() / cat("polytask_checkpoint_", ::getpid(), "_", test)).string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string sub(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::string dir_;
};

// ---- resuming ------------------------------------------------------------------------------

class Resume : public Checkpoint, public ::testing::WithParamInterface<std::tuple<DType, Opt>> {};

TEST_P(Resume, ContinuesBitIdentically) {
  const auto [dtype, opt] = GetParam();
  TrainingRun original(dtype, opt);
  for (uint64_t s = 0; s < 3; ++s) original.step(s);
  TrainingState st;
  st.epoch = 2;
  st.metadata = {{"config", "[model]\npreset = \"tiny\"\n"}, {"data", "synthetic"}};
  save_checkpoint(sub("ckpt"), *original.net, original.optimizer.get(), st);

  // A fresh run whose parameters, BatchNorm statistics, optimiser state and step all differ.
  TrainingRun restored(dtype, opt);
  restored.net->initialize(99);
  restored.step(42);
  ASSERT_NE(restored.trainable(), original.trainable());

  const TrainingState loaded = load_training_state(sub("ckpt"), *restored.net, *restored.optimizer);
  EXPECT_EQ(loaded.epoch, 2);
  EXPECT_EQ(loaded.network_step, 3u);
  EXPECT_EQ(loaded.metadata, st.metadata);
  EXPECT_EQ(restored.net->step(), 3u);
  EXPECT_EQ(restored.trainable(), original.trainable());
  EXPECT_EQ(restored.state(), original.state());
  EXPECT_EQ(optimizer_state(*restored.optimizer), optimizer_state(*original.optimizer));
  EXPECT_EQ(restored.optimizer->learning_rate(), original.optimizer->learning_rate());

  for (uint64_t s = 3; s < 6; ++s) {
    const double expected = original.step(s);
    EXPECT_EQ(restored.step(s), expected) << "loss of step " << s + 1;
  }
  EXPECT_EQ(restored.trainable(), original.trainable());
  EXPECT_EQ(restored.state(), original.state());
  EXPECT_EQ(optimizer_state(*restored.optimizer), optimizer_state(*original.optimizer));
}

INSTANTIATE_TEST_SUITE_P(DTypesAndOptimizers, Resume,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F64),
                                            ::testing::Values(Opt::Adam, Opt::Sgd)),
                         [](const auto& test) {
                           return cat(dtype_name(std::get<0>(test.param)),
                                      std::get<1>(test.param) == Opt::Adam ? "_adam" : "_sgd");
                         });

TEST_F(Checkpoint, SavedBeforeTheFirstStepResumesToo) {
  TrainingRun original;
  save_checkpoint(dir_, *original.net, original.optimizer.get(), {});
  TrainingRun restored;
  restored.step(7);
  load_training_state(dir_, *restored.net, *restored.optimizer);
  EXPECT_EQ(restored.net->step(), 0u);
  for (uint64_t s = 0; s < 2; ++s) EXPECT_EQ(restored.step(s), original.step(s));
  EXPECT_EQ(restored.trainable(), original.trainable());
}

TEST_F(Checkpoint, SavingAgainReplacesTheCheckpoint) {
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {1, 0, {}});
  run.step(1);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {2, 0, {}});
  EXPECT_EQ(read_training_state(dir_).epoch, 2);
  EXPECT_EQ(read_training_state(dir_).network_step, 2u);
  TrainingRun restored;
  load_training_state(dir_, *restored.net, *restored.optimizer);
  EXPECT_EQ(restored.trainable(), run.trainable());
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// ---- the files -----------------------------------------------------------------------------

TEST_F(Checkpoint, ModelFileHoldsEveryParameterByName) {
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {1, 0, {{"preset", "tiny"}}});
  const SafetensorsFile model = SafetensorsFile::read(sub("model.safetensors"));
  const auto& all = run.net->parameters().all;
  ASSERT_EQ(model.entries().size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(model.entries()[i].name, all[i]->name);
    EXPECT_EQ(model.entries()[i].dtype, "F32");
    EXPECT_EQ(values_of(model.tensor(all[i]->name)), values_of(all[i]->value));
  }
  ASSERT_NE(model.find("bn.running_mean"), nullptr);
  EXPECT_EQ(model.metadata_value("format"), "polytask-checkpoint");
  EXPECT_EQ(model.metadata_value("parameter_count"),
            std::to_string(run.net->parameters().trainable_count));

  const SafetensorsFile state = SafetensorsFile::read(sub("training_state.safetensors"));
  EXPECT_EQ(state.metadata_value("optimizer"), "adam");
  EXPECT_EQ(state.metadata_value("epoch"), "1");
  EXPECT_EQ(state.metadata_value("preset"), "tiny");
  EXPECT_EQ(state.metadata_value("checkpoint_id"), model.metadata_value("checkpoint_id"));
  ASSERT_NE(state.find("adam.m"), nullptr);
  EXPECT_EQ(state.tensor("adam.step").item(0), 2.0);

  const TrainingState read = read_training_state(dir_);
  EXPECT_EQ(read.epoch, 1);
  EXPECT_EQ(read.network_step, 1u);
  EXPECT_EQ(read.metadata, (std::map<std::string, std::string>{{"preset", "tiny"}}));
}

TEST_F(Checkpoint, F32CheckpointLoadsIntoAnF64Network) {
  TrainingRun f32(DType::F32);
  f32.step(0);
  save_checkpoint(dir_, *f32.net, f32.optimizer.get(), {});
  TrainingRun f64(DType::F64);
  load_parameters(dir_, *f64.net);
  EXPECT_EQ(f64.trainable(), f32.trainable());  // float -> double is exact
  EXPECT_EQ(f64.state(), f32.state());
  load_parameters(sub("model.safetensors"), *f64.net);  // a file works as well as a directory
}

TEST_F(Checkpoint, ReservedMetadataKeysAreRefused) {
  TrainingRun run;
  EXPECT_TRUE(
      contains(error_message([&] {
                 save_checkpoint(dir_, *run.net, run.optimizer.get(), {0, 0, {{"epoch", "9"}}});
               }),
               "metadata key 'epoch' is reserved"));
}

// ---- refusing what does not fit ------------------------------------------------------------

TEST_F(Checkpoint, AnotherModelIsRefusedAndTheNetworkUntouched) {
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {});
  const std::string file = sub("model.safetensors");

  TrainingRun wider(DType::F32, Opt::Adam, 5, small_model(5));
  const auto before = wider.trainable();
  std::string message = error_message([&] { load_parameters(dir_, *wider.net); });
  EXPECT_TRUE(
      contains(message, "checkpoint " + file +
                            " is from another model: parameter conv.weight has shape "
                            "(4, 1, 3, 3) in the checkpoint but (5, 1, 3, 3) in the model"));
  EXPECT_TRUE(contains(message, "more differences"));
  EXPECT_EQ(wider.trainable(), before);
  message = error_message([&] { load_training_state(dir_, *wider.net, *wider.optimizer); });
  EXPECT_TRUE(contains(message, "is from another model"));
  EXPECT_EQ(wider.trainable(), before);

  TrainingRun deeper(DType::F32, Opt::Adam, 5, small_model(4, true));
  EXPECT_TRUE(
      contains(error_message([&] { load_parameters(dir_, *deeper.net); }),
               "checkpoint " + file + " is from another model: missing parameter extra.weight"));

  save_checkpoint(sub("deeper"), *deeper.net, deeper.optimizer.get(), {});
  EXPECT_TRUE(contains(error_message([&] { load_parameters(sub("deeper"), *run.net); }),
                       "is from another model: unexpected tensor extra.weight"));
}

TEST_F(Checkpoint, AnotherOptimizerIsRefused) {
  TrainingRun adam(DType::F32, Opt::Adam);
  adam.step(0);
  save_checkpoint(dir_, *adam.net, adam.optimizer.get(), {});
  TrainingRun sgd(DType::F32, Opt::Sgd);
  const auto before = sgd.trainable();
  EXPECT_TRUE(contains(error_message([&] { load_training_state(dir_, *sgd.net, *sgd.optimizer); }),
                       "was trained with optimizer adam; cannot resume it with sgd"));
  EXPECT_EQ(sgd.trainable(), before);
  load_parameters(dir_, *sgd.net);  // the parameters alone are fine
  EXPECT_EQ(sgd.trainable(), adam.trainable());

  save_checkpoint(sub("no_optimizer"), *adam.net, nullptr, {});
  EXPECT_TRUE(contains(
      error_message([&] { load_training_state(sub("no_optimizer"), *adam.net, *adam.optimizer); }),
      "holds no optimizer state"));
}

TEST_F(Checkpoint, AnotherSeedIsRefused) {
  TrainingRun run;
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {});
  TrainingRun other(DType::F32, Opt::Adam, 6);
  EXPECT_TRUE(
      contains(error_message([&] { load_training_state(dir_, *other.net, *other.optimizer); }),
               "seed 5 but this one has seed 6"));
}

// The process died between writing model.safetensors and training_state.safetensors: the new
// model sits beside the previous training state.
TEST_F(Checkpoint, TornPairOfFilesIsDetected) {
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {1, 0, {}});
  fs::copy_file(sub("training_state.safetensors"), sub("old_state"));
  run.step(1);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {2, 0, {}});
  fs::copy_file(sub("old_state"), sub("training_state.safetensors"),
                fs::copy_options::overwrite_existing);

  TrainingRun restored;
  const auto before = restored.trainable();
  const std::string message =
      error_message([&] { load_training_state(dir_, *restored.net, *restored.optimizer); });
  EXPECT_TRUE(contains(message, "checkpoint " + dir_ + " is inconsistent"));
  EXPECT_TRUE(contains(message, "not written together"));
  EXPECT_EQ(restored.trainable(), before);
  load_parameters(dir_, *restored.net);  // the newer model alone still loads
  EXPECT_EQ(restored.trainable(), run.trainable());
}

TEST_F(Checkpoint, MissingOrForeignFilesAreNamed) {
  TrainingRun run;
  EXPECT_TRUE(
      contains(error_message([&] { load_training_state(sub("absent"), *run.net, *run.optimizer); }),
               "checkpoint directory " + sub("absent") + " does not exist"));
  EXPECT_TRUE(
      contains(error_message([&] { load_parameters(sub("absent"), *run.net); }), sub("absent")));
  fs::create_directories(dir_);
  write_safetensors(sub("training_state.safetensors"), {});
  EXPECT_TRUE(
      contains(error_message([&] { read_training_state(dir_); }), "not a polytask checkpoint"));
}

// ---- Python --------------------------------------------------------------------------------

TEST_F(Checkpoint, PythonOpensTheModelFile) {
  std::string py;
  for (const char* candidate : {"python3", "/usr/bin/python3"})
    if (py.empty() &&
        std::system(cat(candidate, " -c 'import safetensors, numpy' >/dev/null 2>&1").c_str()) == 0)
      py = candidate;
  if (py.empty())
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import safetensors and numpy "
                    "(pip install safetensors numpy)";
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {});
  const std::string script = (fs::path(__FILE__).parent_path() / "safetensors_interop.py").string();
  std::FILE* p = ::popen(cat(py, " '", script, "' roundtrip '", sub("model.safetensors"), "' '",
                             sub("copy.safetensors"), "' 2>&1")
                             .c_str(),
                         "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_TRUE(contains(out, "\"conv.weight\": {\"dtype\": \"float32\", \"shape\": [4, 1, 3, 3]}"));
  EXPECT_TRUE(contains(out, "\"bn.running_var\": {\"dtype\": \"float32\", \"shape\": [4]}"));
  EXPECT_TRUE(contains(out, "\"format\": \"polytask-checkpoint\""));
  // What Python read, written back by Python, loads into the network unchanged.
  TrainingRun other;
  load_parameters(sub("copy.safetensors"), *other.net);
  EXPECT_EQ(other.trainable(), run.trainable());
  EXPECT_EQ(other.state(), run.state());
}

}  // namespace
}  // namespace polytask
