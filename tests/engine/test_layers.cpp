// Every layer inside a tiny single-task network in double precision:
//  - forward against a naive loop written here (a gradient check alone would accept a wrong
//    forward whose backward matches it);
//  - central differences of net.total_loss() against backward for every parameter element,
//    with a parameterised 1x1 conv / dense ("pre") in front of the layer under test, so the
//    layer's input gradient (dx) is checked through pre's parameter gradients.
// Odd sizes throughout (input (3, 7, 9), batch 3) and a short batch (n < max_batch).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/layers.h"
#include "engine/network.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::check_network_gradients;
using testing::contains;
using testing::error_message;
using testing::f64_options;
using testing::fill_batch;
using testing::find_parameter;
using testing::GradCheckOptions;

constexpr int64_t kBatch = 3;
const Shape kImage{3, 7, 9};
const Shape kFeatures{11};

Task mse_task(const std::string& name = "out") {
  Task t;
  t.name = name;
  t.loss = LossKind::MeanSquaredError;
  return t;
}

// pre (a parameterised layer feeding the layer under test) -> body -> [flatten] -> "out", MSE.
// Checks all parameter gradients on a full batch and on a short one (n < max_batch).
void check_layer_gradients(const std::function<Value(const Value&)>& body, bool image,
                           uint64_t seed = 1, GradCheckOptions opt = {}, uint64_t step = 0) {
  for (const int64_t max_batch : {kBatch, kBatch + 2}) {
    ModelBuilder b;
    Value x = b.input("x", image ? kImage : kFeatures);
    Value pre = image ? conv2d(3, 1, {.name = "pre"})(x) : dense(6, Activation::None, "pre")(x);
    Value y = body(pre);
    if (y.shape().rank() > 1) y = flatten("flat_out")(y);
    Network net(b.build({{"out", y}}), {mse_task()}, f64_options(max_batch, seed));
    fill_batch(net, seed + 100);
    SCOPED_TRACE(max_batch == kBatch ? "full batch" : "short batch");
    EXPECT_TRUE(check_network_gradients(net, kBatch, step, opt));
  }
}

// ---- naive references ------------------------------------------------------------------

struct ConvRef {
  int64_t filters, kernel, stride;
  Padding padding;
};

// x (n, c, h, w), w (f, c, k, k), b (f) -> (n, f, h_out, w_out), Keras 'valid'/'same'.
std::vector<double> naive_conv2d(const std::vector<double>& x, int64_t n, const Shape& in,
                                 const std::vector<double>& w, const std::vector<double>& bias,
                                 const ConvRef& r, Shape* out_shape) {
  const int64_t c = in[0], h = in[1], wd = in[2], k = r.kernel, s = r.stride;
  int64_t ho, wo, pt = 0, pl = 0;
  if (r.padding == Padding::Valid) {
    ho = (h - k) / s + 1;
    wo = (wd - k) / s + 1;
  } else {
    ho = (h + s - 1) / s;
    wo = (wd + s - 1) / s;
    pt = std::max<int64_t>((ho - 1) * s + k - h, 0) / 2;
    pl = std::max<int64_t>((wo - 1) * s + k - wd, 0) / 2;
  }
  *out_shape = Shape{r.filters, ho, wo};
  std::vector<double> y(size_t(n * r.filters * ho * wo));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < r.filters; ++o)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          double acc = bias.empty() ? 0.0 : bias[size_t(o)];
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t a = 0; a < k; ++a)
              for (int64_t bb = 0; bb < k; ++bb) {
                const int64_t yi = i * s - pt + a, xj = j * s - pl + bb;
                if (yi < 0 || yi >= h || xj < 0 || xj >= wd) continue;
                acc += w[size_t(((o * c + ci) * k + a) * k + bb)] *
                       x[size_t(((b * c + ci) * h + yi) * wd + xj)];
              }
          y[size_t(((b * r.filters + o) * ho + i) * wo + j)] = acc;
        }
  return y;
}

// A network whose only output is the layer applied directly to the input, for forward checks.
struct Direct {
  std::unique_ptr<Network> net;
  std::vector<double> x;  // rows [0, kBatch) of the input
  std::vector<double> y;  // the layer's output after a forward
};

