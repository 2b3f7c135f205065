// static-from-norms (kernels/balance/static_from_norms.h, engine/balancers/static_from_norms.cpp):
// epoch 1 bit-identical to static, the weights set at its end on cases worked out by hand,
// nothing changing afterwards, edge cases, and the state round trip.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/balancer.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

std::unique_ptr<Balancer> sfn(std::vector<double> weights) {
  return bound("static-from-norms", std::move(weights));
}

// One step: seeds from `b`, then combine with task gradients seeds[t]·raw[t] (F64 rows); dz.
std::vector<double> step(Balancer& b, const std::vector<std::vector<double>>& raw) {
  const auto seeds = seeds_for(b, std::vector<double>(raw.size(), 1.0));
  std::vector<std::vector<double>> g(raw.size());
  for (size_t t = 0; t < raw.size(); ++t)
    for (double v : raw[t]) g[t].push_back(seeds[t] * v);
  return combine(b, Step(g, seeds));
}

std::vector<double> state_of(const Balancer& b, const std::string& field) {
  for (const auto& [key, t] : b.state())
    if (key == "balancer.static-from-norms." + field) return t.to_vector<double>();
  ADD_FAILURE() << "no state " << field;
  return {};
}

TEST(BalancersStaticFromNorms, EpochOneIsStaticBitForBit) {
  const std::vector<double> weights = {1.0, 0.5, 0.25};
  auto a = bound("static-from-norms", weights, 64, DType::F32);
  auto s = bound("static", weights, 64, DType::F32);
  EXPECT_EQ(weights_of(*a), weights);
  for (uint64_t k = 0; k < 5; ++k) {
    std::vector<double> seeds_a(3, NAN), seeds_s(3, NAN);
    const std::vector<double> losses = {3.0 + double(k), 2.0, 1.0};
    a->loss_seeds(k, losses, seeds_a);
    s->loss_seeds(k, losses, seeds_s);
    EXPECT_EQ(seeds_a, weights);
    EXPECT_EQ(seeds_a, seeds_s);
    std::vector<Tensor> grads;
    for (uint64_t t = 0; t < 3; ++t) {
      grads.push_back(Tensor::empty({1, 64}, DType::F32));
      testing::fill_uniform(grads.back(), 40 + 3 * k + t, -1e3, 1e3);
    }
    std::vector<double> gram(9, 0.0);
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < 3; ++j)
        for (int64_t e = 0; e < 64; ++e)
          gram[i * 3 + j] += double(grads[i].data<float>()[e]) * grads[j].data<float>()[e];
    TaskGradients g;
    g.grads = grads;
    g.gram = gram;
    g.losses = losses;
    g.seeds = seeds_a;
    g.step = k;
    Tensor dz_a = Tensor::empty({1, 64}, DType::F32), dz_s = Tensor::empty({1, 64}, DType::F32);
    dz_a.fill(NAN);
    dz_s.fill(0);
    a->combine(g, dz_a);
    s->combine(g, dz_s);
    EXPECT_EQ(dz_a.to_vector<float>(), dz_s.to_vector<float>()) << "step " << k;
    EXPECT_EQ(weights_of(*a), weights_of(*s));
  }
  EXPECT_EQ(state_of(*a, "norm_steps"), (std::vector<double>{5.0}));  // measured meanwhile
}

