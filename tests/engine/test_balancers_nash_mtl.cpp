// Nash-MTL (kernels/balance/nash_mtl.h) against cases worked out by hand, the bargaining
// solution's defining condition α_t·(Gα)_t = 1, its degenerate cases, the warm start carried
// across steps and checkpoints, and numbers from torchjd's port of the authors' code.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/balancer.h"
#include "kernels/balance.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

// The solver's regularisation ε: α̂ solves α̂_t·((C + εI)α̂)_t = 1 on the cosine matrix C.
const double kEpsilon = 1e-8;

// The coefficients of one step with gradients `g` (seeds 1) on a fresh balancer.
std::vector<double> coefficients(const std::vector<std::vector<double>>& g) {
  return first_step_coefficients(named("nash-mtl"), g);
}

// α_t·(Gα)_t for every t.
std::vector<double> bargaining(const Step& s, const std::vector<double>& alpha) {
  const size_t n = alpha.size();
  std::vector<double> out(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) out[i] += s.gram[i * n + j] * alpha[j];
    out[i] *= alpha[i];
  }
  return out;
}

TEST(BalancersNashMtl, OrthogonalGradientsGetOneOverTheirNorm) {
  auto b = bound(named("nash-mtl"), {1.0, 0.5});
  EXPECT_EQ(seeds_for(*b, {2.0, 3.0}), (std::vector<double>{1.0, 0.5}));  // configured weights
  // g1 = (1, 0), g2 = (0, 2): G = diag(1, 4), α_t·G_tt·α_t = 1, α = (1, 1/2) (up to ε:
  // α̂ = 1/sqrt(1 + ε) on C = I). dz = (1, 1): each task's part has unit length.
  const double a = 1 / std::sqrt(1 + kEpsilon);
  const Step s({{1, 0}, {0, 2}}, {2, 3}, {1.0, 0.5});
  expect_near(combine(*b, s), {a, a}, 1e-15);
  expect_near(weights_of(*b), {a, 0.5 * 0.5 * a}, 1e-15);  // seed·α
  // Three: norms 1, 2, 4 -> α = (1, 1/2, 1/4), dz = (1, 1, 1) and ‖dz‖² = αᵀGα = T.
  expect_near(coefficients({{1, 0, 0}, {0, 2, 0}, {0, 0, 4}}), {a, a / 2, a / 4}, 1e-15);
}

TEST(BalancersNashMtl, TwoGradientsAtAnAngleShareTheSymmetricSolution) {
  // Unit g1 = (1, 0), g2 = (0.6, 0.8), cosine 0.6: by symmetry α = (a, a) with
  // a·(a + 0.6a) = 1, a = 1/sqrt(1.6) (1/sqrt(1.6 + ε) with the regularisation).
  const double a = 1 / std::sqrt(1.6 + kEpsilon);
  const Step s({{1, 0}, {0.6, 0.8}});
  auto b = bound(named("nash-mtl"), {1.0, 1.0});
  expect_near(combine(*b, s), {1.6 * a, 0.8 * a}, 1e-15);
  expect_near(coefficients_of(*b, s), {a, a}, 1e-15);
  expect_near(bargaining(s, {a, a}), {1.0, 1.0}, 1e-8);
}

TEST(BalancersNashMtl, EachTasksScaleCancelsOut) {
  // g_t -> k_t·g_t gives α_t -> α_t/k_t: the same dz whatever the seeds or loss scales.
  auto g = kFourTasks;
  const auto before = coefficients(g);
  for (double& x : g[1]) x *= 10;
  for (double& x : g[3]) x *= 1e-6;
  const auto after = coefficients(g);
  const std::vector<double> k = {1, 10, 1, 1e-6};
  for (size_t t = 0; t < 4; ++t) EXPECT_NEAR(after[t] * k[t], before[t], 1e-12 * before[t]) << t;
}