Direct run_direct(const Shape& input, const std::function<Value(const Value&)>& body,
                  bool training = true, uint64_t seed = 3) {
  ModelBuilder b;
  Value x = b.input("x", input);
  Value y = body(x);
  Direct d;
  d.net = std::make_unique<Network>(b.build({{"out", y}}), std::vector<Task>{mse_task()},
                                    f64_options(kBatch + 1, seed));
  fill_batch(*d.net, seed + 1);
  d.net->forward(kBatch, training);
  d.x = d.net->input_buffer(0).slice(0, kBatch).to_vector<double>();
  d.y = d.net->output("out").to_vector<double>();
  return d;
}

// Forward agrees with the naive loops to rounding: sums of <= 100 products in double.
constexpr double kForwardRel = 1e-12, kForwardAbs = 1e-13;

// ---- conv2d ----------------------------------------------------------------------------

struct ConvCase {
  const char* label;
  ConvRef ref;
  Shape expected;  // output sample shape for a (3, 7, 9) input
};

const ConvCase kConvCases[] = {
    {"valid_k3_s1", {4, 3, 1, Padding::Valid}, {4, 5, 7}},
    {"valid_k3_s2", {4, 3, 2, Padding::Valid}, {4, 3, 4}},
    {"same_k3_s1", {4, 3, 1, Padding::Same}, {4, 7, 9}},
    {"same_k3_s2", {4, 3, 2, Padding::Same}, {4, 4, 5}},
    {"same_k2_s1", {2, 2, 1, Padding::Same}, {2, 7, 9}},  // extra padding at bottom/right
    {"same_k4_s2", {3, 4, 2, Padding::Same}, {3, 4, 5}},
    {"valid_k5_s3", {2, 5, 3, Padding::Valid}, {2, 1, 2}},
    {"valid_k1_s2", {2, 1, 2, Padding::Valid}, {2, 4, 5}},  // stride > kernel: skipped pixels
    {"same_k1_s3", {2, 1, 3, Padding::Same}, {2, 3, 3}},
};

class Conv2DLayer : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2DLayer, ForwardMatchesNaiveLoop) {
  const ConvCase& c = GetParam();
  const ConvRef r = c.ref;
  Direct d = run_direct(kImage, [&](const Value& x) {
    Value y = conv2d(r.filters, r.kernel, {.stride = r.stride, .padding = r.padding, .name = "conv"})(x);
    EXPECT_EQ(y.shape(), c.expected);
    return y;
  });
  // Non-zero bias so a missing bias term shows.
  Tensor bias = find_parameter(*d.net, "conv.bias").value;
  testing::fill_uniform(bias, 77);
  d.net->forward(kBatch, true);
  Shape out;
  const auto expected = naive_conv2d(d.x, kBatch, kImage,
                                     find_parameter(*d.net, "conv.weight").value.to_vector<double>(),
                                     bias.to_vector<double>(), r, &out);
  EXPECT_EQ(out, c.expected);
  EXPECT_TRUE(testing::all_close(d.net->output("out").to_vector<double>(), expected, kForwardRel,
                                 kForwardAbs));
}

TEST_P(Conv2DLayer, GradientsMatchCentralDifferences) {
  const ConvRef r = GetParam().ref;
  check_layer_gradients(
      [&](const Value& x) {
        return conv2d(r.filters, r.kernel, {.stride = r.stride, .padding = r.padding})(x);
      },
      true);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2DLayer, ::testing::ValuesIn(kConvCases),
                         [](const auto& case_info) { return std::string(case_info.param.label); });

TEST(Conv2DLayer, WithoutBiasHasOnlyAWeight) {
  ModelBuilder b;
  Value x = b.input("x", kImage);
  LayerRef conv = conv2d(2, 3, {.use_bias = false});
  conv(x);
  ASSERT_EQ(conv.layer().parameters().size(), 1u);
  EXPECT_EQ(conv.layer().parameters()[0]->shape, (Shape{2, 3, 3, 3}));
  check_layer_gradients([](const Value& v) { return conv2d(2, 3, {.use_bias = false})(v); }, true);
}

