// Aligned-MTL (kernels/balance/aligned_mtl.h, engine/balancers/aligned_mtl.cpp) against cases
// worked by hand, the arithmetic next to each expectation: G = V Λ Vᵀ, the eigenvalues above
// λ_max·T·ε kept, B = σ·V Λ^{-1/2} Vᵀ, α = B·(1/T, ..., 1/T) (TorchJD's AlignedMTL()).
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

enum Scale : int32_t { kMin = 0, kMedian = 1, kRmse = 2 };

BalancerOptions aligned_mtl(const std::string& scale) {
  BalancerOptions o = named("aligned-mtl");
  o.scale = scale;
  return o;
}

// α from aligned_mtl_combine for the Gram matrix (T×T, row-major), through kb::combine.
std::vector<double> alpha_of_gram(const std::vector<double>& gram, size_t tasks,
                                  Scale scale = kMin) {
  kb::Settings s;
  s.strategy = kb::Strategy::AlignedMtl;
  s.tasks = int32_t(tasks);
  s.mode = scale;
  kb::State st;
  double c[kb::kMaxTasks], seeds[kb::kMaxTasks] = {}, losses[kb::kMaxTasks] = {};
  for (size_t t = 0; t < tasks; ++t) seeds[t] = losses[t] = 1;
  kb::combine(s, st, gram.data(), losses, seeds, 0, c);
  return {c, c + tasks};
}

std::vector<double> alpha(const std::vector<std::vector<double>>& g, Scale scale = kMin) {
  return alpha_of_gram(gram_of(g), g.size(), scale);
}

TEST(AlignedMtl, OrthogonalGradientsOfEqualNormAreAveraged) {
  // G = I: λ = 1, 1, V = I, σ = 1, B = I, α = p = (1/2, 1/2).
  expect_near(alpha({{1, 0}, {0, 1}}), {0.5, 0.5});
  expect_near(alpha({{0, 3}, {3, 0}}), {0.5, 0.5});  // G = 9I: σ = 3, B = 3·I/3 = I
}

TEST(AlignedMtl, OrthogonalGradientsAreEqualisedToTheWeakest) {
  // g1 = (2, 0), g2 = (0, 1): G = diag(4, 1), V = I. min: σ² = 1, B = diag(1/2, 1),
  // α = B·(1/2, 1/2) = (1/4, 1/2), dz = (1/2, 1/2): both components now of strength 1/2.
  const std::vector<std::vector<double>> g = {{2, 0}, {0, 1}};
  expect_near(alpha(g, kMin), {0.25, 0.5});
  expect_near(alpha(g, kMedian), {0.25, 0.5});  // the lower median of (1, 4) is 1
  const double s = std::sqrt(2.5);              // rmse: σ² = (4 + 1)/2
  expect_near(alpha(g, kRmse), {0.25 * s, 0.5 * s});
}

TEST(AlignedMtl, ScaleModesPickTheSmallestTheLowerMedianOrTheMeanEigenvalue) {
  // Orthogonal gradients of norms 1, 2, 3: G = diag(1, 4, 9), B = σ·diag(1, 1/2, 1/3),
  // α = σ/3·(1, 1/2, 1/3) with σ² = 1 (min), 4 (median), 14/3 (rmse).
  const std::vector<std::vector<double>> g = {{1, 0, 0}, {0, 2, 0}, {0, 0, 3}};
  expect_near(alpha(g, kMin), {1.0 / 3, 1.0 / 6, 1.0 / 9});
  expect_near(alpha(g, kMedian), {2.0 / 3, 1.0 / 3, 2.0 / 9});
  const double s = std::sqrt(14.0 / 3);
  expect_near(alpha(g, kRmse), {s / 3, s / 6, s / 9});
  // Four: eigenvalues 1, 4, 9, 16; torch.median's lower median is 4 (not 6.5): σ = 2,
  // α = 2/4·(1, 1/2, 1/3, 1/4).
  const std::vector<double> g4 = {1, 0, 0, 0, 0, 4, 0, 0, 0, 0, 9, 0, 0, 0, 0, 16};
  expect_near(alpha_of_gram(g4, 4, kMedian), {0.5, 0.25, 0.5 / 3, 0.125});
}

