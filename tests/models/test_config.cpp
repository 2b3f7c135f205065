// Model configs: what a TOML file turns into (inputs, layers, outputs, tasks, defaults), the
// to_toml -> parse_config round trip, weight sharing through `shares`, the fan-out's value name,
// and the shape checks of build_model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/network.h"
#include "models/config.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

// Two inputs, a residual-free DAG with a shared dense layer called twice, two heads.
constexpr const char* kSharing = R"(
name = "sharing"
description = "a test model"
default_data = "synthetic:two-input"
fan_out = "mix"

[[inputs]]
name = "a"
shape = [6]

[[inputs]]
name = "b"

[[layers]]
name = "proj"
type = "dense"
input = "a"
units = 4
activation = "relu"

[[layers]]
name = "proj_again"
shares = "proj"
input = "b"

[[layers]]
name = "mix"
type = "add"
inputs = ["proj", "proj_again"]

[[layers]]
name = "logits"
type = "dense"
units = 3

[[layers]]
name = "value"
type = "dense"
input = "mix"
units = 1
use_bias = false

[[outputs]]
name = "class"
layer = "logits"

[[outputs]]
name = "value"
layer = "value"

[[tasks]]
name = "class"
output = "class"
loss = "softmax_cross_entropy"

[[tasks]]
name = "value"
output = "value"
loss = "mse"
weight = 0.25
label = "value"
metrics = ["mae"]
)";

const std::map<std::string, Shape> kSharingShapes = {{"a", {6}}, {"b", {6}}};

TEST(Config, ParsesTheTopLevelInputsOutputsAndTasks) {
  const ModelConfig c = parse_config(kSharing, "sharing.toml");
  EXPECT_EQ(c.name, "sharing");
  EXPECT_EQ(c.description, "a test model");
  EXPECT_EQ(c.default_data, "synthetic:two-input");
  EXPECT_EQ(c.fan_out, "mix");
  EXPECT_EQ(c.origin, "sharing.toml");
  EXPECT_EQ(c.input_names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(c.input_shapes.size(), 2u);
  EXPECT_EQ(c.input_shapes[0], (Shape{6}));
  EXPECT_EQ(c.input_shapes[1].rank(), 0);  // from the data
  EXPECT_EQ(c.layers.size(), 5u);
  using Outputs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(c.outputs, (Outputs{{"class", "logits"}, {"value", "value"}}));

  ASSERT_EQ(c.tasks.size(), 2u);
  const Task& cls = c.tasks[0];
  EXPECT_EQ(cls.name, "class");
  EXPECT_EQ(cls.output, "class");
  EXPECT_EQ(cls.loss, LossKind::SoftmaxCrossEntropy);
  EXPECT_EQ(cls.weight, 1.0);  // default
  EXPECT_TRUE(cls.metrics.empty());
  EXPECT_EQ(cls.label_source(), "class");  // default: the task's name
  EXPECT_EQ(cls.target, TargetKind::ClassIndex);
  const Task& value = c.tasks[1];
  EXPECT_EQ(value.loss, LossKind::MeanSquaredError);
  EXPECT_EQ(value.weight, 0.25);
  EXPECT_EQ(value.label, "value");
  EXPECT_EQ(value.metrics, std::vector<MetricKind>{MetricKind::MeanAbsoluteError});
  EXPECT_EQ(value.target, TargetKind::Values);

  EXPECT_EQ(c.source_positions.at("layer proj_again"), "sharing.toml:21:1");
  EXPECT_EQ(c.source_positions.at("task value"), "sharing.toml:56:1");
}

TEST(Config, BuildsTheGraphItDescribes) {
  const ModelConfig c = parse_config(kSharing, "sharing.toml");
  const Model m = build_model(c, kSharingShapes);
  EXPECT_EQ(m.output("class").value.shape(), (Shape{3}));
  EXPECT_EQ(m.output("value").value.shape(), (Shape{1}));
  // `logits` has no `input`: it reads the previous layer, "mix".
  const Graph& g = m.graph();
  const GraphNode& logits =
      g.nodes[size_t(g.values[size_t(m.output("class").value.id())].producer)];
  EXPECT_EQ(logits.layer->name(), "logits");
  EXPECT_EQ(g.values[size_t(logits.inputs[0])].name, "mix");
}

TEST(Config, SharesCallsOneLayerObjectWithOneParameterSet) {
  const ModelConfig c = parse_config(kSharing, "sharing.toml");
  const Model m = build_model(c, kSharingShapes);
  int proj_calls = 0;
  for (const auto& node : m.graph().nodes) proj_calls += node.layer->name() == "proj";
  EXPECT_EQ(proj_calls, 2);
  // proj (6*4 + 4), logits (4*3 + 3), value (4*1, no bias): proj counted once.
  EXPECT_EQ(m.parameter_count(), 28 + 15 + 4);

  Network net(m, c.tasks, testing::f64_options(4));
  std::vector<std::string> names;
  for (const Parameter* p : net.parameters().all) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{"proj.weight", "proj.bias", "logits.weight",
                                             "logits.bias", "value.weight"}));
  // Both calls contribute to the one gradient: it matches central differences.
  testing::fill_batch(net, 3);
  EXPECT_TRUE(testing::check_network_gradients(net, 4));
}