TEST(Conv2DLayer, ReluActivationGradients) {
  check_layer_gradients(
      [](const Value& x) {
        return conv2d(4, 3, {.padding = Padding::Same, .activation = Activation::ReLU})(x);
      },
      true);
}

// ---- max_pool2d ------------------------------------------------------------------------

struct PoolCase {
  const char* label;
  int64_t pool, stride;
  Shape expected;
};

const PoolCase kPoolCases[] = {
    {"p2", 2, 0, {3, 3, 4}},
    {"p3_s2", 3, 2, {3, 3, 4}},
    {"p2_s1", 2, 1, {3, 6, 8}},  // overlapping windows: dx accumulates inside one plane
    {"p2_s3", 2, 3, {3, 2, 3}},  // gaps between windows: dx is zero there
};

class MaxPool2DLayer : public ::testing::TestWithParam<PoolCase> {};

TEST_P(MaxPool2DLayer, ForwardMatchesNaiveLoop) {
  const PoolCase& c = GetParam();
  Direct d = run_direct(kImage, [&](const Value& x) {
    Value y = max_pool2d(c.pool, c.stride)(x);
    EXPECT_EQ(y.shape(), c.expected);
    return y;
  });
  const int64_t s = c.stride ? c.stride : c.pool;
  const int64_t ho = c.expected[1], wo = c.expected[2], h = kImage[1], w = kImage[2];
  std::vector<double> expected;
  for (int64_t n = 0; n < kBatch * kImage[0]; ++n)
    for (int64_t i = 0; i < ho; ++i)
      for (int64_t j = 0; j < wo; ++j) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t a = 0; a < c.pool; ++a)
          for (int64_t bb = 0; bb < c.pool; ++bb)
            m = std::max(m, d.x[size_t((n * h + i * s + a) * w + j * s + bb)]);
        expected.push_back(m);
      }
  EXPECT_TRUE(testing::all_close(d.y, expected, 0.0, 0.0));  // a max is exact
}

TEST_P(MaxPool2DLayer, GradientsMatchCentralDifferences) {
  const PoolCase c = GetParam();
  check_layer_gradients([&](const Value& x) { return max_pool2d(c.pool, c.stride)(x); }, true);
}

INSTANTIATE_TEST_SUITE_P(Windows, MaxPool2DLayer, ::testing::ValuesIn(kPoolCases),
                         [](const auto& case_info) { return std::string(case_info.param.label); });

// ---- dense, relu, flatten --------------------------------------------------------------

TEST(DenseLayer, ForwardMatchesNaiveLoop) {
  Direct d = run_direct(kFeatures, [](const Value& x) { return dense(5, Activation::None, "fc")(x); });
  Tensor bias = find_parameter(*d.net, "fc.bias").value;
  testing::fill_uniform(bias, 78);
  d.net->forward(kBatch, true);
  const auto w = find_parameter(*d.net, "fc.weight").value.to_vector<double>();  // (5, 11)
  const auto bv = bias.to_vector<double>();
  std::vector<double> expected;
  for (int64_t n = 0; n < kBatch; ++n)
    for (int64_t u = 0; u < 5; ++u) {
      double acc = bv[size_t(u)];
      for (int64_t f = 0; f < 11; ++f) acc += w[size_t(u * 11 + f)] * d.x[size_t(n * 11 + f)];
      expected.push_back(acc);
    }
  EXPECT_TRUE(testing::all_close(d.net->output("out").to_vector<double>(), expected, kForwardRel,
                                 kForwardAbs));
}

TEST(DenseLayer, Gradients) {
  check_layer_gradients([](const Value& x) { return dense(5)(x); }, false);
}

TEST(DenseLayer, WithoutBiasGradients) {
  check_layer_gradients([](const Value& x) { return dense(4, DenseOptions{.use_bias = false})(x); },
                        false);
}

TEST(DenseLayer, ReluActivationGradients) {
  check_layer_gradients([](const Value& x) { return dense(7, Activation::ReLU)(x); }, false);
}

TEST(DenseLayer, AfterFlattenOfAnImage) {
  check_layer_gradients([](const Value& x) { return dense(4)(flatten()(x)); }, true);
}

