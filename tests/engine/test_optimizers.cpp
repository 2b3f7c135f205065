// Adam and SGD through the engine: two steps on a tiny two-task network, each compared with
// the update computed here by hand from the gradients read out of parameters().grads.
//
// Tolerance (double): the hand formulas associate differently from the kernel (sqrt(v / c2)
// vs sqrt(v) / sqrt(c2)), a few ulps of an update of ~lr, plus one rounding of a parameter of
// magnitude <= ~1: rel 1e-13, abs 1e-15. Any formula difference (where eps enters, a missing
// bias correction, decay applied to the gradient instead of the weight) is >= 1e-8.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/layers.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask {
namespace {

using namespace layers;
using testing::all_close;
using testing::f64_options;
using testing::fill_batch;
using testing::flat_grads;
using testing::flat_params;

constexpr double kRel = 1e-13, kAbs = 1e-15;

std::unique_ptr<Network> tiny_network(double weight_scale = 1.0, DType dtype = DType::F64,
                                      bool with_batch_norm = false) {
  ModelBuilder b;
  Value x = b.input("x", {5});
  Value h = dense(6, Activation::ReLU, "hidden")(x);
  if (with_batch_norm) h = batch_norm({.name = "bn"})(h);
  Value z = dense(4, Activation::ReLU, "shared")(h);
  Task cls, reg;
  cls.name = "cls";
  cls.weight = 1.0 * weight_scale;
  reg.name = "reg";
  reg.loss = LossKind::MeanSquaredError;
  reg.weight = 0.5 * weight_scale;
  NetworkOptions o = f64_options(4, 3);
  o.dtype = dtype;
  auto net = std::make_unique<Network>(
      b.build({{"cls", dense(3, Activation::None, "cls_out")(z)}, {"reg", dense(2, Activation::None, "reg_out")(z)}}),
      std::vector<Task>{cls, reg}, o);
  return net;
}

// Forward + backward on batch `seed`; returns the gradients.
std::vector<double> gradients(Network& net, uint64_t seed) {
  fill_batch(net, seed);
  net.forward(4, true);
  net.backward();
  return flat_grads(net);
}

// ---- Adam ------------------------------------------------------------------------------

struct HandAdam {
  kernels::AdamParams p;
  std::vector<double> m, v;
  int64_t t = 0;

  // PyTorch's formula (eps after bias-correcting sqrt(v)), with decoupled (AdamW) decay.
  void step(std::vector<double>& param, const std::vector<double>& g) {
    if (m.empty()) m.assign(g.size(), 0.0), v.assign(g.size(), 0.0);
    ++t;
    const double b1 = p.beta1, b2 = p.beta2, lr = p.lr, eps = p.eps, wd = p.weight_decay;
    for (size_t i = 0; i < g.size(); ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, double(t)));
      const double v_hat = v[i] / (1 - std::pow(b2, double(t)));
      param[i] = param[i] * (1 - lr * wd) - lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

void check_adam(kernels::AdamParams params, double weight_scale) {
  auto net = tiny_network(weight_scale);
  Adam adam(params);
  HandAdam hand{params, {}, {}, 0};
  std::vector<double> expected = flat_params(*net);
  const auto initial = expected;
  for (uint64_t step = 0; step < 2; ++step) {
    const auto g = gradients(*net, 10 + step);
    hand.step(expected, g);
    adam.step(net->parameters());
    EXPECT_TRUE(all_close(flat_params(*net), expected, kRel, kAbs)) << "step " << step + 1;
  }
  EXPECT_EQ(adam.steps_taken(), 2);
  EXPECT_NE(flat_params(*net), initial);
  // The moments are the checkpointed state.
  const auto state = adam.state();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "adam.m");
  EXPECT_TRUE(all_close(state[0].second.to_vector<double>(), hand.m, 1e-14, 1e-300));
  EXPECT_TRUE(all_close(state[1].second.to_vector<double>(), hand.v, 1e-14, 1e-300));
  EXPECT_EQ(state[2].second.item(0), 3.0);  // the next step's 1-based count
}

TEST(AdamOptimizer, DefaultsAreKerasEpsilonAndUsualBetas) {
  const kernels::AdamParams p;
  EXPECT_EQ(p.eps, 1e-7f);
  EXPECT_EQ(p.beta1, 0.9f);
  EXPECT_EQ(p.beta2, 0.999f);
  EXPECT_EQ(p.lr, 1e-3f);
  EXPECT_EQ(Adam().learning_rate(), double(1e-3f));
  EXPECT_EQ(Adam().name(), "adam");
}

TEST(AdamOptimizer, TwoStepsMatchHandComputation) { check_adam({}, 1.0); }

TEST(AdamOptimizer, TinyGradientsWhereEpsilonMatters) {
  // Loss weights of 1e-6 make gradients ~1e-7, the size of eps: Keras' placement of eps
  // (added to the uncorrected sqrt(v)) would change the first update by ~30x here.
  check_adam({}, 1e-6);
}

TEST(AdamOptimizer, CustomHyperparametersAndDecoupledWeightDecay) {
  kernels::AdamParams p;
  p.lr = 0.01f;
  p.beta1 = 0.8f;
  p.beta2 = 0.99f;
  p.eps = 1e-6f;
  p.weight_decay = 0.1f;
  check_adam(p, 1.0);
}

TEST(AdamOptimizer, FloatNetworkAgreesWithDoubleHandComputation) {
  auto net = tiny_network(1.0, DType::F32);
  Adam adam;
  HandAdam hand;
  std::vector<double> expected = flat_params(*net);
  for (uint64_t step = 0; step < 2; ++step) {
    const auto g = gradients(*net, 20 + step);
    hand.step(expected, g);
    adam.step(net->parameters());
    // Float: a few ulps of parameters of magnitude <= ~1.
    EXPECT_TRUE(all_close(flat_params(*net), expected, 1e-6, 1e-7)) << "step " << step + 1;
  }
}

TEST(AdamOptimizer, LearningRateChangeTakesEffectNextStep) {
  auto net = tiny_network();
  Adam adam;
  HandAdam hand;
  std::vector<double> expected = flat_params(*net);
  hand.step(expected, gradients(*net, 30));
  adam.step(net->parameters());
  adam.set_learning_rate(0.05);
  EXPECT_EQ(adam.learning_rate(), double(0.05f));
  hand.p.lr = 0.05f;
  hand.step(expected, gradients(*net, 31));
  adam.step(net->parameters());
  EXPECT_TRUE(all_close(flat_params(*net), expected, kRel, kAbs));
}

// ---- SGD -------------------------------------------------------------------------------

struct HandSgd {
  kernels::SgdParams p;
  std::vector<double> buf;