TEST(Config, FanOutValueNamesTheGraphValueOfTheConfigLayer) {
  ModelConfig c = parse_config(kSharing, "sharing.toml");
  EXPECT_EQ(fan_out_value(c), "mix");
  c.fan_out = "proj";
  EXPECT_EQ(fan_out_value(c), "proj_relu");  // activation = "relu" adds a node
  c.fan_out = "proj_again";
  EXPECT_EQ(fan_out_value(c), "proj_relu#1");  // the second call of proj
  c.fan_out = "";
  EXPECT_EQ(fan_out_value(c), "");

  const ModelConfig p = preset_config("mnist-digit-parity");
  ModelConfig with_fan_out = p;
  with_fan_out.fan_out = "shared";
  EXPECT_EQ(fan_out_value(with_fan_out), "shared_relu");
  NetworkOptions options;
  options.max_batch = 2;
  options.fan_out = fan_out_value(with_fan_out);
  Network net(build_model(with_fan_out, {{"image", {1, 28, 28}}}), with_fan_out.tasks, options);
  EXPECT_EQ(net.fan_out().representation(), "shared_relu");
}

void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.default_data, b.default_data);
  EXPECT_EQ(a.fan_out, b.fan_out);
  EXPECT_EQ(a.input_names, b.input_names);
  ASSERT_EQ(a.input_shapes.size(), b.input_shapes.size());
  for (size_t i = 0; i < a.input_shapes.size(); ++i)
    EXPECT_EQ(a.input_shapes[i], b.input_shapes[i]);
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.layers.size(), b.layers.size());
  ASSERT_EQ(a.tasks.size(), b.tasks.size());
  for (size_t t = 0; t < a.tasks.size(); ++t) {
    const Task &x = a.tasks[t], &y = b.tasks[t];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.output_name(), y.output_name());
    EXPECT_EQ(x.loss, y.loss);
    EXPECT_EQ(x.weight, y.weight);
    EXPECT_EQ(x.metrics, y.metrics);
    EXPECT_EQ(x.target, y.target);
    EXPECT_EQ(x.label_source(), y.label_source());
  }
  // The layers are opaque here: the text they write and the model they build must agree.
  EXPECT_EQ(to_toml(a), to_toml(b));
}

TEST(Config, RoundTripsThroughToToml) {
  ModelConfig c = parse_config(kSharing, "sharing.toml");
  c.tasks[0].weight = 0.1;  // the current weights are written
  c.tasks[1].weight = 3.0;
  const std::string text = to_toml(c);
  const ModelConfig back = parse_config(text, "run/config.toml");
  expect_same_config(c, back);
  EXPECT_EQ(back.tasks[0].weight, 0.1);
  EXPECT_EQ(back.tasks[1].weight, 3.0);
  EXPECT_EQ(build_model(c, kSharingShapes).summary(), build_model(back, kSharingShapes).summary());
}