TEST(ReluLayer, ForwardIsMaxWithZero) {
  Direct d = run_direct(kImage, [](const Value& x) { return relu()(x); });
  ASSERT_EQ(d.y.size(), d.x.size());
  for (size_t i = 0; i < d.x.size(); ++i) EXPECT_EQ(d.y[i], std::max(d.x[i], 0.0)) << i;
}

TEST(ReluLayer, Gradients) {
  check_layer_gradients([](const Value& x) { return relu()(x); }, true);
  check_layer_gradients([](const Value& x) { return relu()(x); }, false);
}

TEST(FlattenLayer, ForwardKeepsRowMajorOrder) {
  Direct d = run_direct(kImage, [](const Value& x) {
    Value y = flatten()(x);
    EXPECT_EQ(y.shape(), (Shape{3 * 7 * 9}));
    return y;
  });
  EXPECT_EQ(d.y, d.x);
}

TEST(FlattenLayer, Gradients) {
  check_layer_gradients([](const Value& x) { return flatten()(x); }, true);
}

// ---- add, concat -----------------------------------------------------------------------

TEST(AddLayer, ForwardSumsInputs) {
  ModelBuilder b;
  Value x = b.input("x", kFeatures);
  Value h = dense(11, Activation::None, "h")(x);
  Network net(b.build({{"out", add()({x, h})}, {"h", h}}), {mse_task()}, f64_options(kBatch));
  fill_batch(net, 5);
  net.forward(kBatch, true);
  const auto xs = net.input_buffer(0).to_vector<double>();
  const auto hs = net.output("h").to_vector<double>();
  const auto ys = net.output("out").to_vector<double>();
  for (size_t i = 0; i < ys.size(); ++i) EXPECT_EQ(ys[i], xs[i] + hs[i]) << i;
}

TEST(AddLayer, ResidualGradients) {
  // pre feeds both the conv and the add: its gradient is the sum of both consumers'.
  check_layer_gradients(
      [](const Value& x) { return add()({x, conv2d(3, 3, {.padding = Padding::Same})(x)}); }, true);
  check_layer_gradients([](const Value& x) { return add()({x, dense(6)(x)}); }, false);
}

TEST(AddLayer, SameValueTwiceGetsTwiceTheGradient) {
  // Both inputs of one call share one gradient buffer: Overwrite then Accumulate.
  check_layer_gradients([](const Value& x) { return add()({x, x}); }, true);
}

TEST(ConcatLayer, ForwardConcatenatesChannels) {
  ModelBuilder b;
  Value x = b.input("x", kImage);
  Value a = conv2d(2, 1, {.name = "a"})(x);
  Value y = concat()({a, x});
  EXPECT_EQ(y.shape(), (Shape{5, 7, 9}));
  Network net(b.build({{"out", y}, {"a", a}}), {mse_task()}, f64_options(kBatch));
  fill_batch(net, 6);
  net.forward(kBatch, true);
  const auto xs = net.input_buffer(0).to_vector<double>();
  const auto as = net.output("a").to_vector<double>();
  const auto ys = net.output("out").to_vector<double>();
  const size_t plane = 7 * 9;
  for (size_t n = 0; n < size_t(kBatch); ++n)
    for (size_t c = 0; c < 5; ++c)
      for (size_t p = 0; p < plane; ++p) {
        const double expected = c < 2 ? as[(n * 2 + c) * plane + p] : xs[(n * 3 + c - 2) * plane + p];
        ASSERT_EQ(ys[(n * 5 + c) * plane + p], expected) << n << " " << c << " " << p;
      }
}

TEST(ConcatLayer, ChannelGradients) {
  check_layer_gradients(
      [](const Value& x) {
        Value a = conv2d(2, 3, {.padding = Padding::Same})(x);
        Value c = conv2d(3, 1)(x);
        return concat()({a, c, x});  // three parts of 2, 3 and 3 channels; x read twice
      },
      true);
}

TEST(ConcatLayer, FeatureGradients) {
  check_layer_gradients(
      [](const Value& x) { return concat()({dense(4)(x), x, dense(1)(x)}); }, false);
}

TEST(ConcatLayer, SameValueTwice) {
  check_layer_gradients([](const Value& x) { return concat()({x, x}); }, false);
}

