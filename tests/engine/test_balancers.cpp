// Every balancing strategy against a case worked out by hand (the arithmetic is written next to
// each expectation), the factory's errors, the weights' bounds under extreme losses, and the
// state round trip a checkpoint relies on. Whole-network training with each strategy is in
// test_balancers_training.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/balancer.h"
#include "engine/balancers/strategies.h"
#include "engine/fan_out.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

// ---- the factory ----------------------------------------------------------------------------

TEST(Balancers, FactoryKnowsEveryStrategyAndListsThemForAnUnknownName) {
  for (const auto& name : balancer_names()) EXPECT_EQ(make_balancer(named(name))->name(), name);
  const std::string message = error_message([] { make_balancer(named("nosuch")); });
  EXPECT_TRUE(contains(message, "unknown balancer 'nosuch'"));
  EXPECT_TRUE(contains(message, "static, dynamic, uncertainty, gradnorm, dwa, pcgrad, mgda"));
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(Balancers, FactoryRejectsOptionsOutOfRange) {
  BalancerOptions o = named("gradnorm");
  o.alpha = -1;
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "alpha"));
  o = named("dwa");
  o.temperature = 0;
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "temperature"));
  o = named("uncertainty");
  o.lr = NAN;
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "lr"));
  o = named("dynamic");
  o.step = 0;
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "step"));
  o = named("mgda");
  o.normalization = "max";
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "normalization"));
  o = named("static");
  o.schedule["a"] = {1.0};
  EXPECT_TRUE(contains(error_message([&] { make_balancer(o); }), "dynamic"));
}

TEST(Balancers, AdaptiveStrategiesNeedPositiveStartingWeights) {
  for (const char* name : {"uncertainty", "gradnorm", "dwa"}) {
    const std::string message = error_message([&] { bound(named(name), {1.0, 0.0}); });
    EXPECT_TRUE(contains(message, "task 't1'")) << name;
    EXPECT_TRUE(contains(message, name)) << name;
  }
  // Static, PCGrad, MGDA and dynamic accept a switched-off task.
  for (const char* name : {"static", "pcgrad", "mgda", "dynamic"})
    EXPECT_NO_THROW(bound(named(name), {1.0, 0.0}));
}

// Every strategy but static solves on T×T numbers in fixed-size arrays (kernels/balance.h):
// more tasks than they take is refused at bind, naming the limit; static takes any number.
TEST(Balancers, ATaskCountBeyondTheSolvesLimitIsRefusedExceptByStatic) {
  const std::vector<double> nine(9, 1.0);
  for (const std::string& name : balancer_names()) {
    if (name == "static") {
      EXPECT_NO_THROW(bound(named(name), nine)) << name;
      continue;
    }
    const std::string message = error_message([&] { bound(named(name), nine); });
    EXPECT_TRUE(contains(message, "9 tasks; a balanced fan-out takes at most 8")) << message;
  }
  auto b = bound(named("static"), nine);
  EXPECT_EQ(seeds_for(*b, std::vector<double>(9, 0.5)), nine);
}

// ---- static ---------------------------------------------------------------------------------

TEST(Balancers, StaticSeedsAreTheWeightsAndDzIsThePlainSumBitForBit) {
  auto b = bound(named("static"), {1.0, 0.5, 0.25}, 64, DType::F32);
  EXPECT_EQ(seeds_for(*b, {3.0, 2.0, 1.0}), (std::vector<double>{1.0, 0.5, 0.25}));
  std::vector<Tensor> grads;
  for (uint64_t t = 0; t < 3; ++t) {
    grads.push_back(Tensor::empty({1, 64}, DType::F32));
    testing::fill_uniform(grads.back(), 40 + t, -1e3, 1e3);
  }
  TaskGradients g;
  g.grads = grads;
  const std::vector<double> gram(9, 1.0), losses(3, 1.0), seeds = {1.0, 0.5, 0.25};
  g.gram = gram, g.losses = losses, g.seeds = seeds;
  Tensor dz = Tensor::empty({1, 64}, DType::F32);
  dz.fill(NAN);
  b->combine(g, dz);
  const float* a = grads[0].data<float>();
  const float* c = grads[1].data<float>();
  const float* d = grads[2].data<float>();
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(dz.data<float>()[i], (a[i] + c[i]) + d[i]) << i;
}

