// FAMO (kernels/balance/famo.h, engine/balancers/famo.cpp) against cases worked out by hand (the
// arithmetic next to each expectation), against the authors' code over several steps, under
// extreme losses, and across a checkpoint's state round trip.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/balancer.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

BalancerOptions famo(double lr = 0, double decay = 1e-3) {
  BalancerOptions o;
  o.name = "famo";
  o.lr = lr;
  o.decay = decay;
  return o;
}

// One step's combine with gradients seeds[t]·e_t (FAMO reads neither them nor the Gram matrix).
std::vector<double> combine_unit(Balancer& b, const std::vector<double>& losses,
                                 const std::vector<double>& seeds) {
  std::vector<std::vector<double>> g(seeds.size(), std::vector<double>(seeds.size(), 0.0));
  for (size_t t = 0; t < seeds.size(); ++t) g[t][t] = seeds[t];
  return combine(b, Step(g, losses, seeds));
}

TEST(BalancersFamo, DescribesItsDefaults) {
  EXPECT_EQ(make_balancer(famo())->describe(), "famo (lr 0.025, decay 0.001)");
  EXPECT_EQ(make_balancer(famo(0.1, 0.01))->describe(), "famo (lr 0.1, decay 0.01)");
}

TEST(BalancersFamo, FirstStepWeighsEachLossByItsInverseWithEqualLogits) {
  auto b = bound(famo(), {1.0, 1.0, 1.0});
  // Before any step: z = softmax(0) = 1/3 each.
  expect_near({b->weights().begin(), b->weights().end()}, {1.0 / 3, 1.0 / 3, 1.0 / 3});
  // ξ = 0: z = 1/3, D = L + 1e-8 = (1 + 1e-8, 2 + 1e-8, 4 + 1e-8),
  // c = Σ z_j/D_j = (1/3)(1/D_0 + 1/D_1 + 1/D_2), seeds_t = z_t/(c·D_t) = (1/D_t)/Σ_j (1/D_j)
  //   ≈ (1, 1/2, 1/4)/(7/4) = (4/7, 2/7, 1/7): they sum to 1.
  const double d[3] = {1 + 1e-8, 2 + 1e-8, 4 + 1e-8};
  const double sum = 1 / d[0] + 1 / d[1] + 1 / d[2];
  const auto seeds = seeds_for(*b, {1.0, 2.0, 4.0});
  expect_near(seeds, {1 / d[0] / sum, 1 / d[1] / sum, 1 / d[2] / sum}, 1e-15);
  expect_near(seeds, {4.0 / 7, 2.0 / 7, 1.0 / 7}, 1e-8);
  // Coefficients 1: dz is the plain sum of the seeded gradients, and the weights are the seeds.
  expect_near(combine_unit(*b, {1.0, 2.0, 4.0}, seeds), seeds, 0);
  expect_near({b->weights().begin(), b->weights().end()}, seeds, 0);
}

TEST(BalancersFamo, ConfiguredWeightsAreIgnoredButZeroIsRefused) {
  auto ones = bound(famo(), {1.0, 1.0}), other = bound(famo(), {3.0, 0.25});
  for (int step = 0; step < 5; ++step) {
    const std::vector<double> losses = {1.0 / (1 + step), 0.5 + 0.1 * step};
    EXPECT_EQ(seeds_for(*ones, losses, uint64_t(step)), seeds_for(*other, losses, uint64_t(step)));
  }
  const std::string message = error_message([] { bound(famo(), {1.0, 0.0}); });
  EXPECT_TRUE(contains(message, "famo"));
  EXPECT_TRUE(contains(message, "task 't1'"));
}