// ---- batch_norm ------------------------------------------------------------------------

TEST(BatchNormLayer, TrainingForwardNormalisesPerChannel) {
  Direct d = run_direct(kImage, [](const Value& x) { return batch_norm({.name = "bn"})(x); });
  // gamma = 1, beta = 0: every channel of the output has mean 0 and biased variance
  // var / (var + eps).
  const size_t plane = 7 * 9;
  const auto at = [&](size_t n, size_t c, size_t p) { return (n * 3 + c) * plane + p; };
  const double count = double(kBatch) * double(plane);
  for (size_t c = 0; c < 3; ++c) {
    double mean = 0, var = 0, ymean = 0, yvar = 0;
    for (size_t n = 0; n < size_t(kBatch); ++n)
      for (size_t p = 0; p < plane; ++p) mean += d.x[at(n, c, p)] / count;
    for (size_t n = 0; n < size_t(kBatch); ++n)
      for (size_t p = 0; p < plane; ++p) {
        var += (d.x[at(n, c, p)] - mean) * (d.x[at(n, c, p)] - mean) / count;
        ymean += d.y[at(n, c, p)] / count;
      }
    for (size_t n = 0; n < size_t(kBatch); ++n)
      for (size_t p = 0; p < plane; ++p) {
        const double y = d.y[at(n, c, p)];
        yvar += (y - ymean) * (y - ymean) / count;
        // Keras' normalisation with the biased batch variance and eps 1e-3.
        EXPECT_NEAR(y, (d.x[at(n, c, p)] - mean) / std::sqrt(var + 1e-3), 1e-12) << c;
      }
    EXPECT_NEAR(ymean, 0.0, 1e-12);
    EXPECT_NEAR(yvar, var / (var + 1e-3), 1e-12);
  }
}

TEST(BatchNormLayer, ImageGradientsInTraining) {
  check_layer_gradients([](const Value& x) { return batch_norm()(x); }, true);
}

TEST(BatchNormLayer, FeatureGradientsInTraining) {
  check_layer_gradients([](const Value& x) { return batch_norm()(x); }, false);
}

TEST(BatchNormLayer, NonTrivialGammaBetaGradients) {
  // A dense after the BatchNorm makes the loss depend on gamma and beta through more than a
  // sum, and BatchNorm followed by ReLU is the usual pattern.
  check_layer_gradients([](const Value& x) { return relu()(dense(5)(batch_norm()(x))); }, false);
}

// ---- dropout ---------------------------------------------------------------------------

TEST(DropoutLayer, TrainingZeroesOrScales) {
  const double rate = 0.3;
  Direct d = run_direct(kImage, [&](const Value& x) { return dropout(rate)(x); });
  // The dropout kernels take the rate as a float, so the keep scale is 1 / (1 - float(rate))
  // even in double precision (a 2e-8 relative difference from 1 / 0.7).
  const double scale = 1.0 / (1.0 - double(float(rate)));
  size_t dropped = 0;
  for (size_t i = 0; i < d.x.size(); ++i) {
    if (d.y[i] == 0.0) {
      ++dropped;
    } else {
      EXPECT_NEAR(d.y[i], d.x[i] * scale, 1e-15 * std::abs(d.x[i])) << i;  // one product
    }
  }
  // 567 elements at rate 0.3: 170 expected, standard deviation ~11.
  EXPECT_GT(dropped, 100u);
  EXPECT_LT(dropped, 240u);
}

TEST(DropoutLayer, GradientsAtAFixedStep) {
  check_layer_gradients([](const Value& x) { return dropout(0.3)(x); }, true, 1, {}, /*step=*/5);
  check_layer_gradients([](const Value& x) { return dense(3)(dropout(0.5)(x)); }, false, 2, {},
                        /*step=*/2);
}

// ---- softmax, mixture, cross_stitch (soft sharing) -------------------------------------

