// CAGrad (kernels/balance/cagrad.h) against cases worked out by hand, its degenerate cases,
// the optimality conditions of the problem it solves, and numbers from LibMTL's and torchjd's
// implementations.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/balancer.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

BalancerOptions cagrad(double c) {
  BalancerOptions o = named("cagrad");
  o.c = c;
  return o;
}

// The coefficients of one step with gradients `g` (seeds 1).
std::vector<double> coefficients(double c, const std::vector<std::vector<double>>& g) {
  return first_step_coefficients(cagrad(c), g);
}


TEST(BalancersCagrad, SeedsAreTheConfiguredWeightsAndCZeroIsTheMean) {
  auto b = bound(cagrad(0.0), {1.0, 0.5});
  EXPECT_EQ(b->describe(), "cagrad (c 0)");
  EXPECT_EQ(seeds_for(*b, {3.0, 2.0}), (std::vector<double>{1.0, 0.5}));
  // c = 0: the ball is the mean alone, c_t = 1/T: dz = ((1, 0) + (0, 1))/2.
  const Step s({{1, 0}, {0, 1}}, {3, 2}, {1.0, 0.5});
  expect_near(combine(*b, s), {0.5, 0.5});
  expect_near(weights_of(*b), {0.5, 0.25});  // seed·c_t
}

TEST(BalancersCagrad, TwoOrthogonalUnitGradientsMoveAlongTheMeanScaledUp) {
  // g1 = (1, 0), g2 = (0, 1): g0 = (1/2, 1/2), ‖g0‖ = 1/√2. The dual's objective is
  // w·(G·1/2) + c‖g0‖·‖g_w‖ = 1/2 + c‖g0‖·sqrt(w1² + w2²), least at w = (1/2, 1/2): g_w = g0,
  // λ = c‖g0‖/‖g_w‖ = c, c_t = (1/2 + c/2)/(1 + c²) = 0.7/1.16 for c = 0.4.
  const double ct = 0.7 / 1.16;
  auto b = bound(cagrad(0.4), {1.0, 1.0});
  expect_near(combine(*b, Step({{1, 0}, {0, 1}})), {ct, ct});
  expect_near(weights_of(*b), {ct, ct});
}

TEST(BalancersCagrad, OpposedGradientsOfUnequalLengthPickTheShorterOne) {
  // g1 = (2, 0), g2 = (−1, 0): g0 = (1/2, 0), c‖g0‖ = 0.2. On the hull g_w = (2 − 3x, 0) the
  // objective is (2 − 3x)/2 + 0.2·|2 − 3x|, least at x = 1 (−0.5 + 0.2 = −0.3): w = (0, 1),
  // g_w = (−1, 0), λ = 0.2/1 = 0.2. c = (1/2, 1/2 + 0.2)/1.16 and
  // dz = (g0 + λ·g_w)/1.16 = (0.5 − 0.2, 0)/1.16.
  auto b = bound(cagrad(0.4), {1.0, 1.0});
  const Step s({{2, 0}, {-1, 0}});
  expect_near(combine(*b, s), {0.3 / 1.16, 0.0});
  expect_near(coefficients_of(*b, s), {0.5 / 1.16, 0.7 / 1.16});
}

TEST(BalancersCagrad, OneTaskIsItsGradientTimesOnePlusCOverOnePlusCSquared) {
  // T = 1: w = 1, g_w = g0 = g, λ = c: c_1 = (1 + c)/(1 + c²), as LibMTL computes it.
  auto b = bound(cagrad(0.4), {2.0});
  const Step s({{3, 4}}, {1}, {2.0});
  expect_near(combine(*b, s), {3 * 1.4 / 1.16, 4 * 1.4 / 1.16});
  expect_near(weights_of(*b), {2 * 1.4 / 1.16});
}

TEST(BalancersCagrad, DegenerateGradientsGiveTheRescaledMeanOrStayFinite) {
  const double mean = 0.5 / 1.16;
  // A zero gradient puts 0 in the hull: w = (0, 1), g_w = 0, λ = 0 (LibMTL's λ·g_w is 0 too).
  expect_near(coefficients(0.4, {{1, 2}, {0, 0}}), {mean, mean});
  // Both zero: the same, and dz = 0.
  expect_near(coefficients(0.4, {{0, 0}, {0, 0}}), {mean, mean});
  // Opposite gradients of equal length: g0 = 0, so the ball is a point, λ = 0.
  expect_near(coefficients(0.4, {{1, 1}, {-1, -1}}), {mean, mean});
  // 0 inside the hull of three (w = (1/2, 1/2, 0)) and every hull point at most 90° from g0:
  // the minimum is g_w = 0, λ = 0, c_t = 1/(3·1.16). A search over the hull's vertices and
  // edges alone would miss it (the regularised quadratic term is what finds it).
  const double third = 1 / (3 * 1.16);
  expect_near(coefficients(0.4, {{1, 0}, {-1, 0}, {0, 1}}), {third, third, third});
  // Duplicates: any split of w between them gives the same g_w = g, λ = c, so only
  // c1 + c2 = (1 + c)/(1 + c²) is fixed: dz = 1.4/1.16·g.
  auto b = bound(cagrad(0.4), {1.0, 1.0});
  const auto dz = combine(*b, Step({{1, 1}, {1, 1}}));
  expect_near(dz, {1.4 / 1.16, 1.4 / 1.16}, 1e-9);
  EXPECT_TRUE(all_finite(weights_of(*b)));
}