TEST(AlignedMtl, ThreeTasksWorkedOnPaper) {
  // g1 = (1, 1, 0, 0), g2 = (0, 1, 1, 0), g3 = (0, 0, 0, 1): G = [[2, 1, 0], [1, 2, 0],
  // [0, 0, 1]], eigenpairs 3: (1, 1, 0)/√2, 1: (1, -1, 0)/√2, 1: (0, 0, 1). min: σ = 1,
  // B = v1v1ᵀ/√3 + v2v2ᵀ + v3v3ᵀ; with p = (1, 1, 1)/3: v1ᵀp = √2/3, v2ᵀp = 0, v3ᵀp = 1/3, so
  // α = (√2/3)/√3·(1, 1, 0)/√2 + (0, 0, 1/3) = (a, a, 1/3) with a = 1/(3√3).
  const double a = 1 / (3 * std::sqrt(3.0));
  const std::vector<std::vector<double>> g = {{1, 1, 0, 0}, {0, 1, 1, 0}, {0, 0, 0, 1}};
  expect_near(alpha(g), {a, a, 1.0 / 3});
  // The aligned components have equal strength: ‖dz‖² = αᵀGα = σ²·‖p‖² = 1/3
  // (dz = a·(1, 2, 1, 0) + (0, 0, 0, 1/3): 6a² + 1/9 = 2/9 + 1/9).
  const std::vector<double> al = alpha(g);
  const std::vector<double> gram = gram_of(g);
  double norm2 = 0;
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) norm2 += al[i] * gram[i * 3 + j] * al[j];
  EXPECT_NEAR(norm2, 1.0 / 3, 1e-12);
}

TEST(AlignedMtl, OppositeGradientsKeepOneComponent) {
  // g1 = (1, 0), g2 = (-1, 0): G = [[1, -1], [-1, 1]], λ = 2 with v = (1, -1)/√2, and 0
  // (dropped). B = √2·vvᵀ/√2 = vvᵀ; vᵀp = 0, so α = 0 and dz = 0.
  expect_near(alpha({{1, 0}, {-1, 0}}), {0.0, 0.0});
  // g1 = (1, 0), g2 = (-3, 0): G = [[1, -3], [-3, 9]], λ = 10 with v = (1, -3)/√10, and 0.
  // B = vvᵀ = [[1, -3], [-3, 9]]/10, α = B·(1/2, 1/2) = (-0.1, 0.3): a negative coefficient,
  // and dz = -0.1·(1, 0) + 0.3·(-3, 0) = (-1, 0), the stronger gradient's direction.
  expect_near(alpha({{1, 0}, {-3, 0}}), {-0.1, 0.3});
}

TEST(AlignedMtl, SingularGramMatricesGiveFiniteCoefficients) {
  // Duplicates g1 = g2 = (1, 2): G = 5·11ᵀ, λ = 10 with v = (1, 1)/√2, and 0: B = vvᵀ,
  // α = (1/2, 1/2), dz = (1, 2).
  expect_near(alpha({{1, 2}, {1, 2}}), {0.5, 0.5});
  // A zero gradient: G = diag(0, 25), only e2 kept: B = e2e2ᵀ, α = (0, 1/2), dz = (1.5, 2).
  expect_near(alpha({{0, 0}, {3, 4}}), {0.0, 0.5});
  // Every gradient zero: rank 0, B = I as in TorchJD: α = p (dz = 0 anyway).
  expect_near(alpha({{0, 0}, {0, 0}, {0, 0}}), {1.0 / 3, 1.0 / 3, 1.0 / 3});
  // Three gradients in a plane (rank 2): finite.
  for (double x : alpha({{1, 0}, {0, 2}, {1, 1}})) EXPECT_TRUE(std::isfinite(x)) << x;
}

TEST(AlignedMtl, OneTaskKeepsItsGradient) {
  expect_near(alpha({{3, 4}}), {1.0});  // λ = 25, B = 5/5, α = 1
  expect_near(alpha({{0, 0}}), {1.0});  // rank 0: B = I
}

TEST(AlignedMtl, RandomFullRankGradientsAreAlignedToTheSmallestComponent) {
  // With every component kept, BGB = σ²·I, so ‖dz‖² = αᵀGα = pᵀBGBp = σ²/T: with scale min,
  // λ_min/T, where λ_min is checked against the eigensolver's Rayleigh quotient bound.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 100; ++trial) {
    const size_t tasks = size_t(2 + trial % 7), dim = tasks + size_t(trial % 3);
    std::vector<std::vector<double>> g(tasks, std::vector<double>(dim));
    for (auto& row : g)
      for (double& x : row) x = normal(rng);
    const std::vector<double> gram = gram_of(g), al = alpha(g);
    double values[kb::kMaxTasks], vectors[kb::kMaxTasks * kb::kMaxTasks], a[64];
    std::copy(gram.begin(), gram.end(), a);
    kb::symmetric_eigen(a, int(tasks), values, vectors);
    double smallest = INFINITY, norm2 = 0;
    for (size_t k = 0; k < tasks; ++k) smallest = std::min(smallest, values[k]);
    for (size_t i = 0; i < tasks; ++i)
      for (size_t j = 0; j < tasks; ++j) norm2 += al[i] * gram[i * tasks + j] * al[j];
    EXPECT_NEAR(norm2, smallest / double(tasks), 1e-10 * smallest) << "trial " << trial;
  }
}

