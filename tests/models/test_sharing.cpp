// The [sharing] modes (models/sharing.h): what each rewrite of the trunk produces, the options'
// errors, the round trip through to_toml, and — in double precision — that every mode's network
// (task copies, soft-sharing penalty, cross-stitch units, MMoE gates and experts) has the
// gradients of its total loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "engine/network.h"
#include "models/config.h"
#include "models/layer_spec.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

// A small hard-sharing model: a trunk of four layers (conv, pool, flatten, dense), three heads.
constexpr const char* kThreeHeads = R"(
name = "three-heads"

[[inputs]]
name = "image"
shape = [1, 6, 6]

[[layers]]
name = "conv"
type = "conv2d"
filters = 2
kernel = 3
activation = "relu"

[[layers]]
name = "pool"
type = "max_pool2d"

[[layers]]
name = "flat"
type = "flatten"

[[layers]]
name = "shared"
type = "dense"
units = 5
activation = "relu"

[[layers]]
name = "a"
type = "dense"
input = "shared"
units = 3

[[layers]]
name = "b_hidden"
type = "dense"
input = "shared"
units = 4
activation = "relu"

[[layers]]
name = "b"
type = "dense"
units = 1

[[layers]]
name = "c"
type = "dense"
input = "shared"
units = 2

[[outputs]]
name = "a"
layer = "a"

[[outputs]]
name = "b"
layer = "b"

[[outputs]]
name = "c"
layer = "c"

[[tasks]]
name = "a"
output = "a"
loss = "softmax_cross_entropy"

[[tasks]]
name = "b"
output = "b"
loss = "mse"
weight = 0.5

[[tasks]]
name = "c"
output = "c"
loss = "softmax_cross_entropy"
weight = 0.7
)";

ModelConfig with_sharing(const std::string& extra) {
  return parse_config(std::string(kThreeHeads) + "\n[sharing]\n" + extra, "three.toml");
}

std::vector<std::string> layer_names(const ModelConfig& config) {
  std::vector<std::string> names;
  for (const auto& spec : config.layers) names.push_back(spec->name);
  return names;
}

std::vector<std::string> inputs_of(const ModelConfig& config, const std::string& layer) {
  for (const auto& spec : config.layers)
    if (spec->name == layer) return spec->inputs;
  ADD_FAILURE() << "no layer " << layer;
  return {};
}

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

const std::map<std::string, Shape> kShapes = {{"image", {1, 6, 6}}};

TEST(Sharing, HardIsTheConfigAsWritten) {
  const ModelConfig plain = parse_config(kThreeHeads, "three.toml");
  EXPECT_TRUE(plain.sharing.is_default());
  EXPECT_EQ(layer_names(apply_sharing(plain)), layer_names(plain));
  // Sharing every trunk layer explicitly is the same model.
  EXPECT_EQ(layer_names(apply_sharing(with_sharing("mode = \"hard\"\nbranch_after = 4\n"))),
            layer_names(plain));
}

TEST(Sharing, BranchAfterCopiesTheRestOfTheTrunkPerTask) {
  for (const std::string after : {"2", "\"pool\""}) {
    SCOPED_TRACE(after);
    const auto names = layer_names(apply_sharing(with_sharing("branch_after = " + after + "\n")));
    EXPECT_TRUE(has(names, "conv") && has(names, "pool"));
    for (const char* t : {"a", "b", "c"}) {
      EXPECT_TRUE(has(names, std::string("flat@") + t));
      EXPECT_TRUE(has(names, std::string("shared@") + t));
    }
    EXPECT_FALSE(has(names, "shared"));
  }
  // The heads read their own task's copy.
  const ModelConfig rewritten = apply_sharing(with_sharing("branch_after = 2\n"));
  EXPECT_EQ(inputs_of(rewritten, "b_hidden"), std::vector<std::string>{"shared@b"});
  // Built, the network's fan-out is the last shared layer.
  const Model model = build_model(rewritten, kShapes);
  Network net(model, rewritten.tasks, testing::f64_options(3));
  EXPECT_EQ(net.fan_out().representation(), "pool");
}

