// UPGrad (kernels/balance/upgrad.h, engine/balancers/upgrad.cpp) against cases worked by hand,
// the arithmetic next to each expectation. TorchJD's defaults enter every case: the Gram matrix
// is divided by its trace and 1e-4·I is added, so a conflict leaves terms in ε = 1e-4.
// Agreement with TorchJD itself on random Jacobians is test_balancers_interop.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/balancer.h"
#include "engine/balancers/strategies.h"
#include "kernels/balance.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

namespace kb = kernels::balance;
using namespace testing;

constexpr double kEps = 1e-4;  // TorchJD's reg_eps (and norm_eps)

// The coefficients c of upgrad_combine for gradients g (rows), through kb::combine.
std::vector<double> coefficients(const std::vector<std::vector<double>>& g) {
  kb::Settings s;
  s.strategy = kb::Strategy::UpGrad;
  s.tasks = int32_t(g.size());
  kb::State st;
  const Step step(g, std::vector<double>(g.size(), 1.0));
  double c[kb::kMaxTasks], seeds[kb::kMaxTasks] = {};
  for (size_t t = 0; t < g.size(); ++t) seeds[t] = 1;
  kb::combine(s, st, step.gram.data(), step.losses.data(), seeds, 0, c);
  return {c, c + g.size()};
}

// Σ_t c_t·g_t.
std::vector<double> combination(const std::vector<std::vector<double>>& g,
                                const std::vector<double>& c) {
  std::vector<double> out(g[0].size(), 0.0);
  for (size_t t = 0; t < g.size(); ++t)
    for (size_t k = 0; k < out.size(); ++k) out[k] += c[t] * g[t][k];
  return out;
}

TEST(UpGrad, TwoOrthogonalGradientsAreAveraged) {
  // g1 = (2, 0), g2 = (0, 1): <g1, g2> = 0, no conflict. G' = diag(4, 1)/5 + εI; row 1's QP
  // min (w+e1)ᵀG'(w+e1), w >= 0 has gradient G'e1 = (0.8+ε, 0) >= 0 at w = 0: v¹ = e1, v² = e2,
  // c = (e1 + e2)/2 and dz = (1, 0.5), the mean.
  const std::vector<std::vector<double>> g = {{2, 0}, {0, 1}};
  expect_near(coefficients(g), {0.5, 0.5});
  expect_near(combination(g, coefficients(g)), {1.0, 0.5});
}

