// Config errors: every problem in a config file is a polytask::Error of one line that starts with
// origin:line:column and says what is wrong, so a typo never passes silently.
#include <gtest/gtest.h>

#include <string>

#include "models/config.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::models {
namespace {

using testing::contains;
using testing::error_message;

// A valid config; each test edits one line of it. Line numbers are written beside.
constexpr const char* kBase =
    "name = \"t\"\n"                       // 1
    "\n"                                   // 2
    "[[inputs]]\n"                         // 3
    "name = \"image\"\n"                   // 4
    "\n"                                   // 5
    "[[layers]]\n"                         // 6
    "name = \"flat\"\n"                    // 7
    "type = \"flatten\"\n"                 // 8
    "input = \"image\"\n"                  // 9
    "\n"                                   // 10
    "[[layers]]\n"                         // 11
    "name = \"out\"\n"                     // 12
    "type = \"dense\"\n"                   // 13
    "input = \"flat\"\n"                   // 14
    "units = 3\n"                          // 15
    "\n"                                   // 16
    "[[outputs]]\n"                        // 17
    "name = \"out\"\n"                     // 18
    "layer = \"out\"\n"                    // 19
    "\n"                                   // 20
    "[[tasks]]\n"                          // 21
    "name = \"t1\"\n"                      // 22
    "output = \"out\"\n"                   // 23
    "loss = \"softmax_cross_entropy\"\n";  // 24

// kBase with its first occurrence of `from` replaced by `to`.
std::string edited(const std::string& from, const std::string& to) {
  std::string text = kBase;
  const size_t at = text.find(from);
  if (at == std::string::npos)
    throw std::logic_error("test: '" + from + "' is not in the base config");
  return text.replace(at, from.size(), to);
}

std::string parse_error(const std::string& text) {
  const std::string e = error_message([&] { parse_config(text, "test.toml"); });
  EXPECT_EQ(e.find('\n'), std::string::npos) << "not one line: " << e;
  return e;
}

TEST(ConfigErrors, TheBaseConfigIsValid) {
  const ModelConfig c = parse_config(kBase, "test.toml");
  EXPECT_NO_THROW(build_model(c, {{"image", {1, 4, 4}}}));
}

TEST(ConfigErrors, MalformedTomlReportsTheLine) {
  const std::string e = parse_error(edited("units = 3", "units = = 3"));
  EXPECT_TRUE(contains(e, "test.toml:15:")) << e;
  const std::string dup = parse_error(edited("units = 3", "units = 3\nunits = 4"));
  EXPECT_TRUE(contains(dup, "test.toml:16:")) << dup;
  const std::string unclosed = parse_error(edited("name = \"flat\"", "name = \"flat"));
  EXPECT_TRUE(contains(unclosed, "test.toml:7:")) << unclosed;
}

TEST(ConfigErrors, UnknownKeysAreRejectedWithASuggestion) {
  const std::string e = parse_error(edited("units = 3", "unitz = 3"));
  EXPECT_TRUE(
      contains(e, "test.toml:15:1: layer 'out': unknown key 'unitz' (did you mean 'units'?)"));
  EXPECT_TRUE(
      contains(e, "dense layers take: name, type, input, shares, units, activation, use_bias"));
  // A key of another layer type.
  EXPECT_TRUE(contains(parse_error(edited("units = 3", "units = 3\nfilters = 2")),
                       "test.toml:16:1: layer 'out': unknown key 'filters'"));
  // Top level, input, output and task tables too.
  EXPECT_TRUE(
      contains(parse_error(edited("name = \"t\"", "name = \"t\"\ndecription = \"x\"")),
               "test.toml:2:1: config: unknown key 'decription' (did you mean 'description'?)"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"image\"", "name = \"image\"\nshap = [1]")),
                       "test.toml:5:1: [[inputs]] entry: unknown key 'shap'"));
  EXPECT_TRUE(contains(parse_error(edited("layer = \"out\"", "layer = \"out\"\nlayers = \"x\"")),
                       "test.toml:20:1: [[outputs]] entry: unknown key 'layers'"));
  EXPECT_TRUE(
      contains(parse_error(std::string(kBase) + "wieght = 2\n"),
               "test.toml:25:1: [[tasks]] entry: unknown key 'wieght' (did you mean 'weight'?)"));
  // One input for single-input layers, `inputs` for add/concat.
  EXPECT_TRUE(contains(parse_error(edited("input = \"flat\"", "inputs = [\"flat\"]")),
                       "test.toml:14:1: layer 'out': unknown key 'inputs' (did you mean 'input'?"));
}