TEST(BalancersStaticFromNorms, TheEndOfEpochOneEqualisesTheMeanWeightedNorms) {
  auto b = sfn({1.0, 0.5});
  // Raw gradients ∂L_t/∂z (the fan-out gets seeds·raw = (1, 0.5)·raw):
  //   step 1: (3, 4) and (0, 2): raw norms 5 and 2
  //   step 2: (9, 12) and (6, 0): raw norms 15 and 6
  // The norms are measured from the seeded Gram: sqrt(G_tt)/seed_t, e.g. sqrt(0.25·4)/0.5 = 2.
  // dz is the plain sum of the seeded gradients: (3, 4) + 0.5·(0, 2) = (3, 5).
  expect_near(step(*b, {{3, 4}, {0, 2}}), {3, 5});
  step(*b, {{9, 12}, {6, 0}});
  expect_near(state_of(*b, "norm_sums"), {20, 8});
  // Mean raw norms n̄ = (10, 4), K = 1 + 0.5 = 1.5, 1/n̄ = (0.1, 0.25), Σ = 0.35:
  //   w = 1.5·(0.1, 0.25)/0.35 = (3/7, 15/14) ≈ (0.4286, 1.0714); w·n̄ = (30/7, 30/7).
  b->end_epoch({1, {1, 1}, {}});
  expect_near(weights_of(*b), {3.0 / 7, 15.0 / 14});
  expect_near(seeds_for(*b, {1.0, 1.0}), {3.0 / 7, 15.0 / 14});
  EXPECT_EQ(state_of(*b, "weights_set"), (std::vector<double>{1.0}));
}

TEST(BalancersStaticFromNorms, LaterEpochsChangeNothing) {
  auto b = sfn({1.0, 1.0});
  step(*b, {{1, 0}, {0, 4}});
  b->end_epoch({1, {1, 1}, {}});
  // n̄ = (1, 4): w = 2·(1, 1/4)/(5/4) = (1.6, 0.4).
  const std::vector<double> fixed = {1.6, 0.4};
  expect_near(weights_of(*b), fixed);
  const auto sums = state_of(*b, "norm_sums");
  for (int epoch = 2; epoch < 5; ++epoch) {
    step(*b, {{100, 0}, {0, 1e-3}});  // very different norms: no longer measured
    b->end_epoch({epoch, {5, 0.1}, {0.1, 5}});
    expect_near(weights_of(*b), fixed, 0);
    expect_near(seeds_for(*b, {1.0, 1.0}), fixed, 0);
    EXPECT_EQ(state_of(*b, "norm_sums"), sums);
    EXPECT_EQ(state_of(*b, "norm_steps"), (std::vector<double>{1.0}));
  }
}

TEST(BalancersStaticFromNorms, ATaskWithoutGradientKeepsItsWeightAndTheOthersShareTheRest) {
  auto b = sfn({1.0, 1.0, 2.0});
  // Task 2's loss does not reach z: n̄ = (2, 4, 0). It keeps its 2; tasks 0, 1 share K − 2 = 2:
  //   w = 2·(1/2, 1/4)/(3/4) = (4/3, 2/3); the total stays 4.
  step(*b, {{2, 0}, {0, 4}, {0, 0}});
  b->end_epoch({1, {1, 1, 1}, {}});
  expect_near(weights_of(*b), {4.0 / 3, 2.0 / 3, 2.0});
  // No gradient anywhere: the configured weights stay.
  auto c = sfn({1.0, 0.5});
  step(*c, {{0, 0}, {0, 0}});
  c->end_epoch({1, {1, 1}, {}});
  EXPECT_EQ(weights_of(*c), (std::vector<double>{1.0, 0.5}));
  EXPECT_EQ(state_of(*c, "weights_set"), (std::vector<double>{1.0}));
}

