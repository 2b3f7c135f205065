// Checkpoints: resuming continues the exact trajectory (losses and parameters bit-identical to
// an uninterrupted run, for Adam and SGD, F32 and F64), loading refuses another model, another
// optimiser, another seed or a torn pair of files with a clear error and leaves the network
// untouched, and model.safetensors opens in Python under the parameter names.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/checkpoint_layout.h"
#include "engine/layers.h"
#include "engine/safetensors.h"
#include "tests/engine/engine_fixtures.h"
#include "tests/support/python.h"

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
  const std::string file = sub("current/model.safetensors");  // the committed pair's

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

// ---- interrupted saves ----------------------------------------------------------------------

// Sets POLYTASK_TEST_CHECKPOINT_FAULT for one scope (checkpoint_layout.h).
struct FaultInjection {
  explicit FaultInjection(const std::string& spec) {
    ::setenv("POLYTASK_TEST_CHECKPOINT_FAULT", spec.c_str(), 1);
  }
  ~FaultInjection() { ::unsetenv("POLYTASK_TEST_CHECKPOINT_FAULT"); }
};

// Every dangerous moment of a save, in order; those from after-switch on come after the switch.
const char* const kSavePoints[] = {"model-written", "state-written", "before-switch",
                                   "after-switch",  "between-links", "linked"};
bool after_switch(const std::string& point) {
  return point == "after-switch" || point == "between-links" || point == "linked";
}

// The two-file layout of run directories written before checkpoints were committed as one.
void write_old_layout(const std::string& from_dir, const std::string& to_dir) {
  fs::create_directories(to_dir);
  for (const char* file : {kCheckpointModelFile, kCheckpointStateFile})
    fs::copy_file(fs::path(from_dir) / file, fs::path(to_dir) / file);  // follows the links
}

TEST_F(Checkpoint, AnInterruptedSaveLeavesTheOldPairOrTheNewOneNeverAMix) {
  for (const bool old_layout : {false, true})
    for (const std::string point : kSavePoints) {
      SCOPED_TRACE(cat(point, old_layout ? " (old layout)" : ""));
      const std::string dir = sub(cat(point, old_layout ? "-old" : ""));
      TrainingRun run;
      run.step(0);
      if (old_layout) {
        save_checkpoint(sub("scratch"), *run.net, run.optimizer.get(), {1, 0, {}});
        write_old_layout(sub("scratch"), dir);
      } else {
        save_checkpoint(dir, *run.net, run.optimizer.get(), {1, 0, {}});
      }
      const auto epoch1 = run.trainable();
      run.step(1);
      {
        FaultInjection fault("throw:" + point);
        EXPECT_TRUE(contains(
            error_message([&] { save_checkpoint(dir, *run.net, run.optimizer.get(), {2, 0, {}}); }),
            "checkpoint fault injected at " + point));
      }
      TrainingRun restored;
      const TrainingState st = load_training_state(dir, *restored.net, *restored.optimizer);
      EXPECT_EQ(st.epoch, after_switch(point) ? 2 : 1);
      EXPECT_EQ(restored.trainable(), st.epoch == 2 ? run.trainable() : epoch1);
      EXPECT_EQ(read_training_state(dir).epoch, st.epoch);
      // The next save completes and leaves one checkpoint directory.
      run.step(2);
      save_checkpoint(dir, *run.net, run.optimizer.get(), {3, 0, {}});
      TrainingRun again;
      EXPECT_EQ(load_training_state(dir, *again.net, *again.optimizer).epoch, 3);
      EXPECT_EQ(again.trainable(), run.trainable());
      size_t kept = 0;
      for (const auto& e : fs::directory_iterator(fs::path(dir) / kCheckpointsDir)) ++kept, (void)e;
      EXPECT_EQ(kept, 1u);
    }
}

TEST_F(Checkpoint, AKillAtAnyPointLeavesALoadablePair) {
  // As FaultInjection with "exit": the process ends there and then, no destructor runs.
  for (const std::string point : kSavePoints) {
    SCOPED_TRACE(point);
    const std::string dir = sub(point);
    TrainingRun run;
    run.step(0);
    save_checkpoint(dir, *run.net, run.optimizer.get(), {1, 0, {}});
    run.step(1);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
      ::setenv("POLYTASK_TEST_CHECKPOINT_FAULT", ("exit:" + point).c_str(), 1);
      save_checkpoint(dir, *run.net, run.optimizer.get(), {2, 0, {}});
      ::_exit(0);  // not reached when the fault fires
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), kCheckpointFaultExitCode);
    TrainingRun restored;
    const TrainingState st = load_training_state(dir, *restored.net, *restored.optimizer);
    EXPECT_EQ(st.epoch, after_switch(point) ? 2 : 1);
    if (st.epoch == 2) {
      EXPECT_EQ(restored.trainable(), run.trainable());
    }
  }
}

