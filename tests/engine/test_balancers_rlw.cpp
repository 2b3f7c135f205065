// RLW (kernels/balance/rlw.h, engine/balancers/rlw.cpp): the weights' formula, their sum and
// sign, their determinism in (seed, step), the normal draws' distribution, and a resumed run.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "engine/balancer.h"
#include "kernels/balance.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

namespace kb = kernels::balance;
using namespace testing;

BalancerOptions rlw(uint64_t seed = 0) {
  BalancerOptions o;
  o.name = "rlw";
  o.seed = seed;
  return o;
}

TEST(BalancersRlw, SeedsAreTheSumOfTheConfiguredWeightsTimesASoftmaxOfNormals) {
  auto b = bound(rlw(11), {1.0, 1.0, 1.0}, 3);
  EXPECT_EQ(b->describe(), "rlw (seed 11)");
  EXPECT_FALSE(b->needs_step_losses());
  EXPECT_FALSE(b->needs_gram());
  for (uint64_t step : {0ull, 1ull, 1000ull, 1ull << 40}) {
    // seeds_t = K·exp(ε_t)/Σ_j exp(ε_j), K = 1 + 1 + 1 = 3 (LibMTL's softmax(randn(T)), times 3).
    double e[3], sum = 0;
    for (int t = 0; t < 3; ++t) sum += (e[t] = std::exp(kb::rlw_normal(11, step, t)));
    const auto seeds = seeds_for(*b, {1, 1, 1}, step);
    for (int t = 0; t < 3; ++t) {
      EXPECT_NEAR(seeds[size_t(t)], 3 * e[t] / sum, 1e-14) << "step " << step;
      EXPECT_GT(seeds[size_t(t)], 0);
    }
    EXPECT_NEAR(seeds[0] + seeds[1] + seeds[2], 3.0, 1e-14);
    // The logged weights are the seeds, even before a combine (a staged step runs none).
    EXPECT_EQ(weights_of(*b), seeds);
  }
  // Configured weights are a prior: seeds_t = K·c_t·exp(ε_t)/Σ_j c_j·exp(ε_j), K = 2.5.
  auto p = bound(rlw(11), {2.0, 0.5});
  const double a = 2.0 * std::exp(kb::rlw_normal(11, 5, 0));
  const double c = 0.5 * std::exp(kb::rlw_normal(11, 5, 1));
  const auto seeds = seeds_for(*p, {1, 1}, 5);
  EXPECT_NEAR(seeds[0], 2.5 * a / (a + c), 1e-14);
  EXPECT_NEAR(seeds[1], 2.5 * c / (a + c), 1e-14);
}

TEST(BalancersRlw, SeedsAreAFunctionOfSeedAndStepOnly) {
  auto a = bound(rlw(3), {1.0, 1.0}), b = bound(rlw(3), {1.0, 1.0}), other = bound(rlw(4), {1, 1});
  std::set<std::vector<double>> distinct;
  for (uint64_t step = 0; step < 50; ++step) {
    const auto first = seeds_for(*a, {1.0, 2.0}, step);
    // The losses do not matter, extreme or not; another balancer, or the same one asked again,
    // gives the same numbers bit for bit.
    EXPECT_EQ(seeds_for(*b, {1e-30, 1e300}, step), first);
    EXPECT_EQ(seeds_for(*a, {0.0, 1e30}, step), first);
    EXPECT_NE(seeds_for(*other, {1.0, 2.0}, step), first);  // another seed, another stream
    distinct.insert(first);
  }
  EXPECT_EQ(distinct.size(), 50u);  // a fresh draw every step
  // Asked out of order (a resumed run starts at its step): the same numbers.
  auto resumed = bound(rlw(3), {1.0, 1.0});
  EXPECT_EQ(seeds_for(*resumed, {1, 1}, 49), seeds_for(*a, {1, 1}, 49));
}