  // torch.optim.SGD: L2 decay added to the gradient, zero-initialised momentum buffer.
  void step(std::vector<double>& param, const std::vector<double>& g) {
    if (buf.empty()) buf.assign(g.size(), 0.0);
    const double lr = p.lr, mom = p.momentum, wd = p.weight_decay;
    for (size_t i = 0; i < g.size(); ++i) {
      const double gi = g[i] + wd * param[i];
      buf[i] = mom * buf[i] + gi;
      param[i] -= lr * (p.nesterov ? gi + mom * buf[i] : buf[i]);
    }
  }
};

void check_sgd(kernels::SgdParams params) {
  auto net = tiny_network();
  Sgd sgd(params);
  HandSgd hand{params, {}};
  std::vector<double> expected = flat_params(*net);
  for (uint64_t step = 0; step < 2; ++step) {
    const auto g = gradients(*net, 40 + step);
    hand.step(expected, g);
    sgd.step(net->parameters());
    EXPECT_TRUE(all_close(flat_params(*net), expected, kRel, kAbs)) << "step " << step + 1;
  }
  const auto state = sgd.state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "sgd.velocity");
  EXPECT_TRUE(all_close(state[0].second.to_vector<double>(), hand.buf, 1e-14, 1e-300));
}

TEST(SgdOptimizer, Plain) {
  kernels::SgdParams p;
  p.lr = 0.1f;
  check_sgd(p);
}

TEST(SgdOptimizer, Momentum) {
  kernels::SgdParams p;
  p.lr = 0.1f;
  p.momentum = 0.9f;
  check_sgd(p);
}

TEST(SgdOptimizer, Nesterov) {
  kernels::SgdParams p;
  p.lr = 0.05f;
  p.momentum = 0.9f;
  p.nesterov = true;
  check_sgd(p);
}

TEST(SgdOptimizer, WeightDecayWithMomentum) {
  kernels::SgdParams p;
  p.lr = 0.1f;
  p.momentum = 0.5f;
  p.weight_decay = 0.01f;
  check_sgd(p);
}

TEST(SgdOptimizer, PlainStepIsMinusLrTimesGradient) {
  // The simplest hand check, written out: p1 = p0 - lr · g.
  auto net = tiny_network();
  kernels::SgdParams p;
  p.lr = 0.25f;
  Sgd sgd(p);
  const auto p0 = flat_params(*net);
  const auto g = gradients(*net, 50);
  sgd.step(net->parameters());
  const auto p1 = flat_params(*net);
  size_t moved = 0;
  for (size_t i = 0; i < p0.size(); ++i) {
    EXPECT_EQ(p1[i], p0[i] - 0.25 * g[i]) << i;  // 0.25 is exact in float and double
    moved += p1[i] != p0[i];
  }
  EXPECT_GT(moved, p0.size() / 2);
}

// ---- both ------------------------------------------------------------------------------

TEST(Optimizers, UpdateOnlyTrainableParameters) {
  auto net = tiny_network(1.0, DType::F64, /*with_batch_norm=*/true);
  gradients(*net, 60);
  const auto state = net->parameters().state.to_vector<double>();
  ASSERT_EQ(net->parameters().state_count, 12);  // running mean and variance of 6 features
  Adam adam;
  adam.step(net->parameters());
  Sgd sgd;
  sgd.step(net->parameters());
  EXPECT_EQ(net->parameters().state.to_vector<double>(), state);
}

TEST(Optimizers, ParameterViewsSeeTheFlatUpdate) {
  // Per-parameter tensors are views into the flat buffers the optimiser updates.
  auto net = tiny_network();
  gradients(*net, 70);
  const Parameter& w = testing::find_parameter(*net, "shared.weight");
  const auto before = w.value.to_vector<double>();
  const auto g = w.grad.to_vector<double>();
  kernels::SgdParams p;
  p.lr = 0.5f;
  Sgd sgd(p);
  sgd.step(net->parameters());
  const auto after = w.value.to_vector<double>();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], before[i] - 0.5 * g[i]) << i;
}

}  // namespace
}  // namespace polytask