TEST(BalancersCagrad, CoefficientsDoNotDependOnTheGradientsCommonScale) {
  // LibMTL's absolute 1e-8s make its answer change for gradients this small; CAGrad's does not.
  std::vector<std::vector<double>> small = kThreeTasks;
  for (auto& row : small)
    for (double& x : row) x *= 1e-7;
  const auto a = coefficients(0.4, kThreeTasks), b = coefficients(0.4, small);
  for (size_t t = 0; t < 3; ++t) EXPECT_NEAR(b[t], a[t], 1e-12 * std::fabs(a[t])) << t;
}

TEST(BalancersCagrad, DzSolvesTheConflictAverseProblem) {
  // d = (1 + c²)·dz maximises min_t <g_t, d> over the ball ‖d − g0‖ <= c‖g0‖. Its optimality
  // conditions: d is on the sphere (λ > 0), and with λ·w_t = (1 + c²)c_t − 1/T (w the dual's
  // solution), <g_t, d> is least, and equal, on the tasks with w_t > 0.
  for (double c : {0.2, 0.4, 0.5, 0.9}) {
    const auto& g = kFourTasks;
    const auto co = coefficients(c, g);
    std::vector<double> d(5, 0.0), g0(5, 0.0);
    for (size_t t = 0; t < 4; ++t)
      for (size_t k = 0; k < 5; ++k) {
        d[k] += (1 + c * c) * co[t] * g[t][k];
        g0[k] += g[t][k] / 4;
      }
    double radius2 = 0, g0_norm2 = 0;
    for (size_t k = 0; k < 5; ++k) {
      radius2 += (d[k] - g0[k]) * (d[k] - g0[k]);
      g0_norm2 += g0[k] * g0[k];
    }
    EXPECT_NEAR(std::sqrt(radius2), c * std::sqrt(g0_norm2), 1e-12) << c;
    std::vector<double> dot(4, 0.0);
    double least = INFINITY, w_sum = 0;
    for (size_t t = 0; t < 4; ++t) {
      for (size_t k = 0; k < 5; ++k) dot[t] += g[t][k] * d[k];
      least = std::min(least, dot[t]);
    }
    int support = 0;
    for (size_t t = 0; t < 4; ++t) {
      const double w = (1 + c * c) * co[t] - 0.25;  // λ·w_t >= 0
      EXPECT_GE(w, -1e-12) << c << " task " << t;
      w_sum += w;
      if (w > 1e-9) {
        ++support;
        EXPECT_NEAR(dot[t], least, 1e-9) << c << " task " << t;
      }
    }
    EXPECT_GT(support, 0) << c;
    EXPECT_GT(w_sum, 0) << c;
  }
}