TEST(Balancers, SetWeightIsForFixedWeightStrategiesOnly) {
  for (const char* name : {"static", "pcgrad"}) {
    auto b = bound(named(name), {1.0, 1.0});
    b->set_weight(1, 0.25);
    EXPECT_EQ(seeds_for(*b, {1.0, 1.0}), (std::vector<double>{1.0, 0.25})) << name;
  }
  for (const char* name : {"dynamic", "uncertainty", "gradnorm", "dwa", "mgda"}) {
    auto b = bound(named(name), {1.0, 1.0});
    EXPECT_TRUE(
        contains(error_message([&] { b->set_weight(0, 2.0); }), "sets the loss weights itself"))
        << name;
  }
}

// ---- PCGrad ---------------------------------------------------------------------------------

TEST(Balancers, PcGradProjectsTwoConflictingGradientsOntoEachOthersNormalPlane) {
  auto b = bound(named("pcgrad"), {1.0, 1.0});
  seeds_for(*b, {1.0, 1.0});
  // g1 = (1, 0), g2 = (-1, 1): <g1, g2> = -1 < 0, so both are projected.
  //   pc1 = g1 - (-1)/‖g2‖²·g2 = (1, 0) + ½(-1, 1) = (0.5, 0.5)
  //   pc2 = g2 - (-1)/‖g1‖²·g1 = (-1, 1) + (1, 0) = (0, 1)
  //   dz  = pc1 + pc2 = (0.5, 1.5)
  expect_near(combine(*b, Step({{1, 0}, {-1, 1}}, {1, 1}, {1, 1})), {0.5, 1.5});
  // Agreeing gradients (<g1, g2> = 1 > 0) are summed untouched.
  expect_near(combine(*b, Step({{1, 0}, {1, 1}}, {1, 1}, {1, 1})), {2.0, 1.0});
  // Orthogonal ones too (<g1, g2> = 0 is no conflict).
  expect_near(combine(*b, Step({{2, 0}, {0, 3}}, {1, 1}, {1, 1})), {2.0, 3.0});
}

TEST(Balancers, PcGradTaskOrderIsRandomButFixedBySeedAndStep) {
  // Three mutually conflicting gradients: the projections depend on the order.
  const std::vector<std::vector<double>> g = {{1, 0, 0.2}, {-0.8, 1, 0}, {-0.5, -0.9, 1}};
  BalancerOptions o = named("pcgrad");
  o.seed = 7;
  std::map<std::vector<double>, int> outcomes;
  for (uint64_t step = 0; step < 40; ++step) {
    auto first = bound(o, {1, 1, 1}, 3), second = bound(o, {1, 1, 1}, 3);
    Step s(g, {1, 1, 1}, {1, 1, 1});
    s.step = step;
    const auto a = combine(*first, s), b = combine(*second, s);
    EXPECT_EQ(a, b) << "step " << step;  // deterministic
    ++outcomes[a];
  }
  EXPECT_GT(outcomes.size(), 1u);  // the order does change from step to step
  // Each result is one of the 2^3 = 8 orders' (each task orders the other two).
  EXPECT_LE(outcomes.size(), 8u);
}

// ---- MGDA -----------------------------------------------------------------------------------

TEST(Balancers, MgdaFindsTheMinNormPointOfTwoGradientsInClosedForm) {
  auto b = bound(named("mgda"), {1.0, 0.5});
  EXPECT_EQ(seeds_for(*b, {2.0, 3.0}), (std::vector<double>{1.0, 1.0}));  // raw task gradients
  // g1 = (1, 0), g2 = (0, 2): α1 = <g2 - g1, g2> / ‖g1 - g2‖² = 4 / 5 = 0.8, α2 = 0.2;
  // dz = 0.8·(1, 0) + 0.2·(0, 2) = (0.8, 0.4), the point of the segment nearest the origin.
  expect_near(combine(*b, Step({{1, 0}, {0, 2}}, {1, 1}, {1, 1})), {0.8, 0.4});
  expect_near(weights_of(*b), {0.8, 0.2});
  // Aligned gradients g1 = (1, 0), g2 = (2, 0): the shorter one alone, α = (1, 0).
  expect_near(combine(*b, Step({{1, 0}, {2, 0}}, {1, 1}, {1, 1})), {1.0, 0.0});
  expect_near(weights_of(*b), {1.0, 0.0});
}