TEST(ConfigErrors, AMisspeltTypeKeyIsAnUnknownKey) {
  EXPECT_TRUE(contains(parse_error(edited("type = \"dense\"", "tpye = \"dense\"")),
                       "test.toml:13:1: layer 'out': unknown key 'tpye' (did you mean 'type'?)"));
}

TEST(ConfigErrors, UnknownLayerType) {
  const std::string e = parse_error(edited("type = \"dense\"", "type = \"dens\""));
  EXPECT_TRUE(contains(
      e, "test.toml:13:8: layer 'out': unknown layer type 'dens' (did you mean 'dense'?)"));
  EXPECT_TRUE(contains(e,
                       "known types: conv2d, max_pool2d, dense, relu, flatten, add, concat, "
                       "batch_norm, dropout, softmax, mixture, cross_stitch)"));
}

TEST(ConfigErrors, ReferenceToAnUndefinedLayer) {
  EXPECT_TRUE(contains(parse_error(edited("input = \"flat\"", "input = \"flatt\"")),
                       "test.toml:14:9: layer 'out': input 'flatt' is not a model input or an "
                       "earlier layer (did you mean 'flat'?) (defined so far: flat, image)"));
  // A later layer is not defined yet: layers are listed in order.
  EXPECT_TRUE(contains(
      parse_error(edited("input = \"image\"", "input = \"out\"")),
      "test.toml:9:9: layer 'flat': input 'out' is not a model input or an earlier layer"));
  EXPECT_TRUE(contains(parse_error(edited("input = \"flat\"", "input = \"out\"")),
                       "a layer cannot read itself"));
  EXPECT_TRUE(contains(parse_error(edited("layer = \"out\"", "layer = \"outt\"")),
                       "test.toml:19:9: output 'out': layer 'outt' is not defined"));
  EXPECT_TRUE(contains(parse_error(edited("layer = \"out\"", "layer = \"image\"")),
                       "it is a model input; outputs name layers"));
  EXPECT_TRUE(contains(
      parse_error(std::string(kBase) + "\n" +
                  "[[layers]]\nname = \"sum\"\ntype = \"add\"\ninputs = [\"out\", \"nope\"]\n"),
      "test.toml:29:18: layer 'sum': input 'nope' is not a model input"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"t\"", "name = \"t\"\nfan_out = \"shared\"")),
                       "test.toml:2:11: config: fan_out 'shared' is not a model input or a layer"));
}

TEST(ConfigErrors, DuplicateNames) {
  EXPECT_TRUE(contains(parse_error(edited("name = \"flat\"", "name = \"out\"")),
                       "test.toml:12:8: layer name 'out' is already used (line 7)"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"flat\"", "name = \"image\"")),
                       "test.toml:7:8: layer name 'image' is already used (line 4)"));
  EXPECT_TRUE(
      contains(parse_error(std::string(kBase) + "[[tasks]]\nname = \"t1\"\noutput = \"out\"\n"
                                                "loss = \"mse\"\n"),
               "test.toml:26:8: task name 't1' is already used (line 22)"));
  EXPECT_TRUE(
      contains(parse_error(edited("[[tasks]]",
                                  "[[outputs]]\nname = \"out\"\nlayer = \"flat\"\n\n[[tasks]]")),
               "test.toml:22:8: output name 'out' is already used (line 18)"));
  // The engine names a dense layer's ReLU "<name>_relu": a layer may not take that name.
  EXPECT_TRUE(
      contains(parse_error(edited("units = 3", "units = 3\nactivation = \"relu\"") +
                           "\n[[layers]]\nname = \"out_relu\"\ntype = \"relu\"\ninput = \"out\"\n"),
               "test.toml:28:8: layer 'out_relu': the name is taken by the activation"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"flat\"", "name = \"fl at\"")),
                       "test.toml:7:8: layer 1: 'name' = \"fl at\" is not a valid name"));
}

TEST(ConfigErrors, MissingRequiredKeys) {
  EXPECT_TRUE(contains(parse_error(edited("output = \"out\"\n", "")),
                       "test.toml:21:1: task 't1': missing required key 'output'"));
  EXPECT_TRUE(contains(
      parse_error(edited("output = \"out\"", "output = \"digit\"")),
      "test.toml:23:10: task 't1': output 'digit' is not declared in [[outputs]] (outputs: out)"));
  EXPECT_TRUE(contains(parse_error(edited("units = 3\n", "")),
                       "test.toml:11:1: layer 'out': missing required key 'units'"));
  EXPECT_TRUE(contains(parse_error(edited("type = \"dense\"\n", "")),
                       "test.toml:11:1: layer 'out': missing required key 'type'"));
  EXPECT_TRUE(contains(parse_error(edited("loss = \"softmax_cross_entropy\"\n", "")),
                       "test.toml:21:1: task 't1': missing required key 'loss'"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"t\"\n", "")),
                       "test.toml:1:1: config: missing required key 'name'"));
  const std::string no_tasks = std::string(kBase).substr(0, std::string(kBase).find("[[tasks]]"));
  EXPECT_TRUE(contains(parse_error(no_tasks), "test.toml:1:1: missing [[tasks]] entries"));
  EXPECT_TRUE(
      contains(parse_error(edited("type = \"flatten\"\ninput = \"image\"", "type = \"add\"")),
               "test.toml:6:1: layer 'flat': missing required key 'inputs'"));
}