TEST(UpGrad, GradientsThatConflictWithNoneComeBackAsTheirMean) {
  // g1 = (1, 0), g2 = (1, 1): G = [[1, 1], [1, 2]] >= 0 entrywise, so G'e_i >= 0 and v^i = e_i.
  const std::vector<std::vector<double>> g = {{1, 0}, {1, 1}};
  expect_near(coefficients(g), {0.5, 0.5});
  // Five tasks with pairwise non-negative inner products: c = 1/5 each.
  const std::vector<std::vector<double>> five = {
      {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {0.5, 0.2, 3}};
  expect_near(coefficients(five), {0.2, 0.2, 0.2, 0.2, 0.2});
}

TEST(UpGrad, ConflictingPairProjectedOntoEachOthersHalfSpace) {
  // g1 = (1, 0), g2 = (-1, 1): G = [[1, -1], [-1, 2]], tr 3, G' = G/3 + εI.
  // Row 1 (u = e1): w1 = 0 and w2 solves G'22·w2 + G'21 = 0: w2 = (1/3)/(2/3 + ε); v¹ = (1, w2)
  // (without ε: g1 + g2/2 = (0.5, 0.5), orthogonal to g2).
  // Row 2 (u = e2): w1 = (1/3)/(1/3 + ε); v² = (w1, 1) (without ε: g1 + g2 = (0, 1) ⟂ g1).
  const double w2 = (1.0 / 3) / (2.0 / 3 + kEps), w1 = (1.0 / 3) / (1.0 / 3 + kEps);
  const std::vector<double> c = {(1 + w1) / 2, (w2 + 1) / 2};  // ≈ (1, 0.75)
  const std::vector<std::vector<double>> g = {{1, 0}, {-1, 1}};
  expect_near(coefficients(g), c);
  // dz ≈ (0.25, 0.75): <dz, g1> > 0 and <dz, g2> > 0, where the plain sum (0, 1) is ⟂ g1.
  expect_near(combination(g, coefficients(g)), {c[0] - c[1], c[1]});
}

TEST(UpGrad, TwoOppositeGradientsCancelUpToTheRegularisation) {
  // g1 = (1, 0), g2 = (-2, 0): G = [[1, -2], [-2, 4]], tr 5, G' = [[0.2+ε, -0.4], [-0.4, 0.8+ε]].
  // Row 1: v¹ = (1, 0.4/(0.8+ε)); row 2: v² = (0.4/(0.2+ε), 1). c = (v¹ + v²)/2 ≈ (1.5, 0.75),
  // dz = c1 − 2·c2 = −1/2 + 1/(1+5ε) − 0.5/(1+1.25ε) ≈ −4.4e-4 (exactly 0 without ε).
  const std::vector<double> c = {(1 + 0.4 / (0.2 + kEps)) / 2, (0.4 / (0.8 + kEps) + 1) / 2};
  const std::vector<std::vector<double>> g = {{1, 0}, {-2, 0}};
  expect_near(coefficients(g), c);
  const std::vector<double> dz = combination(g, coefficients(g));
  EXPECT_NEAR(dz[0], -0.5 + 1 / (1 + 5 * kEps) - 0.5 / (1 + 1.25 * kEps), 1e-14);
  EXPECT_NEAR(dz[0], -4.3726e-4, 1e-8);
}

TEST(UpGrad, ThreeTasksWorkedOnPaper) {
  // g1 = (1, 0, 0), g2 = (0, 1, 0), g3 = (-1, 0, 1): G = [[1, 0, -1], [0, 1, 0], [-1, 0, 2]],
  // tr 4, G' = G/4 + εI. g2 conflicts with nothing; g1 and g3 conflict (<g1, g3> = -1).
  //   row 2: G'e2 = (0, 0.25+ε, 0) >= 0, v² = e2;
  //   row 1: G'e1 = (0.25+ε, 0, -0.25): free w3 = 0.25/(0.5+ε); then the gradient at w1 is
  //          0.25+ε − 0.25·w3 > 0 and at w2 is 0: v¹ = (1, 0, 0.25/(0.5+ε)) ≈ (1, 0, 0.5);
  //   row 3: G'e3 = (-0.25, 0, 0.5+ε): w1 = 0.25/(0.25+ε), v³ = (0.25/(0.25+ε), 0, 1) ≈ (1, 0, 1).
  // c = (v¹ + v² + v³)/3 ≈ (2, 1, 1.5)/3; dz ≈ (0.5, 1, 1.5)/3, with <dz, g_t> ≈ 1/6, 1/3, 1/3.
  const double a = 0.25 / (0.5 + kEps), b = 0.25 / (0.25 + kEps);
  const std::vector<double> c = {(1 + b) / 3, 1.0 / 3, (a + 1) / 3};
  const std::vector<std::vector<double>> g = {{1, 0, 0}, {0, 1, 0}, {-1, 0, 1}};
  expect_near(coefficients(g), c);
  expect_near(combination(g, coefficients(g)), {c[0] - c[2], c[1], c[2]});
}

TEST(UpGrad, SingularGramMatricesGiveFiniteCoefficients) {
  // Duplicates: g1 = g2 = (1, 2), no conflict: the mean, dz = (1, 2).
  expect_near(coefficients({{1, 2}, {1, 2}}), {0.5, 0.5});
  // A zero gradient conflicts with nothing: c = (1/2, 1/2), dz = (0, 0)/2 + (3, 4)/2.
  expect_near(coefficients({{0, 0}, {3, 4}}), {0.5, 0.5});
  // Every gradient zero: tr G = 0 < 1e-4, G' = εI, v^i = e_i.
  expect_near(coefficients({{0, 0}, {0, 0}, {0, 0}}), {1.0 / 3, 1.0 / 3, 1.0 / 3});
  // Opposite equal gradients (1, 0), (-1, 0): G' = [[0.5+ε, -0.5], [-0.5, 0.5+ε]], v¹ =
  // (1, 0.5/(0.5+ε)), v² mirrored: c_t = (1 + 0.5/(0.5+ε))/2 each, and dz = 0.
  const double c = (1 + 0.5 / (0.5 + kEps)) / 2;
  expect_near(coefficients({{1, 0}, {-1, 0}}), {c, c});
  // Four tasks in a plane (rank 2) with a duplicate and an opposite pair: finite, and every
  // c_t >= 1/T (v^t_t >= 1, the rest >= 0).
  const std::vector<std::vector<double>> g = {{1, 0}, {1, 0}, {-1, 0.5}, {-1, 0}};
  const std::vector<double> c4 = coefficients(g);
  for (double x : c4) EXPECT_TRUE(std::isfinite(x) && x >= 0.25) << x;
}

TEST(UpGrad, BelowTorchJDsAbsoluteThresholdTheGradientsAreAveraged) {
  // TorchJD zeroes a Gram matrix whose trace is below norm_eps = 1e-4 before regularising:
  // g1 = (1e-3, 0), g2 = (-1e-3, 1e-3) (tr 3e-6) are averaged even though they conflict,
  // where the same gradients ×1000 are projected (ConflictingPairProjectedOnto...).
  expect_near(coefficients({{1e-3, 0}, {-1e-3, 1e-3}}), {0.5, 0.5});
  EXPECT_GT(coefficients({{1, 0}, {-1, 1}})[0], 0.99);
}

TEST(UpGrad, OneTaskKeepsItsGradient) {
  expect_near(coefficients({{3, 4}}), {1.0});  // min (1+w)²·(1+ε) over w >= 0: w = 0
  expect_near(coefficients({{0, 0}}), {1.0});
}

TEST(UpGrad, RandomGradientsNeverConflictWithTheResult) {
  // The defining property, beyond hand-worked cases: <dz, g_t> = (Gc)_t >= 0 for every task, up
  // to the regularisation (G'v >= 0 gives (Gc)_t >= −ε·tr(G)·c_t), and c_t >= 1/T.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 200; ++trial) {
    const size_t tasks = size_t(2 + trial % 7), dim = size_t(1 + trial % 5);
    std::vector<std::vector<double>> g(tasks, std::vector<double>(dim));
    for (auto& row : g)
      for (double& x : row) x = normal(rng);
    const std::vector<double> c = coefficients(g);
    const std::vector<double> dz = combination(g, c);
    double trace = 0;
    for (const auto& row : g)
      for (double x : row) trace += x * x;
    for (size_t t = 0; t < tasks; ++t) {
      ASSERT_GE(c[t], 1.0 / double(tasks) - 1e-12) << "trial " << trial;
      double inner = 0;
      for (size_t k = 0; k < dim; ++k) inner += dz[k] * g[t][k];
      EXPECT_GE(inner, -kEps * trace * c[t] - 1e-12) << "trial " << trial << " task " << t;
    }
  }
}