TEST(Sharing, SeparateTrunksShareNothing) {
  const ModelConfig config = with_sharing("mode = \"separate\"\n");
  const ModelConfig plain = parse_config(kThreeHeads, "three.toml");
  const Model separate = build_model(config, kShapes);
  const Model hard = build_model(plain, kShapes);
  // conv 2·9+2 = 20, shared (2·2·2)·5+5 = 45 per task: two more trunks.
  EXPECT_EQ(separate.parameter_count(), hard.parameter_count() + 2 * (20 + 45));
  Network net(separate, config.tasks, testing::f64_options(3));
  EXPECT_EQ(net.fan_out().representation(), "image");
}

TEST(Sharing, SoftSharingTiesEachCopiedLayerWithParameters) {
  const ModelConfig config = with_sharing("mode = \"soft\"\nbranch_after = 1\nsoft_strength = 0.25\n");
  const SoftSharing soft = soft_sharing_of(config);
  EXPECT_EQ(soft.strength, 0.25);
  ASSERT_EQ(soft.groups.size(), 1u);  // pool and flatten have no parameters; conv is shared
  EXPECT_EQ(soft.groups[0], (std::vector<std::string>{"shared@a", "shared@b", "shared@c"}));
  EXPECT_TRUE(soft_sharing_of(with_sharing("mode = \"separate\"\n")).groups.empty());
}

TEST(Sharing, CrossStitchUnitsReadTheirOwnTaskFirst) {
  const ModelConfig rewritten = apply_sharing(with_sharing("mode = \"cross_stitch\"\n"));
  std::set<std::string> stitches;
  for (const auto& name : layer_names(rewritten))
    if (name.starts_with("stitch-")) stitches.insert(name);
  // By default after every copied pooling and dense layer: pool and shared, for each task.
  EXPECT_EQ(stitches, (std::set<std::string>{"stitch-pool@a", "stitch-pool@b", "stitch-pool@c",
                                             "stitch-shared@a", "stitch-shared@b",
                                             "stitch-shared@c"}));
  EXPECT_EQ(inputs_of(rewritten, "stitch-pool@b"), (std::vector<std::string>{"pool@b", "pool@a", "pool@c"}));
  EXPECT_EQ(inputs_of(rewritten, "flat@a"), std::vector<std::string>{"stitch-pool@a"});
  EXPECT_EQ(inputs_of(rewritten, "c"), std::vector<std::string>{"stitch-shared@c"});
  // The tasks meet at the last stitched layer's copies: a cut of three values.
  const Model model = build_model(rewritten, kShapes);
  Network net(model, rewritten.tasks, testing::f64_options(3));
  EXPECT_EQ(net.fan_out().representation(), "shared@a_relu + shared@b_relu + shared@c_relu");
  const auto only = apply_sharing(with_sharing("mode = \"cross_stitch\"\ncross_stitch_after = [\"conv\"]\n"));
  EXPECT_TRUE(has(layer_names(only), "stitch-conv@a"));
  EXPECT_EQ(inputs_of(only, "pool@c"), std::vector<std::string>{"stitch-conv@c"});
  EXPECT_FALSE(has(layer_names(only), "stitch-shared@a"));
}

TEST(Sharing, MmoeExpertsGatesAndMixtures) {
  const ModelConfig rewritten = apply_sharing(with_sharing("mode = \"mmoe\"\nexperts = 3\nbranch_after = 2\n"));
  const auto names = layer_names(rewritten);
  for (const char* e : {"expert1", "expert2", "expert3"})
    EXPECT_TRUE(has(names, std::string("shared@") + e));
  EXPECT_FALSE(has(names, "shared@a"));
  for (const char* t : {"a", "b", "c"}) {
    EXPECT_TRUE(has(names, std::string("gate@") + t));
    EXPECT_TRUE(has(names, std::string("mixture@") + t));
  }
  EXPECT_EQ(inputs_of(rewritten, "a"), std::vector<std::string>{"mixture@a"});
  EXPECT_EQ(inputs_of(rewritten, "gate-input@a"), std::vector<std::string>{"pool"});
  // The tasks meet at the experts and at the shared pool the gates read.
  const Model model = build_model(rewritten, kShapes);
  Network net(model, rewritten.tasks, testing::f64_options(3));
  EXPECT_EQ(net.fan_out().representation(), "pool + experts");
}