TEST(Config, EveryLayerSettingRoundTrips) {
  const char* text = R"(
name = "settings"
[[inputs]]
name = "image"
shape = [3, 12, 12]
[[layers]]
name = "c"
type = "conv2d"
filters = 4
kernel = 3
stride = 2
padding = "same"
activation = "linear"
use_bias = false
[[layers]]
name = "bn"
type = "batch_norm"
momentum = 0.9
epsilon = 1e-5
[[layers]]
name = "r"
type = "relu"
[[layers]]
name = "p"
type = "max_pool2d"
pool = 3
stride = 1
[[layers]]
name = "f"
type = "flatten"
[[layers]]
name = "d"
type = "dropout"
rate = 0.125
[[layers]]
name = "h"
type = "dense"
units = 5
activation = "relu"
[[layers]]
name = "both"
type = "concat"
inputs = ["h", "d"]
[[layers]]
name = "out"
type = "dense"
units = 2
[[outputs]]
name = "out"
layer = "out"
[[tasks]]
name = "t"
output = "out"
loss = "binary_cross_entropy"
weight = 2
metrics = ["accuracy"]
)";
  const ModelConfig c = parse_config(text, "settings.toml");
  const ModelConfig back = parse_config(to_toml(c), "written.toml");
  expect_same_config(c, back);
  EXPECT_EQ(back.tasks[0].weight, 2.0);
  EXPECT_EQ(back.tasks[0].target, TargetKind::Values);  // BCE reads values
  const std::map<std::string, Shape> shapes = {{"image", {3, 12, 12}}};
  const Model m = build_model(back, shapes);
  EXPECT_EQ(m.summary(), build_model(c, shapes).summary());
  // conv stride 2 'same': 6x6; pool 3 stride 1: 4x4; flatten 4*4*4 = 64; concat 5 + 64.
  EXPECT_EQ(m.output("out").value.shape(), (Shape{2}));
  const std::string written = to_toml(c);
  for (const char* part :
       {"stride = 2", "padding = \"same\"", "use_bias = false", "momentum = 0.9", "epsilon = 1e-05",
        "pool = 3", "rate = 0.125", "weight = 2.0", "inputs = [\"h\", \"d\"]"})
    EXPECT_TRUE(contains(written, part));
}

TEST(Config, EveryPresetRoundTrips) {
  for (const auto& info : list_presets()) {
    SCOPED_TRACE(info.name);
    const ModelConfig c = preset_config(info.name);
    expect_same_config(c, parse_config(to_toml(c), "written.toml"));
  }
}

TEST(Config, StringsAreEscapedWhenWritten) {
  ModelConfig c = parse_config(kSharing, "sharing.toml");
  c.description = "quotes \" and \\ backslash\tand tab";
  EXPECT_EQ(parse_config(to_toml(c), "x.toml").description, c.description);
}

TEST(Config, InputShapesComeFromTheDataAndMustMatchDeclaredOnes) {
  const ModelConfig c = parse_config(kSharing, "sharing.toml");
  // `a` is declared (6,): the data must agree.
  const std::string wrong = error_message([&] { build_model(c, {{"a", {7}}, {"b", {6}}}); });
  EXPECT_TRUE(contains(
      wrong, "sharing.toml:7:1: input 'a' is declared with shape (6,) but the data gives (7,)"));
  // `b` has no declared shape: the data must provide it.
  const std::string missing = error_message([&] {
    build_model(c, {{"a", {6}}, {"image", {1, 2, 2}}});
  });
  EXPECT_TRUE(contains(missing, "sharing.toml:11:1: input 'b' has no shape"));
  EXPECT_TRUE(contains(missing, "image"));
  // A declared shape is used when the data does not name the input.
  EXPECT_NO_THROW(build_model(c, {{"b", {6}}}));
}

TEST(Config, BuildErrorsNameTheConfigLineTheLayerAndTheShapes) {
  const ModelConfig c = parse_config(kSharing, "sharing.toml");
  // b of 5 features: proj was built for 6, so its second call does not fit.
  const std::string e = error_message([&] { build_model(c, {{"b", {5}}}); });
  EXPECT_TRUE(contains(e, "sharing.toml:21:1: "));
  EXPECT_TRUE(contains(e, "proj"));
  EXPECT_TRUE(contains(e, "(5,)"));
}

// MMoE (Ma et al. 2018) and a cross-stitch unit (Misra et al. 2016) written as a config: two
// experts over a shared layer, a softmax gate per task, each task's mixture through its own
// tower, and the towers joined by a two-row cross-stitch unit (each row lists its own task first).
constexpr const char* kSoftSharing = R"(
name = "soft-sharing"

[[inputs]]
name = "x"
shape = [10]

[[layers]]
name = "shared"
type = "dense"
units = 8
activation = "relu"

[[layers]]
name = "expert_a"
type = "dense"
input = "shared"
units = 6

[[layers]]
name = "expert_b"
type = "dense"
input = "shared"
units = 6

[[layers]]
name = "experts"
type = "concat"
inputs = ["expert_a", "expert_b"]

[[layers]]
name = "gate_class"
type = "dense"
input = "shared"
units = 2