TEST(Balancers, MgdaNormalisesGradientsBeforeSolvingWhenAsked) {
  BalancerOptions o = named("mgda");
  o.normalization = "l2";
  auto b = bound(o, {1.0, 1.0});
  // ĝ1 = (1, 0), ĝ2 = (0, 1): α = (0.5, 0.5), applied to the raw gradients (the paper's code):
  // dz = 0.5·(1, 0) + 0.5·(0, 2) = (0.5, 1).
  expect_near(combine(*b, Step({{1, 0}, {0, 2}}, {1, 1}, {1, 1})), {0.5, 1.0});
  o.normalization = "loss";  // ĝ_t = g_t / L_t: (1, 0)/1 and (0, 2)/4 = (0, 0.5) -> α1 = 0.25/1.25
  auto c = bound(o, {1.0, 1.0});
  expect_near(combine(*c, Step({{1, 0}, {0, 2}}, {1, 4}, {1, 1})), {0.2, 1.6});
}

TEST(Balancers, MgdaFrankWolfeMatchesABruteForceSearchForThreeTasks) {
  const std::vector<std::vector<double>> g = {{1, 0.3, -0.2}, {-0.4, 1, 0.5}, {0.2, -0.7, 0.6}};
  Step s(g, {1, 1, 1}, {1, 1, 1});
  std::vector<double> alpha(3);
  balancing::mgda_min_norm(s.gram, 3, alpha);
  const auto norm2 = [&](const std::vector<double>& a) {
    double sum = 0;
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 3; ++j) sum += a[i] * a[j] * s.gram[i * 3 + j];
    return sum;
  };
  double best = INFINITY;
  for (int i = 0; i <= 400; ++i)
    for (int j = 0; i + j <= 400; ++j)
      best = std::min(best, norm2({i / 400.0, j / 400.0, (400 - i - j) / 400.0}));
  EXPECT_NEAR(alpha[0] + alpha[1] + alpha[2], 1.0, 1e-12);
  for (double a : alpha) EXPECT_GE(a, 0.0);
  EXPECT_LE(norm2(alpha), best + 1e-9);
  EXPECT_GT(norm2(alpha), best - 1e-4);  // the grid's resolution
  // Optimality (KKT): <g_t, v> >= ‖v‖² for every t, with equality where α_t > 0.
  for (size_t t = 0; t < 3; ++t) {
    double gv = 0;
    for (size_t k = 0; k < 3; ++k) gv += s.gram[t * 3 + k] * alpha[k];
    EXPECT_GE(gv, norm2(alpha) - 1e-6) << t;
    if (alpha[t] > 1e-6) {
      EXPECT_NEAR(gv, norm2(alpha), 1e-6) << t;
    }
  }
}

// ---- uncertainty ----------------------------------------------------------------------------

TEST(Balancers, UncertaintyStepsTheLogVariancesAlongTheirGradient) {
  BalancerOptions o = named("uncertainty");
  o.lr = 0.1;
  auto b = bound(o, {1.0, 0.5});
  // s = -log w = (0, log 2): the first seeds are the configured weights.
  expect_near(seeds_for(*b, {2.0, 0.5}), {1.0, 0.5});
  // ∂/∂s_t (exp(-s_t)·L_t + s_t) = 1 - exp(-s_t)·L_t = (1 - 2, 1 - 0.25) = (-1, 0.75).
  // Adam's first step moves each s by lr·g/(|g| + eps): s = (0.1, log 2 - 0.1) (up to eps).
  const double eps = 1e-8;
  const double s0 = 0.1 / (1 + eps), s1 = std::log(2.0) - 0.1 * 0.75 / (0.75 + eps);
  expect_near(seeds_for(*b, {1.0, 1.0}), {std::exp(-s0), std::exp(-s1)});
  // Second step by hand: g = (1 - e^{-s0}·1, 1 - e^{-s1}·1);
  //   m = 0.9·m1 + 0.1·g, v = 0.999·v1 + 0.001·g², with m1 = 0.1·g1, v1 = 0.001·g1²;
  //   s -= lr·(m/(1-0.9²)) / (sqrt(v/(1-0.999²)) + eps).
  const double g1[2] = {-1.0, 0.75}, g2[2] = {1 - std::exp(-s0), 1 - std::exp(-s1)};
  double s[2] = {s0, s1};
  for (int t = 0; t < 2; ++t) {
    const double m = 0.9 * 0.1 * g1[t] + 0.1 * g2[t];
    const double v = 0.999 * 0.001 * g1[t] * g1[t] + 0.001 * g2[t] * g2[t];
    s[t] -= 0.1 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + eps);
  }
  expect_near(seeds_for(*b, {1.0, 1.0}), {std::exp(-s[0]), std::exp(-s[1])});
}