TEST(BalancersNashMtl, SolvesTheBargainingConditionAndDzHasLengthSqrtT) {
  for (const auto& g : {kThreeTasks, kFourTasks}) {
    const Step s(g);
    const auto alpha = coefficients(g);
    for (double a : alpha) EXPECT_GT(a, 0.0);
    // α_t·(Gα)_t = 1 up to the regularisation (ε·α̂_t², α̂_t = α_t·‖g_t‖ of order 1).
    expect_near(bargaining(s, alpha), std::vector<double>(g.size(), 1.0), 1e-7);
    double dz2 = 0;  // ‖dz‖² = αᵀGα = Σ_t α_t·(Gα)_t = T
    for (double v : bargaining(s, alpha)) dz2 += v;
    EXPECT_NEAR(dz2, double(g.size()), 1e-7);
  }
}

TEST(BalancersNashMtl, DegenerateGradientsStayFinite) {
  const double a = 1 / std::sqrt(1 + kEpsilon);
  // One task: α = 1/‖g‖, dz = g/‖g‖.
  expect_near(coefficients({{3, 4}}), {a / 5});
  // A zero gradient has no Nash solution: it is left out with α = 0; the other is alone.
  expect_near(coefficients({{2, 0}, {0, 0}}), {a / 2, 0.0});
  expect_near(coefficients({{0, 0}, {0, 0}}), {0.0, 0.0});
  // Duplicates: α = (b, b) with b·2b·‖g‖² = 1 (b·(2 + ε)·b on C), dz = 2b·g, ‖dz‖ = √2.
  const double d = 1 / (5 * std::sqrt(2 + kEpsilon));
  expect_near(coefficients({{3, 4}, {3, 4}}), {d, d}, 1e-15);
  // Opposite gradients: no solution (α_t·(Gα)_t <= 0 for one of them). The regularised one is
  // α̂ = (s, s) with ε·s² = 1: s = 1e4, α = (1e4, 1e4/2), and dz = 1e4·(1, 0) + 5e3·(−2, 0) = 0.
  auto b = bound(named("nash-mtl"), {1.0, 1.0});
  const Step s({{1, 0}, {-2, 0}});
  expect_near(combine(*b, s), {0.0, 0.0}, 1e-9);
  const auto c = coefficients_of(*b, s);
  EXPECT_NEAR(c[0], 1e4, 1e-6 * 1e4);
  EXPECT_NEAR(c[1], 5e3, 1e-6 * 5e3);
  // Norms 1e30 apart: α = 1/‖g_t‖ all the same; a gradient too short for an f32 coefficient
  // (1/1e-40) is capped at 1e30.
  const auto far = coefficients({{1e15, 0}, {0, 1e-15}});
  EXPECT_NEAR(far[0], a * 1e-15, 1e-15 * a * 1e-15);
  EXPECT_NEAR(far[1], a * 1e15, 1e-15 * a * 1e15);
  expect_near(coefficients({{1, 0}, {0, 1e-40}}), {a, 1e30}, 1e-15);
}

TEST(BalancersNashMtl, TheWarmStartOnlySpeedsTheSolveUp) {
  auto b = bound(named("nash-mtl"), {1.0, 1.0, 1.0, 1.0}, 5);
  const Step s(kFourTasks);
  combine(*b, s);
  const auto cold = coefficients_of(*b, s);
  // Again from its own solution, and after a step whose solution is far away (opposite
  // gradients: α̂ = 1e4): the same answer.
  combine(*b, s);
  expect_near(coefficients_of(*b, s), cold, 1e-13);
  combine(*b, Step({{1, 0, 0, 0, 0}, {-1, 0, 0, 0, 0}, {0, 1, 0, 0, 0}, {0, -1, 0, 0, 0}}));
  combine(*b, s);
  for (size_t t = 0; t < 4; ++t) EXPECT_NEAR(coefficients_of(*b, s)[t], cold[t], 1e-12) << t;
}