TEST(BalancersFamo, AnUpdateLowersTheLogitOfTheTaskWhoseLogLossFellMore) {
  const double lr = 0.025, eps = 1e-8;
  auto b = bound(famo(lr), {1.0, 1.0});
  seeds_for(*b, {1.0, 3.0});  // step 1: no "before" losses yet, ξ stays 0
  // Step 2's losses are step 1's "after" losses:
  //   δ = log D(before) − log D(after) = (log(1/0.5), log(3/2.7)) ≈ (0.693, 0.105) (+1e-8 in D)
  //   ∂ξ = z ⊙ (δ − <z, δ>), z = (½, ½): (½·(δ0 − δ1)/2, −same) ≈ (+0.147, −0.147)
  //   Adam's first step, decay·ξ = 0: ξ_t = −lr·g_t/(|g_t| + eps) ≈ (−0.025, +0.025).
  const double delta0 = std::log(1 + eps) - std::log(0.5 + eps);
  const double delta1 = std::log(3 + eps) - std::log(2.7 + eps);
  const double g0 = 0.5 * (delta0 - 0.5 * (delta0 + delta1)), g1 = -g0;
  const double xi0 = -lr * g0 / (std::fabs(g0) + eps), xi1 = -lr * g1 / (std::fabs(g1) + eps);
  EXPECT_LT(xi0, 0);  // task 0 improved more: it loses weight
  EXPECT_GT(xi1, 0);
  // seeds = softmax(ξ − log D) with step 2's D = (0.5 + 1e-8, 2.7 + 1e-8).
  const double a = std::exp(xi0) / (0.5 + eps), c = std::exp(xi1) / (2.7 + eps);
  expect_near(seeds_for(*b, {0.5, 2.7}), {a / (a + c), c / (a + c)}, 1e-14);
  // Against equal logits (what the seeds would be without the update) task 0 lost weight.
  EXPECT_LT(a / (a + c), (1 / 0.5) / (1 / 0.5 + 1 / 2.7));
}

TEST(BalancersFamo, MatchesTheAuthorsCodeDrivenWithTheNextBatchLosses) {
  // The reference: the authors' FAMO class (Cranial-XIX/FAMO methods/weight_methods.py,
  // torch float64, Adam(lr 0.025, weight_decay 0.1)), driven with update(next step's losses)
  // before each get_weighted_loss; the seeds are autograd's ∂(weighted loss)/∂L_t.
  const std::vector<std::vector<double>> losses = {{2.0, 0.5, 1.0},  {1.5, 0.45, 1.1},
                                                   {1.2, 0.44, 0.9}, {0.9, 0.40, 0.95},
                                                   {0.8, 0.41, 0.7}, {0.6, 0.30, 0.72}};
  const std::vector<std::vector<double>> expected = {
      {0.1428571442857143, 0.57142856857142865, 0.28571428714285718},
      {0.17340383460450617, 0.57801284159966648, 0.24858332379582723},
      {0.18919454532300581, 0.53688330453803479, 0.27392215013895926},
      {0.22209387642407175, 0.54026707266441309, 0.23763905091151521},
      {0.2221649663436063, 0.48574230236141813, 0.29209273129497548},
      {0.23382209776407711, 0.53616837891649738, 0.23000952331942542}};
  auto b = bound(famo(0, 0.1), {1.0, 1.0, 1.0});
  for (size_t k = 0; k < losses.size(); ++k) {
    const auto seeds = seeds_for(*b, losses[k], k);
    expect_near(seeds, expected[k], 1e-13);
    combine_unit(*b, losses[k], seeds);
  }
  // The last logits, from the same run: (−0.10387013612257347, 0.03287039124948036,
  // 0.0620115714527498).
  const NamedTensors state = b->state();
  ASSERT_EQ(state[0].first, "balancer.famo.logits");
  expect_near(state[0].second.to_vector<double>(),
              {-0.10387013612257347, 0.03287039124948036, 0.0620115714527498}, 1e-13);
}

TEST(BalancersFamo, WeightDecayPullsTheLogitsBackWhenTheLossesStopMoving) {
  // Step 2 moves ξ ≈ (−0.01, +0.01); from then on the losses repeat: δ = 0, and the gradient is
  // decay·ξ alone (plus Adam's momentum from step 2). Without decay ξ drifts on with the
  // momentum; with it ξ is pulled back toward 0.
  const auto spread_after = [](double decay, int steps) {
    auto b = bound(famo(0.01, decay), {1.0, 1.0});
    seeds_for(*b, {1.0, 1.0});
    seeds_for(*b, {0.5, 1.0});
    for (int step = 0; step < steps; ++step) seeds_for(*b, {0.5, 1.0});
    const auto logits = b->state()[0].second.to_vector<double>();
    EXPECT_EQ(logits[0], -logits[1]);  // Jᵀδ sums to 0: with two tasks ξ stays antisymmetric
    return logits[1] - logits[0];
  };
  EXPECT_NEAR(spread_after(0.0, 0), 0.02, 1e-8);
  const double kept = spread_after(0.0, 300), decayed = spread_after(0.5, 300);
  EXPECT_GT(kept, 0.02);  // momentum alone: further apart
  EXPECT_LT(std::fabs(decayed), 0.5 * kept);
}