TEST(AlignedMtl, JacobiEigensolverReconstructsTheMatrix) {
  // V Λ Vᵀ = A and VᵀV = I to rounding, for random symmetric 8×8 matrices (indefinite, and
  // positive semi-definite of rank 3, whose five zero eigenvalues must come out at rounding
  // level: below TorchJD's rank tolerance λ_max·T·ε).
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  const int n = 8;
  for (int trial = 0; trial < 50; ++trial) {
    double a[n * n], m[n * 3];
    const bool psd = trial % 2;
    for (double& x : m) x = normal(rng);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j <= i; ++j) {
        double x = 0;
        if (psd)
          for (int k = 0; k < 3; ++k) x += m[i * 3 + k] * m[j * 3 + k];
        else
          x = normal(rng);
        a[i * n + j] = a[j * n + i] = x;
      }
    double copy[n * n], values[n], v[n * n], norm = 0, largest = 0;
    std::copy(a, a + n * n, copy);
    for (double x : a) norm += x * x;
    norm = std::sqrt(norm);
    kb::symmetric_eigen(copy, n, values, v);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double reconstructed = 0, dot = 0;
        for (int k = 0; k < n; ++k) {
          reconstructed += v[i * n + k] * values[k] * v[j * n + k];
          dot += v[k * n + i] * v[k * n + j];
        }
        EXPECT_NEAR(reconstructed, a[i * n + j], 1e-13 * norm) << "trial " << trial;
        EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-13) << "trial " << trial;
      }
    if (!psd) continue;
    for (double x : values) largest = std::max(largest, x);
    int kept = 0;
    for (double x : values) kept += x > largest * n * 2.220446049250313e-16;
    EXPECT_EQ(kept, 3) << "trial " << trial;
  }
}

TEST(AlignedMtl, BalancerSeedsWithTheConfiguredWeightsAndLogsSeedTimesCoefficient) {
  auto b = bound(aligned_mtl("min"), {1.0, 0.5});
  EXPECT_EQ(b->describe(), "aligned-mtl (scale min)");
  EXPECT_EQ(bound(aligned_mtl("rmse"), {1.0, 1.0})->describe(), "aligned-mtl (scale rmse)");
  EXPECT_TRUE(b->state().empty());  // nothing learned, nothing checkpointed
  // Before a step: what equal gradients give (B = 11ᵀ/T, α = p), w_t/T.
  expect_near({b->weights().begin(), b->weights().end()}, {0.5, 0.25});
  std::vector<double> seeds(2);
  b->loss_seeds(0, std::vector<double>{2.0, 3.0}, seeds);
  EXPECT_EQ(seeds, (std::vector<double>{1.0, 0.5}));
  // Seeded gradients g1 = 1·(2, 0), g2 = 0.5·(0, 2) = (0, 1): α = (1/4, 1/2) (the orthogonal
  // case above), dz = (1/2, 1/2), weights = seeds·α = (1/4, 1/4).
  expect_near(combine(*b, Step({{2, 0}, {0, 1}}, seeds)), {0.5, 0.5});
  expect_near({b->weights().begin(), b->weights().end()}, {0.25, 0.25});
  // The scale option reaches the kernel: rmse, σ² = 2.5.
  auto r = bound(aligned_mtl("rmse"), {1.0, 1.0});
  const double s = std::sqrt(2.5);
  expect_near(combine(*r, Step({{2, 0}, {0, 1}}, {1.0, 1.0})), {0.5 * s, 0.5 * s});
  b->set_weight(1, 2.0);  // like static and PCGrad: the next step seeds with it
  b->loss_seeds(1, std::vector<double>{2.0, 3.0}, seeds);
  EXPECT_EQ(seeds, (std::vector<double>{1.0, 2.0}));
}

}  // namespace
}  // namespace polytask