// Every file operation that can fail on a full disk or a bad one: the n-th write call (or
// fsync) of a save fails with ENOSPC or EIO through the writer's own error path, for every n
// until the save has no n-th call. Each time the previous pair must stay current and load,
// no temporary file may remain, and the run must go on saving and resuming.
TEST_F(Checkpoint, AFullDiskOrIoErrorAtAnyWriteLeavesThePreviousPair) {
  for (const std::string action : {"enospc", "eio"})
    for (const std::string point : {"file-write", "file-sync"}) {
      int failures = 0;
      for (int n = 1;; ++n) {
        SCOPED_TRACE(cat(action, ":", point, ":", n));
        const std::string dir = sub(cat(action, "-", point, "-", n));
        TrainingRun run;
        run.step(0);
        save_checkpoint(dir, *run.net, run.optimizer.get(), {1, 0, {}});
        const auto epoch1 = run.trainable();
        run.step(1);
        std::string message;
        bool failed = false;
        {
          FaultInjection fault(cat(action, ":", point, ":", n));
          try {
            save_checkpoint(dir, *run.net, run.optimizer.get(), {2, 0, {}});
          } catch (const Error& e) {
            failed = true;
            message = e.what();
          }
        }
        if (!failed) break;  // the save has fewer than n such calls: every one was failed
        ++failures;
        EXPECT_TRUE(contains(message, std::strerror(action == "enospc" ? ENOSPC : EIO)))
            << message;
        for (const auto& e : fs::recursive_directory_iterator(dir))
          EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
        TrainingRun restored;
        EXPECT_EQ(load_training_state(dir, *restored.net, *restored.optimizer).epoch, 1);
        EXPECT_EQ(restored.trainable(), epoch1);
        // The run resumes from there and its next save succeeds.
        restored.step(1);
        save_checkpoint(dir, *restored.net, restored.optimizer.get(), {2, 0, {}});
        TrainingRun again;
        EXPECT_EQ(load_training_state(dir, *again.net, *again.optimizer).epoch, 2);
        EXPECT_EQ(again.trainable(), run.trainable());
      }
      // Both files of the pair: at least two writes and two syncs were failed.
      EXPECT_GE(failures, 2) << action << ":" << point;
    }
}

TEST_F(Checkpoint, OldRunDirectoriesLoadAndSavingConvertsThem) {
  TrainingRun run;
  run.step(0);
  save_checkpoint(sub("new"), *run.net, run.optimizer.get(), {1, 0, {}});
  EXPECT_TRUE(fs::is_symlink(sub("new/current")));
  EXPECT_TRUE(fs::is_symlink(sub("new/model.safetensors")));
  write_old_layout(sub("new"), sub("old"));
  EXPECT_TRUE(has_checkpoint(sub("old")));
  TrainingRun restored;
  EXPECT_EQ(load_training_state(sub("old"), *restored.net, *restored.optimizer).epoch, 1);
  EXPECT_EQ(restored.trainable(), run.trainable());
  run.step(1);
  save_checkpoint(sub("old"), *run.net, run.optimizer.get(), {2, 0, {}});
  EXPECT_TRUE(fs::is_symlink(sub("old/model.safetensors")));
  EXPECT_TRUE(fs::is_symlink(sub("old/training_state.safetensors")));
  EXPECT_EQ(read_training_state(sub("old")).epoch, 2);
  load_parameters(sub("old/model.safetensors"), *restored.net);  // what Python opens
  EXPECT_EQ(restored.trainable(), run.trainable());
}

// A pid that was alive a moment ago and is not any more.
pid_t ended_process() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

TEST_F(Checkpoint, StaleTemporaryFilesAreRemovedLiveOnesKept) {
  TrainingRun run;
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {});
  const std::string dead = cat(".tmp-", ended_process());
  const std::string ours = cat(".tmp-", ::getpid());
  const std::string checkpoint = (fs::path(dir_) / fs::read_symlink(sub("current"))).string();
  std::vector<std::string> stale = {sub("metrics.jsonl" + dead), sub("model.safetensors" + dead),
                                    checkpoint + "/model.safetensors" + dead};
  std::error_code ec;
  (void)fs::read_symlink("/proc/1/exe", ec);
  if (!ec) stale.push_back(sub("current.tmp-1"));  // pid 1 runs another program
  for (const auto& f : stale) std::ofstream(f) << "partial";
  std::ofstream(sub("metrics.jsonl" + ours)) << "being written";
  std::ofstream(sub("notes.tmp-draft")) << "not ours to judge";
  std::vector<std::string> removed = remove_stale_temporary_files(dir_);
  std::sort(removed.begin(), removed.end());
  std::vector<std::string> expected = stale;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(removed, expected);
  for (const auto& f : stale) EXPECT_FALSE(fs::exists(f)) << f;
  EXPECT_TRUE(fs::exists(sub("metrics.jsonl" + ours)));
  EXPECT_TRUE(fs::exists(sub("notes.tmp-draft")));
  TrainingRun restored;
  load_training_state(dir_, *restored.net, *restored.optimizer);  // the checkpoint is intact
}

// ---- Python --------------------------------------------------------------------------------

TEST_F(Checkpoint, PythonOpensTheModelFile) {
  const std::string py = testing::python_that_imports("safetensors, numpy");
  if (py.empty())
    GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import safetensors and numpy "
                    "(pip install safetensors numpy)";
  TrainingRun run;
  run.step(0);
  save_checkpoint(dir_, *run.net, run.optimizer.get(), {});
  const std::string script = std::string(POLYTASK_SOURCE_DIR) + "/tests/engine/safetensors_interop.py";
  const auto [status, out] =
      testing::run_command(cat(py, " '", script, "' roundtrip '", sub("model.safetensors"), "' '",
                               sub("copy.safetensors"), "'"));
  ASSERT_EQ(status, 0) << out;
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