TEST(Balancers, UncertaintyWeightsApproachOneOverTheLoss) {
  BalancerOptions o = named("uncertainty");
  o.lr = 0.01;
  auto b = bound(o, {1.0, 1.0});
  for (int step = 0; step < 3000; ++step) seeds_for(*b, {4.0, 0.25});
  // The fixed point of 1 - exp(-s)·L = 0 is exp(-s) = 1/L.
  expect_near(seeds_for(*b, {4.0, 0.25}), {0.25, 4.0}, 0.02);
}

// ---- GradNorm -------------------------------------------------------------------------------

TEST(Balancers, GradNormUpdatesTheWeightsTowardBalancedGradientNorms) {
  BalancerOptions o = named("gradnorm");
  o.lr = 0.1;
  o.alpha = 1.5;
  auto b = bound(o, {1.0, 1.0});
  // Step 1: L(0) = (2, 1) is recorded, so r = (1, 1). G = (‖(3, 0)‖, ‖(0, 1)‖) = (3, 1), Ḡ = 2,
  // targets Ḡ·r^α = (2, 2); ∂L_grad/∂w = sign(G - target)·G/w = (+3, -1). Adam's first step is
  // lr·g/(|g| + eps): w ≈ (0.9, 1.1), then renormalised to Σw = 2 (a change of ~1e-10).
  expect_near(seeds_for(*b, {2.0, 1.0}), {1.0, 1.0});
  expect_near(combine(*b, Step({{3, 0}, {0, 1}}, {2, 1}, {1, 1})),
              {3.0, 1.0});  // dz: the plain sum
  const double eps = 1e-8;
  double w1[2] = {1 - 0.1 * 3 / (3 + eps), 1 + 0.1 * 1 / (1 + eps)};
  const double sum1 = w1[0] + w1[1];
  w1[0] *= 2 / sum1, w1[1] *= 2 / sum1;
  expect_near(seeds_for(*b, {1.0, 1.0}), {w1[0], w1[1]});
  // Step 2: losses (1, 1): L̃ = (1/2, 1/1), r = L̃/mean(L̃) = (2/3, 4/3). Gradients seeded with
  // w1: g = (w1[0]·(1, 0), w1[1]·(0, 2)), G = (w1[0], 2·w1[1]), Ḡ = mean; targets Ḡ·r^1.5.
  const double G[2] = {w1[0], 2 * w1[1]}, mean = (G[0] + G[1]) / 2;
  const double r[2] = {2.0 / 3, 4.0 / 3};
  const double g1[2] = {3, -1};
  double w[2] = {w1[0], w1[1]};
  for (int t = 0; t < 2; ++t) {
    const double target = mean * std::pow(r[t], 1.5);
    const double grad = (G[t] > target ? 1.0 : -1.0) * G[t] / w1[t];
    const double m = 0.9 * 0.1 * g1[t] + 0.1 * grad;
    const double v = 0.999 * 0.001 * g1[t] * g1[t] + 0.001 * grad * grad;
    w[t] -= 0.1 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + eps);
  }
  const double scale = 2 / (w[0] + w[1]);  // renormalised to Σw = 2
  combine(*b, Step({{w1[0], 0}, {0, 2 * w1[1]}}, {1, 1}, {w1[0], w1[1]}));
  expect_near(seeds_for(*b, {1.0, 1.0}), {w[0] * scale, w[1] * scale});
}

TEST(Balancers, GradNormKeepsTheSumOfTheConfiguredWeights) {
  BalancerOptions o = named("gradnorm");
  o.lr = 0.05;
  auto b = bound(o, {1.0, 0.5, 0.25});
  for (int step = 0; step < 50; ++step) {
    const auto w = seeds_for(*b, {1.0 + step, 0.5, 0.1});
    combine(*b, Step({{w[0] * 1, 0}, {0, w[1] * 5}, {w[2], w[2]}}, {1.0 + step, 0.5, 0.1}, w));
  }
  const auto w = weights_of(*b);
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.75, 1e-12);
}

// ---- DWA ------------------------------------------------------------------------------------

