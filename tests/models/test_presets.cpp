// The built-in presets: listed in order with one-line descriptions, each parses, builds for the
// input shapes of the data it is meant for, and trains (Adam, a fixed small random batch): the
// loss stays finite and falls over 20 steps.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "datasets/labels.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "models/config.h"
#include "tests/engine/engine_fixtures.h"
#include "tests/models/preset_cases.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

TEST(Presets, AreListedInOrderWithOneLineDescriptions) {
  const auto presets = list_presets();
  ASSERT_EQ(presets.size(), preset_cases().size());
  for (size_t i = 0; i < presets.size(); ++i) {
    EXPECT_EQ(presets[i].name, preset_cases()[i].name);
    EXPECT_FALSE(presets[i].description.empty()) << presets[i].name;
    EXPECT_EQ(presets[i].description.find('\n'), std::string::npos) << presets[i].name;
  }
}

TEST(Presets, EachNamesItselfAndItsDefaultData) {
  for (const auto& pc : preset_cases()) {
    SCOPED_TRACE(pc.name);
    const ModelConfig c = preset_config(pc.name);
    EXPECT_EQ(c.name, pc.name);
    EXPECT_EQ(c.origin, std::string("preset ") + pc.name);
    EXPECT_EQ(c.default_data, pc.default_data);
    EXPECT_GE(c.tasks.size(), 2u);
    for (const Task& t : c.tasks)
      EXPECT_EQ(t.effective_target(), t.loss == LossKind::SoftmaxCrossEntropy
                                          ? TargetKind::ClassIndex
                                          : TargetKind::Values)
          << t.name;
  }
}

class PresetTraining : public ::testing::TestWithParam<PresetCase> {};

TEST_P(PresetTraining, BuildsAndTheLossFallsOnAFixedBatch) {
  const PresetCase& pc = GetParam();
  const ModelConfig config = preset_config(pc.name);
  const Model model = build_model(config, pc.shapes);
  for (const Task& t : config.tasks) EXPECT_NO_THROW(model.output(t.output_name())) << t.name;

  constexpr int64_t kBatch = 8;
  NetworkOptions options;
  options.max_batch = kBatch;
  options.seed = 7;
  options.fan_out = fan_out_value(config);
  Network net(model, config.tasks, options);
  fill_random_batch(net, 11);
  Adam adam;

  std::vector<double> losses;
  for (int step = 0; step < 30; ++step) {
    net.forward(kBatch, true);
    losses.push_back(net.total_loss());
    ASSERT_TRUE(std::isfinite(losses.back())) << "step " << step;
    for (size_t t = 0; t < config.tasks.size(); ++t)
      ASSERT_TRUE(std::isfinite(net.task_loss(t))) << config.tasks[t].name << " at step " << step;
    net.backward();
    adam.step(net.parameters());
  }
  net.forward(kBatch, true);
  const double last = net.total_loss();
  EXPECT_LT(last, 0.7 * losses.front()) << "first " << losses.front() << ", last " << last;
}

INSTANTIATE_TEST_SUITE_P(AllPresets, PresetTraining, ::testing::ValuesIn(preset_cases()),
                         preset_test_name);

TEST(Presets, TheirFilesAreAvailableWithComments) {
  for (const auto& pc : preset_cases()) {
    const std::string text = preset_toml(pc.name);
    EXPECT_EQ(text.front(), '#') << pc.name;  // each file opens with a comment
    EXPECT_EQ(to_toml(parse_config(text, "copy.toml")), to_toml(preset_config(pc.name))) << pc.name;
  }
  EXPECT_TRUE(contains(error_message([] { preset_toml("nope"); }),
                       "unknown preset 'nope' (known presets: "));
}

TEST(Presets, DigitParityMatchesTheTutorialNetwork) {
  const Model m = build_model(preset_config("mnist-digit-parity"), {{"image", {1, 28, 28}}});
  // Keras' summary of the tutorial model: 320 + 18496 + 204928 + 1290 + 258 parameters.
  EXPECT_EQ(m.parameter_count(), 320 + 18496 + 204928 + 1290 + 258);
  EXPECT_EQ(m.output("digit").value.shape(), (Shape{10}));
  EXPECT_EQ(m.output("parity").value.shape(), (Shape{2}));
  const ModelConfig c = preset_config("mnist-digit-parity");
  EXPECT_EQ(c.tasks[0].weight, 1.0);
  EXPECT_EQ(c.tasks[1].weight, 0.5);
  EXPECT_EQ(c.tasks[1].label_source(), "parity");
}

TEST(Presets, DigitParityBuildsForOtherImageSizes) {
  const ModelConfig c = preset_config("mnist-digit-parity");
  // 32x32: 30 -> 15 -> 13 -> 6: 6*6*64 features into the shared layer.
  for (const Shape& image :
       {Shape{1, 32, 32}, Shape{3, 32, 32}, Shape{3, 28, 28}, Shape{1, 20, 24}}) {
    SCOPED_TRACE(image.str());
    const Model m = build_model(c, {{"image", image}});
    EXPECT_EQ(m.output("digit").value.shape(), (Shape{10}));
  }
  const Model m32 = build_model(c, {{"image", {1, 32, 32}}});
  EXPECT_EQ(m32.parameter_count(), 320 + 18496 + (6 * 6 * 64 * 128 + 128) + 1290 + 258);
  // Too small for two conv + pool stages: the error names the preset, the layer and the shape.
  const std::string e = error_message([&] { build_model(c, {{"image", {1, 8, 8}}}); });
  EXPECT_TRUE(contains(e, "preset mnist-digit-parity:")) << e;
  EXPECT_TRUE(contains(e, "pool2")) << e;
  EXPECT_TRUE(contains(e, "(64, 1, 1)")) << e;
}

TEST(Presets, ColourHeadMatchesTheColourRule) {
  const ModelConfig c = preset_config("mnist-digit-colour-residual");
  const Model m = build_model(c, {{"image", {3, 28, 28}}});
  EXPECT_EQ(m.output("colour").value.shape(), (Shape{datasets::kTintColourCount}));
  EXPECT_EQ(c.tasks[1].label_source(), "colour");
}

TEST(Presets, TwoInputPresetDeclaresItsShapes) {
  const ModelConfig c = preset_config("two-input-cls-reg");
  EXPECT_NO_THROW(build_model(c, {}));  // the declared shapes suffice
  const std::string e = error_message([&] { build_model(c, {{"a", {40}}, {"b", {100}}}); });
  EXPECT_TRUE(contains(e, "input 'a' is declared with shape (50,) but the data gives (40,)")) << e;
}

}  // namespace
}  // namespace polytask::models