TEST(BalancersFamo, SeedsStayFinitePositiveAndSumToOneUnderExtremeLosses) {
  auto b = bound(famo(0.5, 0), {1.0, 1.0, 1.0});
  const std::vector<std::vector<double>> cycle = {
      {1e-30, 1e30, 1.0}, {1e30, 1e-30, 0.0}, {1e300, 0.0, 1e-30}, {0.0, 1e300, 1e30}};
  for (int step = 0; step < 400; ++step) {
    const auto& losses = cycle[size_t(step) % cycle.size()];
    const auto seeds = seeds_for(*b, losses, uint64_t(step));
    double sum = 0;
    for (double s : seeds) {
      ASSERT_TRUE(std::isfinite(s)) << "step " << step;
      ASSERT_GE(s, 1e-6) << "step " << step;  // clamp_weight's floor
      sum += s;
    }
    EXPECT_NEAR(sum, 1.0, 3e-6) << "step " << step;  // up to the floors of two tasks
    combine_unit(*b, losses, seeds);
  }
  for (const auto& [key, t] : b->state())
    for (double v : t.to_vector<double>()) ASSERT_TRUE(std::isfinite(v)) << key;
  // A loss of 1e-30 counts as D = 1e-8 (the authors' +1e-8): next to a loss of 1e30, the
  // equal-logit share of the other task is 1e-38 of it, below the floor.
  auto fresh = bound(famo(), {1.0, 1.0});
  expect_near(seeds_for(*fresh, {1e-30, 1e30}), {1.0, 1e-6}, 1e-15);
}

// Steps from..to of a run with slowly changing losses; the seeds of every step.
std::vector<double> run(Balancer& b, int from, int to) {
  std::vector<double> trace;
  for (int step = from; step < to; ++step) {
    const std::vector<double> losses = {1.0 / (1 + step), 0.3 + 0.01 * step,
                                        0.5 + 0.2 * std::sin(step)};
    const auto seeds = seeds_for(b, losses, uint64_t(step));
    combine_unit(b, losses, seeds);
    trace.insert(trace.end(), seeds.begin(), seeds.end());
  }
  return trace;
}

TEST(BalancersFamo, StateRoundTripContinuesIdentically) {
  auto a = bound(famo(0.05), {1.0, 1.0, 1.0});
  run(*a, 0, 7);
  const NamedTensors saved = a->state();
  std::vector<std::string> keys;
  for (const auto& [key, t] : saved) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "balancer.famo.logits", "balancer.famo.adam_m", "balancer.famo.adam_v",
                      "balancer.famo.adam_steps", "balancer.famo.previous_loss",
                      "balancer.famo.have_previous_loss", "balancer.famo.weights"}));
  auto b = bound(famo(0.05), {1.0, 1.0, 1.0});
  b->load_state(saved);
  EXPECT_EQ(std::vector<double>(b->weights().begin(), b->weights().end()),
            std::vector<double>(a->weights().begin(), a->weights().end()));
  EXPECT_EQ(run(*b, 7, 20), run(*a, 7, 20));
  // Without the state the continuation differs (the round trip carries something).
  auto c = bound(famo(0.05), {1.0, 1.0, 1.0});
  run(*a, 20, 21);
  EXPECT_NE(run(*c, 21, 25), run(*a, 21, 25));
}

TEST(BalancersFamo, LoadStateRejectsBrokenCounters) {
  auto a = bound(famo(), {1.0, 1.0, 1.0});
  run(*a, 0, 3);
  for (const char* field : {"adam_steps", "have_previous_loss"}) {
    NamedTensors state = a->state();
    for (auto& [key, t] : state)
      if (key == cat("balancer.famo.", field)) t = Tensor::from_vector<double>({1}, {0.5});
    auto fresh = bound(famo(), {1.0, 1.0, 1.0});
    EXPECT_TRUE(contains(error_message([&] { fresh->load_state(state); }), "famo")) << field;
  }
}

}  // namespace
}  // namespace polytask
