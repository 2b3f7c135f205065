// The TensorBoard callback from the library: what a fit writes, for any network dtype and with
// or without validation data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "tests/engine/engine_fixtures.h"
#include "watch/event_file.h"
#include "watch/tensorboard_callback.h"

namespace polytask::watch {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> tags_in(const fs::path& dir) {
  std::vector<std::string> tags;
  for (const auto& entry : fs::directory_iterator(dir))
    for (const auto& r : read_events(entry.path().string()))
      tags.insert(tags.end(), r.tags.begin(), r.tags.end());
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

bool has(const std::vector<std::string>& tags, const std::string& tag) {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

// The float fields of `d` as `dtype` (F64 networks train on F64 data).
Dataset with_dtype(Dataset d, DType dtype) {
  for (auto* fields : {&d.inputs, &d.targets})
    for (auto& field : *fields) {
      if (field.tensor.dtype() != DType::F32 || dtype == DType::F32) continue;
      std::vector<double> values;
      for (float v : field.tensor.to_vector<float>()) values.push_back(v);
      field.tensor = Tensor::from_vector<double>(field.tensor.shape(), values);
    }
  return d;
}

class TensorBoardCallback : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / cat("polytask_tb_callback_", ::getpid(), "_", int(GetParam()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(TensorBoardCallback, WritesEpochScalarsHistogramsAndTheConfig) {
  NetworkOptions o;
  o.max_batch = 8;
  o.seed = 3;
  o.dtype = GetParam();
  Network net(testing::two_head_model(), testing::two_head_tasks(), o);
  Adam adam;
  Trainer trainer(net, adam);
  TensorBoardOptions tb;
  tb.log_dir = (dir_ / "tb").string();
  tb.log_every = 2;
  tb.config_text = "name = \"two-head\"";
  FitOptions fit;
  fit.epochs = 2;
  fit.batch_size = 8;
  fit.callbacks = {std::make_shared<TensorBoard>(tb)};  // no validation split
  trainer.fit(with_dtype(testing::two_head_dataset(24), GetParam()), fit);
  const auto train = tags_in(dir_ / "tb/train");
  for (const char* tag : {"epoch_loss", "epoch_digit_loss", "epoch_size_mae", "epoch_learning_rate",
                          "batch_loss", "balancer/weight/size", "h.weight", "config"})
    EXPECT_TRUE(has(train, tag)) << tag;
  EXPECT_FALSE(has(train, "sample_predictions")) << "the model's input is not an image";
  EXPECT_FALSE(fs::exists(dir_ / "tb/validation")) << "no validation data, no validation run";
}

INSTANTIATE_TEST_SUITE_P(DTypes, TensorBoardCallback, ::testing::Values(DType::F32, DType::F64),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace polytask::watch