TEST(Balancers, DwaWeighsBySoftmaxOfTheLossRatios) {
  auto b = bound(named("dwa"), {1.0, 1.0});
  // Epochs 1 and 2 keep the configured weights (no loss history yet).
  b->end_epoch({1, {1.0, 2.0}, {}});
  expect_near(seeds_for(*b, {1, 1}), {1.0, 1.0});
  // After epoch 2: r = L(2)/L(1) = (0.5/1, 1.8/2) = (0.5, 0.9); w = 2·softmax(r/2).
  b->end_epoch({2, {0.5, 1.8}, {}});
  const double e0 = std::exp(0.25), e1 = std::exp(0.45);
  expect_near(seeds_for(*b, {1, 1}), {2 * e0 / (e0 + e1), 2 * e1 / (e0 + e1)});
  // Configured weights act as a prior that keeps its sum: w = 1.5·c·exp(r/τ)/Σ c·exp(r/τ).
  BalancerOptions o = named("dwa");
  o.temperature = 1.0;
  auto c = bound(o, {1.0, 0.5});
  c->end_epoch({1, {1.0, 1.0}, {}});
  c->end_epoch({2, {1.0, 2.0}, {}});  // r = (1, 2)
  const double a = 1.0 * std::exp(1.0), d = 0.5 * std::exp(2.0);
  expect_near(weights_of(*c), {1.5 * a / (a + d), 1.5 * d / (a + d)});
}

// ---- dynamic --------------------------------------------------------------------------------

TEST(Balancers, DynamicRuleMovesWeightTowardTheTaskThatLags) {
  auto b = bound(named("dynamic"), {1.0, 0.5});
  seeds_for(*b, {2.0, 0.5});  // the first batch's losses: the reference
  // Validation losses (0.5, 0.0625): ρ = (0.5/2, 0.0625/0.5) = (0.25, 0.125). Task 0 kept more
  // of its initial loss: it gains 0.1, task 1 gives up 0.1.
  b->end_epoch({1, {9, 9}, {0.5, 0.0625}});
  expect_near(seeds_for(*b, {1, 1}), {1.1, 0.4});
  // Without validation losses the training losses decide: ρ = (0.125, 1) -> task 1 gains.
  b->end_epoch({2, {0.25, 0.5}, {}});
  expect_near(weights_of(*b), {1.0, 0.5});
  // Equal ρ = (0.25, 0.25) moves nothing.
  b->end_epoch({3, {0.5, 0.125}, {}});
  expect_near(weights_of(*b), {1.0, 0.5});
  // The weights stay within [0.1, 2].
  for (int e = 4; e < 40; ++e) b->end_epoch({e, {2.0, 0.01}, {}});
  expect_near(weights_of(*b), {2.0, 0.1});
}

TEST(Balancers, DynamicScheduleSetsTheWeightsPerEpoch) {
  BalancerOptions o = named("dynamic");
  o.schedule["t1"] = {1.0, 0.8, 0.5};
  auto b = bound(o, {1.0, 0.25});
  expect_near(seeds_for(*b, {1, 1}), {1.0, 1.0});  // epoch 1: entry 0; t0 keeps its weight
  const std::vector<double> expected = {0.8, 0.5, 0.5, 0.5};
  for (int e = 1; e <= 4; ++e) {
    b->end_epoch({e, {0.1, 5.0}, {}});  // losses do not matter with a schedule
    expect_near(weights_of(*b), {1.0, expected[size_t(e - 1)]});
  }
  BalancerOptions bad = named("dynamic");
  bad.schedule["nosuch"] = {1.0};
  const std::string message = error_message([&] { bound(bad, {1.0, 1.0}); });
  EXPECT_TRUE(contains(message, "'nosuch'"));
  EXPECT_TRUE(contains(message, "t0, t1"));
}

// ---- extreme losses -------------------------------------------------------------------------

