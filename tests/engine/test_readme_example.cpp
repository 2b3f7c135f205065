// The README's library example, compiled and run (on synthetic data, briefly), so the
// documentation cannot drift from the API.
#include <gtest/gtest.h>

#include <sstream>

#include "datasets/data.h"
#include "datasets/labels.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"

namespace polytask {
namespace {

TEST(ReadmeExample, TrainsAndChangesAWeightWithoutRebuilding) {
  std::ostringstream log;
  ModelBuilder b;
  Value x = b.input("image", {1, 28, 28});
  Value h = layers::conv2d(32, 3, {.activation = layers::Activation::ReLU})(x);
  h = layers::flatten()(layers::max_pool2d(2)(h));
  Value z = layers::dense(128, layers::Activation::ReLU, "shared")(h);
  Model model = b.build({{"digit", layers::dense(10)(z)}, {"parity", layers::dense(2)(z)}});

  std::vector<Task> tasks{{.name = "digit", .weight = 1.0, .label = "class"},
                          {.name = "parity", .weight = 0.5}};
  auto data = datasets::load_data("synthetic:digits", {.limit = 384});
  datasets::attach_task_targets(data.train, tasks, /*seed=*/0);

  Network net(model, tasks, {.max_batch = 128});
  Adam adam;
  const auto logs = Trainer(net, adam).fit(data.train, {.epochs = 2, .validation_split = 0.1, .log = &log});
  net.fan_out().set_weight("parity", 0.25);

  ASSERT_EQ(logs.size(), 2u);
  EXPECT_LT(logs[1].train_loss, logs[0].train_loss);
  EXPECT_NE(log.str().find("Epoch 2/2"), std::string::npos);
  EXPECT_EQ(net.fan_out().weight(1), 0.25);
  EXPECT_NE(net.plan_summary().find("shared_relu"), std::string::npos);
}

}  // namespace
}  // namespace polytask