TEST(BalancersNashMtl, TheSolverReachesTheSolutionFromStartsFarOnEitherSide) {
  // The cosine matrix of the four tasks; from α̂ = 1e4 the quadratic part of f dominates (the
  // damped step alone would shrink α̂ by 1/(1 + λ) ≈ 1e-4 per step), from 1e-5 the logarithm.
  const Step s(kFourTasks);
  double cosines[16];
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 4; ++j)
      cosines[i * 4 + j] = s.gram[i * 4 + j] / std::sqrt(s.gram[i * 5] * s.gram[j * 5]);
  double reference[4] = {1, 1, 1, 1};
  kernels::balance::nash_solve(cosines, 4, kEpsilon, reference);
  for (const std::vector<double>& start :
       {std::vector<double>{1e4, 1e4, 1e4, 1e4}, {1e-5, 1e-5, 1e-5, 1e-5}, {1e4, 1e-5, 1, 300}}) {
    double alpha[4] = {start[0], start[1], start[2], start[3]};
    kernels::balance::nash_solve(cosines, 4, kEpsilon, alpha);
    for (size_t t = 0; t < 4; ++t) EXPECT_NEAR(alpha[t], reference[t], 1e-13) << start[0];
  }
}

TEST(BalancersNashMtl, StateRoundTripContinuesIdenticallyAndIsChecked) {
  const auto run = [](Balancer& b, int from, int to) {
    std::vector<double> trace;
    for (int step = from; step < to; ++step) {
      const double x = 0.1 * step;
      const std::vector<double> losses = {1.0, 2.0, 0.5};
      const auto seeds = seeds_for(b, losses, uint64_t(step));
      combine(b, Step({{1, x, 0}, {-x, 1, 0.2}, {0.3, -0.5, 1 + x}}, losses, seeds));
      trace.insert(trace.end(), b.weights().begin(), b.weights().end());
    }
    return trace;
  };
  auto a = bound(named("nash-mtl"), {1.0, 0.5, 2.0}, 3);
  run(*a, 0, 6);
  const NamedTensors saved = a->state();
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved[0].first, "balancer.nash-mtl.warm_alpha");
  EXPECT_EQ(saved[1].first, "balancer.nash-mtl.weights");
  auto b = bound(named("nash-mtl"), {1.0, 0.5, 2.0}, 3);
  b->load_state(saved);
  EXPECT_EQ(weights_of(*b), weights_of(*a));
  EXPECT_EQ(run(*b, 6, 15), run(*a, 6, 15));

  NamedTensors broken = saved;
  broken[0].second = Tensor::from_vector<double>({3}, {1.0, -1.0, 1.0});
  EXPECT_TRUE(contains(error_message([&] { b->load_state(broken); }), "warm_alpha"));
}

// Reference numbers: torchjd 0.18.0's NashMTL weighting (the authors' code, ported), with
// max_norm = 0 (no clipping) and enough iterations to converge, printed by
// /work/main/.peers-venv/bin/python:
// clang-format off
//   import torch
//   from torchjd.aggregation._nash_mtl import _NashMTLWeighting
//   torch.set_default_dtype(torch.float64)
//   for J in ([[1.0, 0.3, -0.2], [-0.4, 2.0, 0.5], [0.2, -0.7, 0.6]],
//             [[0.9, -0.1, 0.4, 0.0, 0.3], [-0.2, 1.1, 0.0, 0.5, -0.3],
//              [0.3, 0.2, -0.8, 0.1, 0.6], [-0.6, -0.4, 0.2, 0.7, 0.1]]):
//       w = _NashMTLWeighting(n_tasks=len(J), max_norm=0.0, update_weights_every=1,
//                             optim_niter=1000)
//       print([repr(float(x)) for x in w(torch.tensor(J))])
// clang-format on
// ECOS solves each convex approximation to about 1e-8, the regularisation moves ours by
// about 5e-9.
TEST(BalancersNashMtl, MatchesTheAuthorsCodeThroughTorchjd) {
  const std::vector<double> three = {1.0122184844203381, 0.7538459848361888, 1.7789421419648754};
  const std::vector<double> four = {1.4241785953666, 0.9694076314821632, 1.0462511753534198,
                                    1.4574992376051057};
  const auto c3 = coefficients(kThreeTasks), c4 = coefficients(kFourTasks);
  for (size_t t = 0; t < 3; ++t) EXPECT_NEAR(c3[t], three[t], 3e-8 * three[t]) << t;
  for (size_t t = 0; t < 4; ++t) EXPECT_NEAR(c4[t], four[t], 3e-8 * four[t]) << t;
}

}  // namespace
}  // namespace polytask