TEST(UpGrad, ActiveSetSolverFindsTheKktPointOfEveryFreeSet) {
  // min ½wᵀAw + bᵀw over w >= 0 has one solution for a positive definite A: the one free set F
  // whose equality solution (A_FF w_F = −b_F) is >= 0 with gradient >= 0 off F. Brute force
  // over all 2^8 free sets against nonnegative_qp, on random 8×8 problems.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  const int n = 8;
  for (int trial = 0; trial < 100; ++trial) {
    double m[n * n], a[n * n], b[n];
    for (double& x : m) x = normal(rng);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double sum = i == j ? 1e-3 : 0.0;
        for (int k = 0; k < n; ++k) sum += m[i * n + k] * m[j * n + k];
        a[i * n + j] = sum;
      }
    for (double& x : b) x = normal(rng);
    double w[n];
    ASSERT_TRUE(kb::nonnegative_qp(a, b, n, w)) << "trial " << trial;
    int found = 0;
    for (int mask = 0; mask < (1 << n); ++mask) {
      int free[n];
      for (int i = 0; i < n; ++i) free[i] = (mask >> i) & 1;
      double minus_b[n], z[n];
      for (int i = 0; i < n; ++i) minus_b[i] = -b[i];
      kb::solve_on_free_set(a, n, free, minus_b, z);
      bool kkt = true;
      for (int i = 0; i < n && kkt; ++i) {
        double gradient = b[i];
        for (int k = 0; k < n; ++k) gradient += a[i * n + k] * z[k];
        kkt = free[i] ? z[i] >= -1e-12 : gradient >= -1e-9;
      }
      if (!kkt) continue;
      ++found;
      for (int i = 0; i < n; ++i) EXPECT_NEAR(w[i], z[i], 1e-9) << "trial " << trial << " w" << i;
    }
    EXPECT_GE(found, 1) << "trial " << trial;
  }
}

TEST(UpGrad, BalancerSeedsWithTheConfiguredWeightsAndLogsSeedTimesCoefficient) {
  auto b = bound("upgrad", {1.0, 0.5});
  EXPECT_EQ(b->describe(), "upgrad");
  EXPECT_TRUE(b->state().empty());  // nothing learned, nothing checkpointed
  // Before a step: what equal gradients give, w_t·(1/T).
  expect_near({b->weights().begin(), b->weights().end()}, {0.5, 0.25});
  std::vector<double> seeds(2);
  b->loss_seeds(0, std::vector<double>{2.0, 3.0}, seeds);
  EXPECT_EQ(seeds, (std::vector<double>{1.0, 0.5}));
  // Seeded gradients g1 = 1·(1, 0), g2 = 0.5·(-2, 2) = (-1, 1): the conflicting pair above,
  // c ≈ (1, 0.75); dz = c1·g1 + c2·g2, weights = seeds·c.
  const double w2 = (1.0 / 3) / (2.0 / 3 + kEps), w1 = (1.0 / 3) / (1.0 / 3 + kEps);
  const double c1 = (1 + w1) / 2, c2 = (w2 + 1) / 2;
  expect_near(combine(*b, Step({{1, 0}, {-1, 1}}, seeds)), {c1 - c2, c2});
  expect_near({b->weights().begin(), b->weights().end()}, {1.0 * c1, 0.5 * c2});
  // Like static and PCGrad, it takes set_weight: the next step seeds with it.
  b->set_weight(1, 2.0);
  b->loss_seeds(1, std::vector<double>{2.0, 3.0}, seeds);
  EXPECT_EQ(seeds, (std::vector<double>{1.0, 2.0}));
}

TEST(UpGrad, RefusesMoreTasksThanTheKernelsTake) {
  const std::string message = error_message([] { bound("upgrad", std::vector<double>(9, 1.0)); });
  EXPECT_TRUE(contains(message, "at most 8")) << message;
}

}  // namespace
}  // namespace polytask