TEST(SoftmaxLayer, ForwardMatchesNaiveLoop) {
  Direct d = run_direct(kFeatures, [](const Value& x) { return softmax()(x); });
  std::vector<double> expected;
  const size_t f = size_t(kFeatures[0]);
  for (size_t n = 0; n < size_t(kBatch); ++n) {
    double sum = 0;
    for (size_t j = 0; j < f; ++j) sum += std::exp(d.x[n * f + j]);
    for (size_t j = 0; j < f; ++j) expected.push_back(std::exp(d.x[n * f + j]) / sum);
  }
  EXPECT_TRUE(testing::all_close(d.y, expected, kForwardRel, 0.0));
}

TEST(SoftmaxLayer, Gradients) {
  check_layer_gradients([](const Value& x) { return softmax()(x); }, false);
}

TEST(SoftmaxLayer, RefusesAnImageNamingTheLayer) {
  ModelBuilder b;
  Value x = b.input("x", kImage);
  const std::string e = error_message([&] { softmax("gate")(x); });
  EXPECT_TRUE(contains(e, "gate (softmax): expects a (features,) input, got (3, 7, 9)")) << e;
}

TEST(MixtureLayer, ForwardIsTheGateWeightedSumOfTheExperts) {
  ModelBuilder b;
  Value x = b.input("x", {12});  // 3 experts of 4 features
  Value gate = softmax("gate")(dense(3, Activation::None, "gate_logits")(x));
  Value y = mixture("mix")({x, gate});
  EXPECT_EQ(y.shape(), (Shape{4}));
  Network net(b.build({{"out", y}, {"gate", gate}}), {mse_task()}, f64_options(kBatch));
  fill_batch(net, 7);
  net.forward(kBatch, true);
  const auto xs = net.input_buffer(0).to_vector<double>();
  const auto gs = net.output("gate").to_vector<double>();
  const auto ys = net.output("out").to_vector<double>();
  for (size_t n = 0; n < size_t(kBatch); ++n)
    for (size_t j = 0; j < 4; ++j) {
      double expected = 0;
      for (size_t e = 0; e < 3; ++e) expected += gs[n * 3 + e] * xs[n * 12 + e * 4 + j];
      EXPECT_NEAR(ys[n * 4 + j], expected, 1e-15) << n << " " << j;
    }
}

TEST(MixtureLayer, GradientsThroughASoftmaxGate) {
  // pre (6,) feeds three experts of 3 features and the gate.
  check_layer_gradients(
      [](const Value& x) { return mixture()({dense(9)(x), softmax()(dense(3)(x))}); }, false);
}

TEST(MixtureLayer, GradientsOfBothInputsDirectly) {
  // pre itself is the experts (2 experts of 3 features) and, through a dense, the raw gate.
  check_layer_gradients([](const Value& x) { return mixture()({x, dense(2)(x)}); }, false);
}

TEST(MixtureLayer, SameValueAsExpertsAndGate) {
  // (6,) as 6 experts of one feature gated by itself: y = Σ x_e², both gradients into one buffer.
  check_layer_gradients([](const Value& x) { return mixture()({x, x}); }, false);
}

TEST(MixtureLayer, ShapesThatDoNotFitNameTheLayerAndBothShapes) {
  ModelBuilder b;
  Value x = b.input("x", {12});
  Value g = b.input("g", {5});
  const std::string e = error_message([&] { mixture("mix")({x, g}); });
  EXPECT_TRUE(contains(e, "mix (mixture): cannot mix experts of shape (12,) with a gate of "
                          "shape (5,)"))
      << e;
  EXPECT_TRUE(contains(error_message([&] { mixture("m1")({b.input("img", kImage), g}); }),
                       "m1 (mixture)"));
  EXPECT_TRUE(contains(error_message([&] { mixture("m2")({x}); }), "expects 2 inputs"));
}

// alpha as a vector of doubles, whatever the network's dtype.
std::vector<double> alpha_of(const Network& net, const std::string& layer) {
  return testing::values_of(find_parameter(net, layer + ".alpha").value);
}