TEST(ConfigErrors, WrongValueTypes) {
  EXPECT_TRUE(contains(parse_error(edited("units = 3", "units = \"three\"")),
                       "test.toml:15:9: layer 'out': 'units' must be an integer, got a string"));
  EXPECT_TRUE(contains(parse_error(edited("units = 3", "units = 3.0")),
                       "test.toml:15:9: layer 'out': 'units' must be an integer, got a float"));
  EXPECT_TRUE(contains(parse_error(edited("name = \"t1\"", "name = \"t1\"\nweight = \"high\"")),
                       "test.toml:23:10: task 't1': 'weight' must be a number, got a string"));
  EXPECT_TRUE(
      contains(parse_error(edited("units = 3", "units = 3\nuse_bias = 1")),
               "test.toml:16:12: layer 'out': 'use_bias' must be true or false, got an integer"));
  EXPECT_TRUE(contains(parse_error(edited("input = \"flat\"", "input = [\"flat\"]")),
                       "test.toml:14:9: layer 'out': 'input' must be a string, got an array"));
  EXPECT_TRUE(
      contains(parse_error(edited("name = \"image\"", "name = \"image\"\nshape = [1, \"x\"]")),
               "test.toml:5:13: input 'image': 'shape' must hold positive integers, got a string"));
  std::string outputs = edited("[[outputs]]\nname = \"out\"\nlayer = \"out\"\n", "");
  outputs.insert(outputs.find('\n') + 1, "outputs = \"out\"\n");
  EXPECT_TRUE(
      contains(parse_error(outputs),
               "test.toml:2:11: 'outputs' must be an array of tables ([[outputs]]), got a string"));
}

// A size that would overflow a buffer size (batch × units...) is refused where it is written.
TEST(ConfigErrors, HugeSizesAreRefusedNamingTheValue) {
  EXPECT_TRUE(contains(parse_error(edited("units = 3", "units = 4000000000000000000")),
                       "test.toml:15:9: layer 'out': 'units' must be at most 1048576, got "
                       "4000000000000000000"));
  EXPECT_TRUE(contains(
      parse_error(edited("name = \"image\"", "name = \"image\"\nshape = [1, 9223372036854775807]")),
      "test.toml:5:13: input 'image': 'shape' sizes must be at most 1048576, got "
      "9223372036854775807"));
  EXPECT_NO_THROW(parse_config(edited("units = 3", "units = 1048576"), "test.toml"));
}