TEST(BalancersStaticFromNorms, AnEpochWithoutStepsDefersTheChoice) {
  auto b = sfn({1.0, 1.0});
  b->end_epoch({1, {1, 1}, {}});  // nothing measured yet
  EXPECT_EQ(weights_of(*b), (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(state_of(*b, "weights_set"), (std::vector<double>{0.0}));
  step(*b, {{3, 0}, {0, 1}});
  b->end_epoch({2, {1, 1}, {}});
  expect_near(weights_of(*b), {0.5, 1.5});  // n̄ = (3, 1): 2·(1/3, 1)/(4/3)
}

TEST(BalancersStaticFromNorms, ExtremeNormsGiveFinitePositiveClampedWeights) {
  auto b = sfn({1.0, 1.0, 1.0});
  // Raw norms 1e-300, 1 and 1e300 (the seeded Gram holds their squares: 1e-600 underflows to 0
  // in the Gram, so task 0 counts as having no gradient and keeps its weight).
  step(*b, {{1e-300, 0}, {0, 1}, {1e150, 1e150}});
  b->end_epoch({1, {1, 1, 1}, {}});
  const auto w = weights_of(*b);
  for (double v : w) EXPECT_TRUE(std::isfinite(v) && v > 0);
  // n̄ = (0, 1, ~1.4e150): task 0 keeps 1; task 1 gets K' = 2 almost entirely; task 2's share,
  // 2·(1/1.4e150)/(1 + ...), is clamped up to 1e-6.
  expect_near(w, {1.0, 2.0, 1e-6}, 1e-12);
  auto c = sfn({1.0, 1.0});
  step(*c, {{1e-150, 0}, {0, 1e150}});  // G = (1e-300, 1e300): both measured
  c->end_epoch({1, {1, 1}, {}});
  // n̄ = (1e-150, 1e150): 2·(1, 1e-300)/(1 + 1e-300) = (2, 2e-300), the second clamped up.
  expect_near(weights_of(*c), {2.0, 1e-6}, 0);
}

TEST(BalancersStaticFromNorms, StateRoundTripContinuesIdentically) {
  const auto run = [](Balancer& b, int from, int to) {
    std::vector<double> trace;
    for (int k = from; k < to; ++k) {
      const auto dz = step(b, {{1.0 + k, 0.5}, {-0.2, 0.1 * k}});
      trace.insert(trace.end(), dz.begin(), dz.end());
      if (k % 4 == 3) b.end_epoch({k / 4 + 1, {1, 1}, {}});
      trace.insert(trace.end(), b.weights().begin(), b.weights().end());
    }
    return trace;
  };
  for (int split : {2, 6}) {  // inside epoch 1 (measuring) and after it (weights set)
    auto a = sfn({1.0, 0.5});
    run(*a, 0, split);
    const NamedTensors saved = a->state();
    std::vector<std::string> keys;
    for (const auto& [key, t] : saved) keys.push_back(key);
    EXPECT_EQ(keys, (std::vector<std::string>{"balancer.static-from-norms.weights",
                                              "balancer.static-from-norms.norm_sums",
                                              "balancer.static-from-norms.norm_steps",
                                              "balancer.static-from-norms.weights_set"}));
    auto b = sfn({1.0, 0.5});
    b->load_state(saved);
    EXPECT_EQ(weights_of(*b), weights_of(*a)) << split;  // the loaded weights are shown
    EXPECT_EQ(run(*b, split, 14), run(*a, split, 14)) << split;
  }
}

TEST(BalancersStaticFromNorms, RefusesZeroWeightsSetWeightAndBrokenState) {
  const std::string message = error_message([] { sfn({1.0, 0.0}); });
  EXPECT_TRUE(contains(message, "static-from-norms"));
  EXPECT_TRUE(contains(message, "task 't1'"));
  auto b = sfn({1.0, 1.0});
  EXPECT_FALSE(b->accepts_set_weight());
  EXPECT_TRUE(
      contains(error_message([&] { b->set_weight(0, 2.0); }), "sets the loss weights itself"));
  for (const auto& [field, bad] :
       std::vector<std::pair<std::string, std::vector<double>>>{{"weights", {1.0, 0.0}},
                                                                {"norm_sums", {-1.0, 1.0}},
                                                                {"norm_steps", {1.5}},
                                                                {"weights_set", {0.5}}}) {
    NamedTensors state = b->state();
    for (auto& [key, t] : state)
      if (key == "balancer.static-from-norms." + field)
        t = Tensor::from_vector<double>({int64_t(bad.size())}, bad);
    auto fresh = sfn({1.0, 1.0});
    EXPECT_TRUE(contains(error_message([&] { fresh->load_state(state); }), "static-from-norms"))
        << field;
    EXPECT_EQ(weights_of(*fresh), (std::vector<double>{1.0, 1.0})) << field;
  }
}

}  // namespace
}  // namespace polytask