TEST(CrossStitchLayer, ForwardIsTheAlphaWeightedSum) {
  ModelBuilder b;
  Value x = b.input("x", kImage);
  Value a = conv2d(3, 1, {.name = "a"})(x);
  Value y = cross_stitch({.name = "cs"})({a, x});
  EXPECT_EQ(y.shape(), kImage);
  Network net(b.build({{"out", y}, {"a", a}}), {mse_task()}, f64_options(kBatch));
  fill_batch(net, 8);
  testing::fill_uniform(find_parameter(net, "cs.alpha").value, 9);  // away from 0.9 / 0.1
  net.forward(kBatch, true);
  const auto alpha = alpha_of(net, "cs");
  const auto xs = net.input_buffer(0).to_vector<double>();
  const auto as = net.output("a").to_vector<double>();
  const auto ys = net.output("out").to_vector<double>();
  ASSERT_EQ(ys.size(), as.size());
  for (size_t i = 0; i < ys.size(); ++i)
    EXPECT_NEAR(ys[i], alpha[0] * as[i] + alpha[1] * xs[i], 1e-15) << i;
}

TEST(CrossStitchLayer, AlphaStartsAsMisraEtAlInitialiseIt) {
  for (DType dt : {DType::F64, DType::F32}) {
    ModelBuilder b;
    Value x = b.input("x", kFeatures);
    Value h = dense(11, Activation::None, "h")(x);
    Value g = dense(11, Activation::None, "g")(x);
    Value three = cross_stitch({.name = "three"})({x, h, g});
    Value two = cross_stitch({.self_weight = 0.6, .name = "two"})({h, x});
    Value only = cross_stitch({.self_weight = 1.0, .name = "only"})({g, h});
    NetworkOptions o = f64_options(kBatch);
    o.dtype = dt;
    Network net(b.build({{"out", add()({three, add()({two, only})})}}), {mse_task()}, o);
    // The task's own activation keeps self_weight; the others share the rest equally.
    EXPECT_TRUE(testing::all_close(alpha_of(net, "three"), std::vector<double>{0.9, 0.05, 0.05},
                                   1e-7, 0.0));
    EXPECT_TRUE(testing::all_close(alpha_of(net, "two"), std::vector<double>{0.6, 0.4}, 1e-7, 0.0));
    EXPECT_EQ(alpha_of(net, "only"), (std::vector<double>{1.0, 0.0}));
    // initialize() puts them back after training moved them.
    testing::train_pass(net, kBatch);
    net.initialize(3);
    EXPECT_TRUE(testing::all_close(alpha_of(net, "two"), std::vector<double>{0.6, 0.4}, 1e-7, 0.0));
  }
}

TEST(CrossStitchLayer, ImageGradients) {
  check_layer_gradients(
      [](const Value& x) {
        return cross_stitch()(
            {x, conv2d(3, 3, {.padding = Padding::Same})(x), conv2d(3, 1)(x)});
      },
      true);
}

TEST(CrossStitchLayer, FeatureGradients) {
  check_layer_gradients([](const Value& x) { return cross_stitch()({dense(6)(x), x}); }, false);
}

TEST(CrossStitchLayer, SameValueTwiceGetsBothGradients) {
  // Both inputs of one call share one gradient buffer: Overwrite then Accumulate.
  check_layer_gradients([](const Value& x) { return cross_stitch()({x, x}); }, true);
}

TEST(CrossStitchLayer, AUnitOfTwoRowsAndASharedRow) {
  // A two-task unit (each row lists its own activation first), and one row called twice: its
  // alpha's gradient is the sum over both calls.
  check_layer_gradients(
      [](const Value& x) {
        Value a = dense(5)(x), c = dense(5)(x);
        Value a2 = cross_stitch()({a, c}), c2 = cross_stitch()({c, a});
        LayerRef shared = cross_stitch({.self_weight = 0.7});
        return add()({shared({a2, c2}), shared({c2, a2})});
      },
      false);
}