TEST(Sharing, EveryModeHasTheGradientsOfItsTotalLoss) {
  for (const std::string extra :
       {"mode = \"hard\"\nbranch_after = 2\n", "mode = \"separate\"\n",
        "mode = \"soft\"\nsoft_strength = 0.3\n", "mode = \"cross_stitch\"\n",
        "mode = \"cross_stitch\"\nbranch_after = 1\ncross_stitch_self_weight = 0.6\n",
        "mode = \"mmoe\"\n", "mode = \"mmoe\"\nbranch_after = 3\nexperts = 2\n"}) {
    SCOPED_TRACE(extra);
    const ModelConfig config = with_sharing(extra);
    NetworkOptions options = testing::f64_options(4, 5);
    options.fan_out = fan_out_value(config);
    options.soft_sharing = soft_sharing_of(config);
    Network net(build_model(config, kShapes), config.tasks, options);
    testing::fill_batch(net, 21);
    EXPECT_TRUE(testing::check_network_gradients(net, 4));
    EXPECT_TRUE(testing::check_network_gradients(net, 2));
  }
}

TEST(Sharing, RoundTripsThroughToToml) {
  for (const std::string extra :
       {"mode = \"soft\"\nbranch_after = \"pool\"\nsoft_strength = 0.01\n",
        "mode = \"cross_stitch\"\ncross_stitch_after = [\"conv\"]\ncross_stitch_self_weight = 0.8\n",
        "mode = \"mmoe\"\nexperts = 6\nbranch_after = 1\n"}) {
    SCOPED_TRACE(extra);
    const ModelConfig config = with_sharing(extra);
    const ModelConfig again = parse_config(to_toml(config), "written.toml");
    EXPECT_EQ(to_toml(again), to_toml(config));
    EXPECT_EQ(layer_names(apply_sharing(again)), layer_names(apply_sharing(config)));
  }
}

TEST(Sharing, ErrorsNameTheOptionAndWhatWouldFit) {
  EXPECT_TRUE(contains(error_message([] { with_sharing("mode = \"soft-ish\"\n"); }), "soft-ish"));
  EXPECT_TRUE(contains(error_message([] { apply_sharing(with_sharing("branch_after = 9\n")); }),
                       "outside 0..4 (the trunk: conv, pool, flat, shared)"));
  EXPECT_TRUE(contains(error_message([] { apply_sharing(with_sharing("branch_after = \"b_hidden\"\n")); }),
                       "not a trunk layer"));
  EXPECT_TRUE(contains(error_message([] { with_sharing("branch_after = \"nope\"\n"); }), "nope"));
  EXPECT_TRUE(contains(error_message([] { with_sharing("mode = \"mmoe\"\nexperts = 9\n"); }),
                       "experts must be 2 to 8"));
  EXPECT_TRUE(contains(error_message([] { with_sharing("cross_stitch_after = [\"conv\"]\n"); }),
                       "applies to mode cross_stitch"));
  EXPECT_TRUE(contains(
      error_message([] {
        apply_sharing(with_sharing("mode = \"cross_stitch\"\nbranch_after = 2\ncross_stitch_after = [\"conv\"]\n"));
      }),
      "not an unshared trunk layer"));
  EXPECT_TRUE(contains(error_message([] { with_sharing("mode = \"soft\"\nsoft_strength = -1\n"); }),
                       "soft_strength"));
  EXPECT_TRUE(contains(error_message([] { with_sharing("experts_count = 3\n"); }), "experts_count"));
}

}  // namespace
}  // namespace polytask::models