[[layers]]
name = "gate_class_softmax"
type = "softmax"

[[layers]]
name = "mix_class"
type = "mixture"
inputs = ["experts", "gate_class_softmax"]

[[layers]]
name = "gate_value"
type = "dense"
input = "shared"
units = 2

[[layers]]
name = "gate_value_softmax"
type = "softmax"

[[layers]]
name = "mix_value"
type = "mixture"
inputs = ["experts", "gate_value_softmax"]

[[layers]]
name = "stitch_class"
type = "cross_stitch"
inputs = ["mix_class", "mix_value"]

[[layers]]
name = "stitch_value"
type = "cross_stitch"
inputs = ["mix_value", "mix_class"]
self_weight = 0.75

[[layers]]
name = "logits"
type = "dense"
input = "stitch_class"
units = 3

[[layers]]
name = "value"
type = "dense"
input = "stitch_value"
units = 1

[[outputs]]
name = "class"
layer = "logits"

[[outputs]]
name = "value"
layer = "value"

[[tasks]]
name = "class"
output = "class"
loss = "softmax_cross_entropy"

[[tasks]]
name = "value"
output = "value"
loss = "mse"
)";

TEST(Config, SoftSharingLayersParseBuildAndRoundTrip) {
  const ModelConfig c = parse_config(kSoftSharing, "soft.toml");
  const ModelConfig back = parse_config(to_toml(c), "written.toml");
  expect_same_config(c, back);
  const std::string written = to_toml(c);
  EXPECT_TRUE(contains(written, "type = \"mixture\"\ninputs = [\"experts\", \"gate_value_softmax\"]"));
  EXPECT_TRUE(contains(written, "self_weight = 0.75"));
  EXPECT_EQ(written.find("self_weight = 0.9"), std::string::npos) << "the default is not written";

  const std::map<std::string, Shape> shapes = {{"x", {10}}};
  const Model m = build_model(c, shapes);
  EXPECT_EQ(m.output("class").value.shape(), (Shape{3}));
  EXPECT_EQ(m.output("value").value.shape(), (Shape{1}));
  // The summary names each call with its kind, output shape and parameters: a mixture of two
  // 6-feature experts gives 6 features, each cross-stitch row has an alpha of 2.
  const std::string summary = m.summary();
  for (const char* line :
       {"gate_class_softmax (softmax)    (2,)                0",
        "mix_class (mixture)             (6,)                0",
        "stitch_value (cross_stitch)     (6,)                2"})
    EXPECT_TRUE(contains(summary, line)) << summary;
  // shared 88, experts 2 × 54, gates 2 × 18, alphas 2 × 2, logits 21, value 7.
  EXPECT_EQ(m.parameter_count(), 88 + 108 + 36 + 4 + 21 + 7);
  EXPECT_EQ(build_model(back, shapes).summary(), summary);
}

// The same layers in a single-task network (every call in the trunk), trained in double: the
// plan is made, the alphas start at the configured self_weight, and every gradient (alpha, the
// gates, the experts) matches central differences.
TEST(Config, SoftSharingLayersTrainInANetwork) {
  ModelConfig c = parse_config(kSoftSharing, "soft.toml");
  c.tasks.pop_back();  // "class" only: "value" stays an output without a loss
  Network net(build_model(c, {{"x", {10}}}), c.tasks, testing::f64_options(4));
  EXPECT_TRUE(contains(net.plan_summary(), "stitch_class")) << net.plan_summary();
  EXPECT_EQ(testing::find_parameter(net, "stitch_value.alpha").value.to_vector<double>(),
            (std::vector<double>{0.75, 0.25}));
  testing::fill_batch(net, 5);
  EXPECT_TRUE(testing::check_network_gradients(net, 4));
}

TEST(Config, LoadsAFileNamingItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("polytask_test_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "model.toml").string();
  {
    std::ofstream out(path);
    out << kSharing;
  }
  const ModelConfig c = load_config_file(path);
  EXPECT_EQ(c.origin, path);
  EXPECT_EQ(c.name, "sharing");
  {
    std::ofstream out(path);
    out << "name = \"x\"\nbogus = 1\n";
  }
  EXPECT_TRUE(contains(error_message([&] { load_config_file(path); }),
                       path + ":2:1: config: unknown key 'bogus'"));
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(contains(error_message([&] { load_config_file(path); }),
                       "cannot open config file '" + path + "'"));
}

}  // namespace
}  // namespace polytask::models