TEST(CrossStitchLayer, RefusesBadInputsAndSelfWeights) {
  ModelBuilder b;
  Value x = b.input("x", kFeatures);
  Value img = b.input("img", kImage);
  EXPECT_TRUE(contains(error_message([&] { cross_stitch({.name = "cs"})({x}); }),
                       "cs (cross_stitch): expects 2 to 8 inputs, got 1"));
  EXPECT_TRUE(contains(error_message([&] { cross_stitch()(std::vector<Value>(9, x)); }),
                       "expects 2 to 8 inputs, got 9"));
  EXPECT_TRUE(contains(error_message([&] { cross_stitch({.name = "cs2"})({x, img}); }),
                       "cs2 (cross_stitch): input 1 has shape (3, 7, 9), input 0 (11,)"));
  for (double w : {0.0, -0.5, 1.5, std::nan("")})
    EXPECT_TRUE(contains(error_message([&] { cross_stitch({.self_weight = w}); }),
                         "cross_stitch: self_weight must be in (0, 1]"))
        << w;
  LayerRef two = cross_stitch({.name = "two"});
  two({x, x});
  EXPECT_TRUE(contains(error_message([&] { two({x, x, x}); }),
                       "two (cross_stitch): was built for 2 inputs, called with 3"));
}

TEST(CrossStitchLayer, AlphaIsSavedAndLoadedByName) {
  const auto build = [] {
    ModelBuilder b;
    Value x = b.input("x", kFeatures);
    Value h = dense(11, Activation::None, "h")(x);
    return b.build({{"out", cross_stitch({.name = "cs"})({x, h})}});
  };
  Network trained(build(), {mse_task()}, f64_options(kBatch));
  testing::fill_uniform(find_parameter(trained, "cs.alpha").value, 12);
  const auto dir = std::filesystem::temp_directory_path() /
                   ("polytask_test_layers_" + std::to_string(::getpid()));
  save_checkpoint(dir.string(), trained, nullptr, {});
  Network fresh(build(), {mse_task()}, f64_options(kBatch));
  EXPECT_NE(alpha_of(fresh, "cs"), alpha_of(trained, "cs"));
  load_parameters(dir.string(), fresh);
  EXPECT_EQ(alpha_of(fresh, "cs"), alpha_of(trained, "cs"));
  std::filesystem::remove_all(dir);
}

// ---- losses ----------------------------------------------------------------------------

void check_loss_gradients(const Task& task, int64_t units) {
  for (const int64_t max_batch : {kBatch, kBatch + 2}) {
    ModelBuilder b;
    Value x = b.input("x", kFeatures);
    Value y = dense(units, Activation::None, "logits")(dense(6, Activation::ReLU, "pre")(x));
    Network net(b.build({{"out", y}}), {task}, f64_options(max_batch, 9));
    fill_batch(net, 21);
    SCOPED_TRACE(loss_name(task.loss));
    EXPECT_TRUE(check_network_gradients(net, kBatch));
  }
}

TEST(Losses, SoftmaxCrossEntropyClassIndices) {
  Task t = mse_task();
  t.loss = LossKind::SoftmaxCrossEntropy;
  check_loss_gradients(t, 5);
}

TEST(Losses, SoftmaxCrossEntropySoftTargets) {
  Task t = mse_task();
  t.loss = LossKind::SoftmaxCrossEntropy;
  t.target = TargetKind::Values;
  check_loss_gradients(t, 4);
}

TEST(Losses, BinaryCrossEntropy) {
  Task t = mse_task();
  t.loss = LossKind::BinaryCrossEntropy;
  check_loss_gradients(t, 3);
}

TEST(Losses, MeanSquaredErrorWithWeight) {
  Task t = mse_task();
  t.weight = 0.37;
  check_loss_gradients(t, 2);
}

TEST(Losses, SoftmaxCrossEntropyValueMatchesHandComputation) {
  ModelBuilder b;
  Value x = b.input("x", kFeatures);
  Task t = mse_task();
  t.loss = LossKind::SoftmaxCrossEntropy;
  Network net(b.build({{"out", dense(4)(x)}}), {t}, f64_options(kBatch, 4));
  fill_batch(net, 8);
  net.forward(kBatch, true);
  const auto z = net.output("out").to_vector<double>();
  const auto labels = net.target_buffer(0).to_vector<int32_t>();
  double expected = 0;
  for (size_t n = 0; n < size_t(kBatch); ++n) {
    double sum = 0;
    for (size_t j = 0; j < 4; ++j) sum += std::exp(z[n * 4 + j]);
    expected += (std::log(sum) - z[n * 4 + size_t(labels[n])]) / double(kBatch);
  }
  EXPECT_NEAR(net.total_loss(), expected, 1e-13);
}

}  // namespace
}  // namespace polytask