TEST(BalancersRlw, NormalDrawsHaveTheStandardNormalsMoments) {
  // 200000 draws over steps and tasks: mean 0 (standard error 0.0022), variance 1 (s.e. 0.0032),
  // P(|ε| < 1) = 0.6827, P(|ε| < 2) = 0.9545 (s.e. ~0.001), skewness 0, kurtosis 3, and no
  // correlation between two tasks' draws at the same step or one task's at consecutive steps.
  const int steps = 25000, tasks = 8;
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0, within1 = 0, within2 = 0, across = 0, along = 0;
  for (int step = 0; step < steps; ++step)
    for (int t = 0; t < tasks; ++t) {
      const double e = kb::rlw_normal(99, uint64_t(step), t);
      ASSERT_TRUE(std::isfinite(e));
      ASSERT_LT(std::fabs(e), 8.6);
      m1 += e, m2 += e * e, m3 += e * e * e, m4 += e * e * e * e;
      within1 += std::fabs(e) < 1, within2 += std::fabs(e) < 2;
      if (t > 0) across += e * kb::rlw_normal(99, uint64_t(step), t - 1);
      along += e * kb::rlw_normal(99, uint64_t(step) + 1, t);
    }
  const double n = double(steps) * tasks;
  EXPECT_NEAR(m1 / n, 0.0, 0.01);
  EXPECT_NEAR(m2 / n, 1.0, 0.015);
  EXPECT_NEAR(m3 / n, 0.0, 0.03);
  EXPECT_NEAR(m4 / n, 3.0, 0.06);
  EXPECT_NEAR(within1 / n, 0.6827, 0.005);
  EXPECT_NEAR(within2 / n, 0.9545, 0.003);
  EXPECT_NEAR(across / (double(steps) * (tasks - 1)), 0.0, 0.01);
  EXPECT_NEAR(along / n, 0.0, 0.01);
}

TEST(BalancersRlw, MeanWeightsOverManyStepsAreUniform) {
  // With equal configured weights each task's expected weight is K/T = 1 by symmetry; the
  // weights' spread is ~0.5 (T·softmax of three normals), so 20000 steps give s.e. ~0.004.
  auto b = bound(rlw(1), {1.0, 1.0, 1.0}, 3);
  double mean[3] = {};
  for (uint64_t step = 0; step < 20000; ++step) {
    const auto seeds = seeds_for(*b, {1, 1, 1}, step);
    for (size_t t = 0; t < 3; ++t) mean[t] += seeds[t] / 20000;
  }
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(mean[t], 1.0, 0.02) << t;
}

TEST(BalancersRlw, DzIsThePlainSumAndThereIsNoStateToKeep) {
  auto b = bound(rlw(), {1.0, 1.0});
  const auto seeds = seeds_for(*b, {1, 1}, 7);
  const std::vector<Tensor> grads = {Tensor::from_vector<double>({1, 2}, {seeds[0], 0.25}),
                                     Tensor::from_vector<double>({1, 2}, {-0.5, seeds[1]})};
  const std::vector<double> gram(4, 0.0), losses = {1, 1};
  TaskGradients g;
  g.grads = grads;
  g.gram = gram;  // not read
  g.losses = losses;
  g.seeds = seeds;
  g.step = 7;
  Tensor dz = Tensor::empty({1, 2}, DType::F64);
  dz.fill(NAN);
  b->combine(g, dz);
  EXPECT_EQ(dz.to_vector<double>(), (std::vector<double>{seeds[0] - 0.5, 0.25 + seeds[1]}));
  EXPECT_EQ(weights_of(*b), seeds);
  EXPECT_TRUE(b->state().empty());
  EXPECT_TRUE(contains(error_message([&] {
                         b->load_state({{"balancer.rlw.x", Tensor::zeros({2}, DType::F64)}});
                       }),
                       "keeps no state"));
}

TEST(BalancersRlw, NeedsPositiveConfiguredWeightsAndSetsItsOwn) {
  const std::string message = error_message([] { bound(rlw(), {1.0, 0.0}); });
  EXPECT_TRUE(contains(message, "rlw"));
  EXPECT_TRUE(contains(message, "task 't1'"));
  auto b = bound(rlw(), {1.0, 1.0});
  EXPECT_TRUE(
      contains(error_message([&] { b->set_weight(0, 2.0); }), "sets the loss weights itself"));
}

}  // namespace
}  // namespace polytask