TEST(Balancers, WeightsStayFiniteAndPositiveUnderExtremeLosses) {
  for (const auto& name : balancer_names()) {
    BalancerOptions o = named(name);
    o.lr = 0.5;  // large steps reach the bounds quickly
    auto b = bound(o, {1.0, 1.0}, 2);
    for (int step = 0; step < 400; ++step) {
      const std::vector<double> losses =
          step % 2 ? std::vector<double>{1e30, 1e-30} : std::vector<double>{1e-30, 1e300};
      const auto seeds = seeds_for(*b, losses, uint64_t(step));
      for (double s : seeds) ASSERT_TRUE(std::isfinite(s) && s >= 0) << name << " seed " << s;
      const double big = step % 3 ? 1e30 : 1e-30;
      combine(*b, Step({{seeds[0] * big, 0}, {0, seeds[1]}}, losses, seeds));
      if (step % 50 == 49) b->end_epoch({step / 50 + 1, losses, losses});
      for (double w : b->weights()) {
        ASSERT_TRUE(std::isfinite(w)) << name << " step " << step;
        if (name == "mgda" || name == "aligned-mtl")
          // MGDA: α on the simplex, a vertex is allowed. Aligned-MTL: the 1e-30 gradient's
          // component is below the rank tolerance and dropped, α_t = 0 (as in TorchJD).
          ASSERT_GE(w, 0.0) << name;
        else
          ASSERT_GT(w, 0.0) << name << " step " << step;
      }
    }
  }
}

// ---- state for checkpoints ------------------------------------------------------------------

TEST(Balancers, StateRoundTripContinuesIdentically) {
  for (const char* name : {"dynamic", "uncertainty", "gradnorm", "dwa"}) {
    BalancerOptions o = named(name);
    o.lr = 0.05;
    auto a = bound(o, {1.0, 0.5});
    const auto run = [](Balancer& b, int from, int to) {
      std::vector<double> trace;
      for (int step = from; step < to; ++step) {
        const std::vector<double> losses = {1.0 / (1 + step), 0.3 + 0.01 * step};
        const auto seeds = seeds_for(b, losses, uint64_t(step));
        combine(b, Step({{seeds[0], 0.5}, {-0.2, seeds[1]}}, losses, seeds));
        if (step % 5 == 4) b.end_epoch({step / 5 + 1, losses, {losses[1], losses[0]}});
        trace.insert(trace.end(), b.weights().begin(), b.weights().end());
      }
      return trace;
    };
    run(*a, 0, 12);
    const NamedTensors saved = a->state();
    for (const auto& [key, t] : saved)
      EXPECT_EQ(key.rfind(std::string("balancer.") + name + ".", 0), 0u) << key;
    auto b = bound(o, {1.0, 0.5});
    b->load_state(saved);
    EXPECT_EQ(run(*b, 12, 30), run(*a, 12, 30)) << name;
  }
}

TEST(Balancers, LoadStateRejectsForeignOrBrokenStateAndChangesNothing) {
  auto a = bound(named("uncertainty"), {1.0, 0.5});
  const auto before = seeds_for(*a, {1, 1});
  auto fresh = bound(named("uncertainty"), {1.0, 0.5});
  NamedTensors state = a->state();
  state.emplace_back("balancer.gradnorm.weights", Tensor::zeros({2}, DType::F64));
  EXPECT_TRUE(
      contains(error_message([&] { fresh->load_state(state); }), "balancer.gradnorm.weights"));
  state = a->state();
  state[0].second = Tensor::zeros({3}, DType::F64);
  EXPECT_TRUE(contains(error_message([&] { fresh->load_state(state); }), "log_variance"));
  EXPECT_EQ(seeds_for(*fresh, {1, 1}), (std::vector<double>{1.0, 0.5}));  // unchanged
  EXPECT_TRUE(contains(error_message([&] {
                         bound(named("static"), {1, 1})->load_state(a->state());
                       }),
                       "keeps no state"));
  EXPECT_EQ(before.size(), 2u);
}

// ---- the fan-out ----------------------------------------------------------------------------

// A fan-out over tasks a, b with z of 3 numbers and room for 2 rows.
FanOut small_fan_out() {
  return FanOut({"a", "b"}, {1.0, 0.5}, "z", Shape{3}, 2, DType::F64, Device::CPU);
}

void set_task_gradient(FanOut& f, size_t t, const std::vector<double>& rows) {
  const Tensor& g = f.task_gradient_buffer(t);
  std::copy(rows.begin(), rows.end(), g.data<double>());
}

TEST(Balancers, FanOutReportsANonFiniteLossNamingTheTask) {
  FanOut f = small_fan_out();
  const std::vector<double> losses = {1.0, NAN};
  const std::string message = error_message([&] { f.begin_backward(4, losses); });
  EXPECT_TRUE(contains(message, "task 'b'"));
  EXPECT_TRUE(contains(message, "nan"));
  EXPECT_TRUE(contains(message, "step 5"));
  const std::vector<double> infinite = {INFINITY, 1.0};
  EXPECT_TRUE(contains(error_message([&] { f.begin_backward(0, infinite); }), "task 'a'"));
}