TEST(ConfigErrors, BadValues) {
  EXPECT_TRUE(contains(parse_error(edited("units = 3", "units = 0")),
                       "test.toml:15:9: layer 'out': 'units' must be at least 1, got 0"));
  EXPECT_TRUE(contains(
      parse_error(edited("units = 3", "units = 3\nactivation = \"tanh\"")),
      "test.toml:16:14: layer 'out': 'activation' = \"tanh\" is not one of: relu, linear"));
  EXPECT_TRUE(contains(parse_error(edited("loss = \"softmax_cross_entropy\"", "loss = \"hinge\"")),
                       "test.toml:24:8: task 't1': 'loss' = \"hinge\" is not one of: "
                       "softmax_cross_entropy, binary_cross_entropy, mse"));
  EXPECT_TRUE(
      contains(parse_error(edited("loss = \"softmax_cross_entropy\"",
                                  "loss = \"mse\"\nmetrics = [\"accuracy\"]")),
               "test.toml:25:12: task 't1': accuracy is not defined for a regression (mse) task"));
  EXPECT_TRUE(
      contains(parse_error(edited("loss = \"softmax_cross_entropy\"",
                                  "loss = \"softmax_cross_entropy\"\nmetrics = [\"f1\"]")),
               "test.toml:25:12: task 't1': unknown metric 'f1' (known metrics: accuracy, mae)"));
  EXPECT_TRUE(
      contains(parse_error(edited("name = \"t1\"", "name = \"t1\"\nweight = -1")),
               "test.toml:23:10: task 't1': 'weight' must be finite and non-negative, got -1"));
  const std::string dropout = edited("type = \"flatten\"", "type = \"dropout\"\nrate = 1.5");
  EXPECT_TRUE(contains(parse_error(dropout),
                       "test.toml:9:8: layer 'flat': 'rate' must be in [0, 1), got 1.5"));
  const std::string conv = edited("type = \"flatten\"",
                                  "type = \"conv2d\"\nfilters = 2\nkernel = 3\npadding = \"full\"");
  EXPECT_TRUE(
      contains(parse_error(conv),
               "test.toml:11:11: layer 'flat': 'padding' = \"full\" is not one of: valid, same"));
  const std::string add3 = std::string(kBase) +
                           "\n[[layers]]\nname = \"sum\"\ntype = \"add\"\n"
                           "inputs = [\"out\", \"out\", \"out\"]\n";
  EXPECT_TRUE(contains(parse_error(add3),
                       "test.toml:29:10: layer 'sum': add takes exactly 2 inputs, got 3"));
  const std::string mixture3 = std::string(kBase) +
                               "\n[[layers]]\nname = \"mix\"\ntype = \"mixture\"\n"
                               "inputs = [\"out\", \"out\", \"out\"]\n";
  EXPECT_TRUE(contains(parse_error(mixture3),
                       "test.toml:29:10: layer 'mix': mixture takes exactly 2 inputs, got 3"));
  const std::string stitch = std::string(kBase) +
                             "\n[[layers]]\nname = \"cs\"\ntype = \"cross_stitch\"\n"
                             "inputs = [\"out\", \"out\"]\n";
  for (const char* weight : {"0", "-0.5", "1.25", "nan"})
    EXPECT_TRUE(contains(parse_error(stitch + "self_weight = " + weight + "\n"),
                         "test.toml:30:15: layer 'cs': 'self_weight' must be in (0, 1], got "))
        << weight;
  EXPECT_NO_THROW(parse_config(stitch + "self_weight = 1.0\n", "test.toml"));
  EXPECT_TRUE(contains(parse_error(std::string(kBase) +
                                   "\n[[layers]]\nname = \"cs\"\ntype = \"cross_stitch\"\n"
                                   "inputs = [\"out\"]\n"),
                       "test.toml:29:10: layer 'cs': cross_stitch takes 2 to 8 inputs, got 1"));
}

TEST(ConfigErrors, SharesOfAnUnknownLayer) {
  const std::string extra = "\n[[layers]]\nname = \"again\"\nshares = \"outt\"\ninput = \"flat\"\n";
  EXPECT_TRUE(
      contains(parse_error(std::string(kBase) + extra),
               "test.toml:28:10: layer 'again': shares 'outt', which is not an earlier layer"));
  EXPECT_TRUE(contains(
      parse_error(std::string(kBase) + "\n[[layers]]\nname = \"again\"\nshares = \"image\"\n"),
      "shares 'image', which is not an earlier layer (it is a model input)"));
  // A sharing layer takes its settings from the shared one.
  const std::string settings =
      "\n[[layers]]\nname = \"again\"\nshares = \"out\"\ninput = \"flat\"\nunits = 4\n";
  EXPECT_TRUE(
      contains(parse_error(std::string(kBase) + settings),
               "test.toml:30:1: layer 'again': unknown key 'units' (a layer that shares 'out' "
               "takes only name, type, input, shares; its settings come from the shared layer)"));
  const std::string type = "\n[[layers]]\nname = \"again\"\nshares = \"out\"\ntype = \"relu\"\n";
  EXPECT_TRUE(contains(parse_error(std::string(kBase) + type),
                       "test.toml:29:8: layer 'again': type 'relu' differs from the type 'dense' "
                       "of the shared layer 'out'"));
}

TEST(ConfigErrors, UnknownPresetListsTheKnownOnes) {
  const std::string e = error_message([] { preset_config("mnist-digit-parityy"); });
  EXPECT_TRUE(contains(e,
                       "unknown preset 'mnist-digit-parityy' (known presets: mnist-digit-parity, "
                       "mnist-digit-colour-residual, two-input-cls-reg, cifar-object-colour, "
                       "fashion-type-brightness, fashion-three-tasks, multi-fashion, synthetic-cls-reg)"));
}

TEST(ConfigErrors, BuildErrorsArePrefixedWithThePosition) {
  // The engine's shape error (a dense layer on an image), prefixed with the layer's position.
  const ModelConfig c = parse_config(edited("input = \"flat\"", "input = \"image\""), "test.toml");
  const std::string e = error_message([&] { build_model(c, {{"image", {1, 4, 4}}}); });
  EXPECT_TRUE(contains(e,
                       "test.toml:11:1: out (dense): expects a (features,) input, got (1, 4, 4); "
                       "add a flatten layer before it"));
}

}  // namespace
}  // namespace polytask::models