// Reference numbers: LibMTL 1.1.5 (weighting/CAGrad.py, run as it is: it hard-codes 3 tasks)
// and torchjd 0.18.0 (CAGradWeighting, which leaves out the 1/(1 + c²)), printed by
// /work/main/.peers-venv/bin/python with LibMTL's wheel unpacked in x/:
// clang-format off
//   import sys, types, importlib.util, torch
//   from torchjd.aggregation._cagrad import CAGradWeighting
//   def libmtl(name):  # one weighting file, without the package's torchvision import
//       for pkg in ("LibMTL", "LibMTL.weighting"):
//           sys.modules.setdefault(pkg, types.ModuleType(pkg))
//       for mod in ("abstract_weighting", name):
//           spec = importlib.util.spec_from_file_location(
//               f"LibMTL.weighting.{mod}", f"x/LibMTL/weighting/{mod}.py")
//           sys.modules[spec.name] = importlib.util.module_from_spec(spec)
//           spec.loader.exec_module(sys.modules[spec.name])
//       return sys.modules[f"LibMTL.weighting.{name}"]
//   torch.set_default_dtype(torch.float64)
//   J = torch.tensor([[1.0, 0.3, -0.2], [-0.4, 2.0, 0.5], [0.2, -0.7, 0.6]])
//   for c in (0.4, 0.5):
//       m = libmtl("CAGrad").CAGrad()
//       m.task_num, m.device, m.rep_grad = 3, "cpu", False
//       m._compute_grad_dim = lambda: None
//       m._compute_grad = lambda losses, mode: J
//       m._reset_grad = lambda g: setattr(m, "out", g)
//       m.backward(None, calpha=c, rescale=1)
//       coef = torch.linalg.solve(J.T, m.out)  # m.out = dz = Jᵀ·coef
//       print(c, "libmtl", [repr(float(x)) for x in coef])
//       tj = CAGradWeighting(c)(J @ J.T) / (1 + c * c)
//       print(c, "torchjd/(1+c^2)", [repr(float(x)) for x in tj])
// clang-format on
// They differ from ours by LibMTL's 1e-8s (about 1e-8) and torchjd's solver tolerance.
TEST(BalancersCagrad, ThreeTasksMatchLibMtlAndTorchjd) {
  const std::vector<double> libmtl_04 = {0.2873563218390805, 0.2873563218390804,
                                         0.5313384116497907},
                            torchjd_04 = {0.2873563220242824, 0.28735632193757954,
                                          0.5313384025177759},
                            libmtl_05 = {0.2666666666666667, 0.2666666666666666,
                                         0.5496858887270949},
                            torchjd_05 = {0.26666666828206315, 0.2666666692348649,
                                          0.5496858837120673};
  const auto c04 = coefficients(0.4, kThreeTasks), c05 = coefficients(0.5, kThreeTasks);
  expect_near(c04, libmtl_04, 2e-8);
  expect_near(c04, torchjd_04, 2e-8);
  expect_near(c05, libmtl_05, 2e-8);
  expect_near(c05, torchjd_05, 2e-8);
  // Here w is a vertex, (0, 0, 1): c1 = c2 = (1/3)/(1 + c²).
  EXPECT_NEAR(c04[0], 1 / (3 * 1.16), 1e-15);
  EXPECT_NEAR(c05[1], 1 / (3 * 1.25), 1e-15);
}

// Four tasks, past LibMTL's hard-coded three: its CAGrad.backward generalised to T (the same
// objective and epsilons) and solved tightly, and torchjd, printed by
// clang-format off
//   import numpy as np, torch
//   from scipy.optimize import minimize
//   from torchjd.aggregation._cagrad import CAGradWeighting
//   torch.set_default_dtype(torch.float64)
//   J = np.array([[0.9, -0.1, 0.4, 0.0, 0.3], [-0.2, 1.1, 0.0, 0.5, -0.3],
//                 [0.3, 0.2, -0.8, 0.1, 0.6], [-0.6, -0.4, 0.2, 0.7, 0.1]])
//   A = J @ J.T; T = len(J); b = np.ones(T) / T
//   for c in (0.4, 0.5):
//       k = c * np.sqrt(A.mean() + 1e-8) + 1e-8
//       f = lambda x: x @ A @ b + k * np.sqrt(x @ A @ x + 1e-8)
//       w = minimize(f, b, bounds=[(0, 1)] * T,
//                    constraints={"type": "eq", "fun": lambda x: 1 - x.sum()},
//                    options={"ftol": 1e-15, "maxiter": 1000}).x
//       lm = (b + k / (np.linalg.norm(J.T @ w) + 1e-8) * w) / (1 + c * c)
//       print(c, "libmtl", [repr(float(x)) for x in lm])
//       tj = CAGradWeighting(c)(torch.tensor(A)) / (1 + c * c)
//       print(c, "torchjd", [repr(float(x)) for x in tj])
// clang-format on
// torchjd's CLARABEL solve is off by up to 1.3e-5 here (the tight solve agrees with ours to
// 1e-8).
TEST(BalancersCagrad, FourTasksMatchLibMtlsObjectiveAndTorchjd) {
  const std::vector<double> libmtl_04 = {0.34175015333168535, 0.21551724137931033,
                                         0.21551724137931033, 0.34707970224242785},
                            torchjd_04 = {0.34174758154191964, 0.21551724189279683,
                                          0.21551724244610918, 0.3470820735771685},
                            libmtl_05 = {0.3467118223652797, 0.2, 0.20913135007072894,
                                         0.3543805502632637},
                            torchjd_05 = {0.3467132237420712, 0.20000003800785343,
                                          0.20911824366514836, 0.35437693207523735};
  const auto c04 = coefficients(0.4, kFourTasks), c05 = coefficients(0.5, kFourTasks);
  expect_near(c04, libmtl_04, 2e-8);
  expect_near(c04, torchjd_04, 2e-5);
  expect_near(c05, libmtl_05, 2e-8);
  expect_near(c05, torchjd_05, 2e-5);
}

TEST(BalancersCagrad, KeepsNoStateAndWeightsStartAtTheEqualGradientsStep) {
  auto b = bound(cagrad(0.4), {1.0, 0.5});
  // Before any step: what equal gradients would give, w_t·(1 + c)/(T(1 + c²)).
  expect_near(weights_of(*b), {1.4 / 2.32, 0.5 * 1.4 / 2.32});
  combine(*b, Step({{1, 0}, {0, 1}}));
  EXPECT_TRUE(b->state().empty());
}

}  // namespace
}  // namespace polytask