TEST(Balancers, FanOutReportsANonFiniteGradientNamingTheTask) {
  FanOut f = small_fan_out();
  const std::vector<double> losses = {1.0, 1.0};
  f.begin_backward(0, losses);
  set_task_gradient(f, 0, {1, 2, 3, 4, 5, 6});
  set_task_gradient(f, 1, {1, INFINITY, 3, 4, 5, 6});
  Tensor dz = Tensor::zeros({2, 3}, DType::F64);
  const std::string message = error_message([&] { f.combine(2, dz); });
  EXPECT_TRUE(contains(message, "task 'b'"));
  EXPECT_TRUE(contains(message, "'z'"));
}

TEST(Balancers, FanOutRefusesToSwitchBalancersOnceTrainingStarted) {
  FanOut f = small_fan_out();
  f.set_balancer(make_balancer(named("uncertainty")));  // before the first step: fine
  EXPECT_EQ(f.balancer().name(), "uncertainty");
  EXPECT_EQ(f.weight(1), 0.5);  // it starts from the configured weights
  const std::vector<double> losses = {1.0, 1.0};
  f.begin_backward(0, losses);
  f.combine(2, Tensor::zeros({2, 3}, DType::F64));
  const std::string message = error_message([&] { f.set_balancer(make_balancer(named("mgda"))); });
  EXPECT_TRUE(contains(message, "cannot switch the balancer from 'uncertainty' to 'mgda'"));
  EXPECT_EQ(f.balancer().name(), "uncertainty");
}

TEST(Balancers, FanOutDiagnosticsAreEpochMeansOfNormsCosinesAndWeights) {
  FanOut f = small_fan_out();
  const std::vector<double> losses = {1.0, 1.0};
  Tensor dz = Tensor::zeros({2, 3}, DType::F64);
  // Step 1: a = (3, 0, 0 | 0, 4, 0) (norm 5), b = (0, 0, 0 | 0, -2, 0) (norm 2): cos = -8/10.
  f.begin_backward(0, losses);
  set_task_gradient(f, 0, {3, 0, 0, 0, 4, 0});
  set_task_gradient(f, 1, {0, 0, 0, 0, -2, 0});
  f.combine(2, dz);
  // Step 2, one row: a = (1, 0, 0) (norm 1), b = (1, 1, 0) (norm √2): cos = 1/√2.
  f.begin_backward(1, losses);
  set_task_gradient(f, 0, {1, 0, 0, 9, 9, 9});  // the second row is outside the batch
  set_task_gradient(f, 1, {1, 1, 0, 9, 9, 9});
  f.combine(1, dz.slice(0, 1));
  const BalanceDiagnostics d = f.take_diagnostics();
  EXPECT_EQ(d.steps, 2);
  expect_near(d.weights, {1.0, 0.5});
  expect_near(d.grad_norm, {(5 + 1) / 2.0, (2 + std::sqrt(2.0)) / 2});
  EXPECT_NEAR(d.cos(0, 1), (-0.8 + 1 / std::sqrt(2.0)) / 2, 1e-12);
  EXPECT_NEAR(d.cos(1, 0), d.cos(0, 1), 1e-15);
  EXPECT_NEAR(d.cos(0, 0), 1.0, 1e-15);
  EXPECT_EQ(d.conflict_rate(0, 1), 0.5);  // step 1 conflicted, step 2 did not
  EXPECT_EQ(d.conflict_rate(0, 0), 0.0);
  // A zero gradient (a task with weight 0) has no cosine; the next epoch starts afresh.
  f.set_weight("b", 0.0);
  f.begin_backward(2, losses);
  set_task_gradient(f, 1, {0, 0, 0, 0, 0, 0});
  f.combine(2, dz);
  const BalanceDiagnostics next = f.take_diagnostics();
  EXPECT_EQ(next.steps, 1);
  EXPECT_TRUE(std::isnan(next.cos(0, 1)));
  EXPECT_TRUE(std::isnan(next.conflict_rate(0, 1)));
  EXPECT_EQ(next.grad_norm[1], 0.0);
  EXPECT_EQ(next.weights[1], 0.0);
}

}  // namespace
}  // namespace polytask
