// IMTL (kernels/balance/imtl.h): IMTL-G against cases worked out by hand, its defining
// property (equal projections onto every unit gradient), its degenerate cases and numbers
// from LibMTL's and torchjd's implementations; IMTL-L's Adam steps by hand; the three modes;
// the state a checkpoint keeps.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/balancer.h"
#include "kernels/balance.h"
#include "tests/engine/balancer_steps.h"

namespace polytask {
namespace {

using namespace testing;

BalancerOptions imtl(const std::string& mode, double lr = 0) {
  BalancerOptions o = named("imtl");
  o.imtl_mode = mode;
  o.lr = lr;
  return o;
}

// IMTL-G's α for one step with gradients `g` (gradient mode, weights 1: seeds 1).
std::vector<double> alpha_for(const std::vector<std::vector<double>>& g) {
  return first_step_coefficients(imtl("gradient"), g);
}

TEST(BalancersImtl, GradientModeEqualisesTheProjectionsOfTwoOrthogonalGradients) {
  auto b = bound(imtl("gradient"), {1.0, 0.5});
  EXPECT_EQ(b->describe(), "imtl (mode gradient)");
  EXPECT_EQ(seeds_for(*b, {4.0, 0.1}), (std::vector<double>{1.0, 0.5}));  // configured weights
  // g1 = (1, 0), g2 = (0, 2): u1 = (1, 0), u2 = (0, 1), D = g1 − g2 = (1, −2),
  // U = u1 − u2 = (1, −1): α2 = <g1, U>/<D, U> = 1/3, α1 = 2/3. dz = (2/3, 2/3): its
  // projections on u1 and u2 are both 2/3.
  const Step s({{1, 0}, {0, 2}}, {4, 0.1}, {1.0, 0.5});
  expect_near(combine(*b, s), {2.0 / 3, 2.0 / 3}, 1e-15);
  expect_near(weights_of(*b), {2.0 / 3, 0.5 / 3}, 1e-15);  // seed·α
  // Three orthogonal gradients of lengths 1, 2, 4: α ∝ 1/‖g_t‖, (4, 2, 1)/7; dz = (4, 4, 4)/7.
  expect_near(alpha_for({{1, 0, 0}, {0, 2, 0}, {0, 0, 4}}), {4.0 / 7, 2.0 / 7, 1.0 / 7}, 1e-15);
}

TEST(BalancersImtl, OppositeGradientsCancel) {
  // g1 = (1, 0), g2 = (−3, 0): U = u1 − u2 = (2, 0), D = (4, 0): α2 = 2/8 = 1/4, α1 = 3/4,
  // dz = 3/4·(1, 0) + 1/4·(−3, 0) = 0: both projections 0.
  auto b = bound(imtl("gradient"), {1.0, 1.0});
  const Step s({{1, 0}, {-3, 0}});
  expect_near(combine(*b, s), {0.0, 0.0}, 1e-15);
  expect_near(coefficients_of(*b, s), {0.75, 0.25}, 1e-15);
}

TEST(BalancersImtl, DzHasEqualProjectionsOntoEveryUnitGradient) {
  for (const auto& g : {kThreeTasks, kFourTasks}) {
    const auto alpha = alpha_for(g);
    const size_t n = g.size(), dim = g[0].size();
    double sum = 0;
    std::vector<double> dz(dim, 0.0);
    for (size_t t = 0; t < n; ++t) {
      sum += alpha[t];
      for (size_t k = 0; k < dim; ++k) dz[k] += alpha[t] * g[t][k];
    }
    EXPECT_NEAR(sum, 1.0, 1e-14);
    std::vector<double> projection(n, 0.0);
    for (size_t t = 0; t < n; ++t) {
      double norm = 0;
      for (size_t k = 0; k < dim; ++k) norm += g[t][k] * g[t][k];
      for (size_t k = 0; k < dim; ++k) projection[t] += dz[k] * g[t][k] / std::sqrt(norm);
    }
    for (size_t t = 1; t < n; ++t) EXPECT_NEAR(projection[t], projection[0], 1e-14) << t;
  }
}

TEST(BalancersImtl, DegenerateGradientsFallBackToFiniteWeights) {
  // A zero gradient has no direction: left out (α = 0), IMTL-G on the others:
  // (2, 0) and (0, 1) -> α ∝ (1/2, 1), (1/3, 2/3).
  expect_near(alpha_for({{2, 0}, {0, 0}, {0, 1}}), {1.0 / 3, 0.0, 2.0 / 3}, 1e-15);
  expect_near(alpha_for({{2, 0}, {0, 0}}), {1.0, 0.0});
  expect_near(alpha_for({{0, 0}, {0, 0}}), {0.5, 0.5});
  expect_near(alpha_for({{3, 4}}), {1.0});
  // Gradients with one direction: u1 = u2, D·Uᵀ = 0 (LibMTL's inverse is infinite): equal α.
  expect_near(alpha_for({{1, 0}, {3, 0}}), {0.5, 0.5});
  expect_near(alpha_for({{1, 2}, {1, 2}, {0, 1}}), {1.0 / 3, 1.0 / 3, 1.0 / 3});
  // Parallel up to rounding (1.3·(0.1, 0.2, 0.3) in double): D·Uᵀ = 1.7e-16 is rounding
  // noise, far below the pivot tolerance, not a system to solve (it would give α2 = 1/3).
  expect_near(alpha_for({{0.1, 0.2, 0.3}, {0.13, 0.26, 0.39}}), {0.5, 0.5});
  // Lengths 1e30 apart: α1 = ‖g2‖/(‖g1‖ + ‖g2‖) ≈ 1e-30 survives (α_1 = 1 − α2 would be 0: the
  // formula's task 1 is the shortest gradient).
  const auto far = alpha_for({{1e30, 0}, {0, 1}});
  EXPECT_NEAR(far[0], 1e-30, 1e-42);
  EXPECT_NEAR(far[1], 1.0, 1e-15);
}

TEST(BalancersImtl, TheEliminationExchangesRowsAndRefusesSingularSystems) {
  // kernels/balance/gram_solve.h's solver, which IMTL-G's system goes through: a zero first
  // pivot needs a row exchange; x = (1, 2, 3).
  const double a[9] = {0, 2, 1, 1, 1, 1, 4, 1, 2}, b[3] = {7, 6, 12};
  double x[3] = {};
  ASSERT_TRUE(kernels::balance::pivoted_solve(a, b, 3, 1e-12, x));
  expect_near({x[0], x[1], x[2]}, {1.0, 2.0, 3.0}, 1e-14);
  const double singular[4] = {1, 2, 2, 4}, c[2] = {1, 2};
  EXPECT_FALSE(kernels::balance::pivoted_solve(singular, c, 2, 1e-12, x));
}

// Reference numbers: LibMTL 1.1.5 (weighting/IMTL.py, its gradients stubbed with J's rows)
// and torchjd 0.18.0 (IMTLGWeighting: pinv(G)·‖g‖, normalised to sum 1), printed by
// /work/main/.peers-venv/bin/python with LibMTL's wheel unpacked in x/:
// clang-format off
//   import sys, types, importlib.util, torch
//   from torchjd.aggregation._imtl_g import IMTLGWeighting
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
//   for J in ([[1.0, 0.3, -0.2], [-0.4, 2.0, 0.5], [0.2, -0.7, 0.6]],
//             [[0.9, -0.1, 0.4, 0.0, 0.3], [-0.2, 1.1, 0.0, 0.5, -0.3],
//              [0.3, 0.2, -0.8, 0.1, 0.6], [-0.6, -0.4, 0.2, 0.7, 0.1]]):
//       J = torch.tensor(J)
//       m = libmtl("IMTL").IMTL()
//       m.task_num, m.device, m.rep_grad = len(J), "cpu", False
//       m.init_param()
//       m._get_grads = lambda losses, mode: J
//       m._backward_new_grads = lambda alpha, grads: None
//       print("libmtl", [repr(float(x)) for x in m.backward(torch.ones(len(J)))])
//       print("torchjd", [repr(float(x)) for x in IMTLGWeighting()(J @ J.T)])
// clang-format on
TEST(BalancersImtl, GradientModeMatchesLibMtlAndTorchjd) {
  const std::vector<double> libmtl3 = {0.22313196642984667, 0.23229520449214525,
                                       0.5445728290780081},
                            torchjd3 = {0.2231319664298467, 0.23229520449214525,
                                        0.5445728290780081},
                            libmtl4 = {0.3094545917306616, 0.19095154937146028, 0.18697583209098279,
                                       0.3126180268068953},
                            torchjd4 = {0.3094545917306617, 0.19095154937146044, 0.1869758320909828,
                                        0.31261802680689504};
  const auto a3 = alpha_for(kThreeTasks), a4 = alpha_for(kFourTasks);
  expect_near(a3, libmtl3, 1e-14);
  expect_near(a3, torchjd3, 1e-14);
  expect_near(a4, libmtl4, 1e-14);
  expect_near(a4, torchjd4, 1e-14);
}

TEST(BalancersImtl, LossModeStepsTheLossScalesAlongTheirGradientAndSumsPlainly) {
  auto b = bound(imtl("loss", 0.1), {1.0, 0.5});
  EXPECT_EQ(b->describe(), "imtl (mode loss, lr 0.1)");
  // s = log w = (0, log 1/2): the first seeds are the configured weights.
  expect_near(seeds_for(*b, {2.0, 0.5}), {1.0, 0.5});
  // ∂/∂s_t (e^{s_t}·L_t − s_t) = e^{s_t}·L_t − 1 = (2 − 1, 0.25 − 1) = (1, −0.75). Adam's first
  // step moves each s by lr·g/(|g| + eps): s = (−0.1, log 1/2 + 0.1) (up to eps).
  const double eps = 1e-8;
  const double s0 = -0.1 / (1 + eps), s1 = std::log(0.5) + 0.1 * 0.75 / (0.75 + eps);
  const auto seeds = seeds_for(*b, {1.0, 1.0});
  expect_near(seeds, {std::exp(s0), std::exp(s1)});
  // Coefficients 1: dz is the plain sum of the scaled gradients, the weights are the seeds.
  const Step s({{seeds[0], 0}, {0.5 * seeds[1], -seeds[1]}}, {1, 1}, seeds);
  expect_near(combine(*b, s), {seeds[0] + 0.5 * seeds[1], -seeds[1]});
  expect_near(weights_of(*b), seeds);
}

TEST(BalancersImtl, LossScalesApproachOneOverTheLossAndStayBounded) {
  auto b = bound(imtl("loss", 0.01), {1.0, 1.0});
  for (int step = 0; step < 3000; ++step) seeds_for(*b, {4.0, 0.25});
  // The fixed point of e^{s}·L − 1 = 0 is e^{s} = 1/L.
  expect_near(seeds_for(*b, {4.0, 0.25}), {0.25, 4.0}, 0.02);
  auto c = bound(imtl("loss", 0.5), {1.0, 1.0});
  for (int step = 0; step < 200; ++step) seeds_for(*c, {1e30, 1e-30});
  // Task 2's gradient is −1 every step: s_2 climbs by lr a step until e^{s_2} = 1e6, the bound.
  // Task 1's shrinks with e^{s_1} (Adam's steps with it), so s_1 only heads down.
  const auto seeds = seeds_for(*c, {1e30, 1e-30});
  EXPECT_TRUE(seeds[0] >= 1e-6 && seeds[0] < 1e-2) << seeds[0];
  EXPECT_NEAR(seeds[1], 1e6, 1e-3);
}

TEST(BalancersImtl, HybridModeRunsImtlGOnTheScaledGradients) {
  auto b = bound(imtl("hybrid", 0.1), {1.0, 0.5});
  EXPECT_EQ(b->describe(), "imtl (mode hybrid, lr 0.1)");
  // Seeds e^{s} = (1, 1/2) at first; raw gradients (1, 0) and (0, 2) scale to (1, 0), (0, 1):
  // IMTL-G gives α = (1/2, 1/2), dz = (1/2, 1/2), weights seed·α = (1/2, 1/4).
  const auto seeds = seeds_for(*b, {2.0, 0.5});
  expect_near(seeds, {1.0, 0.5});
  expect_near(combine(*b, Step({{1, 0}, {0, 1}}, {2, 0.5}, seeds)), {0.5, 0.5});
  expect_near(weights_of(*b), {0.5, 0.25});
  // The default options: hybrid at Adam's 1e-3.
  EXPECT_EQ(make_balancer(named("imtl"))->describe(), "imtl (mode hybrid, lr 0.001)");
}

TEST(BalancersImtl, NeedsPositiveStartingWeights) {
  for (const char* mode : {"hybrid", "gradient", "loss"}) {
    const std::string message = error_message([&] { bound(imtl(mode), {1.0, 0.0}); });
    EXPECT_TRUE(contains(message, "task 't1'")) << mode;
  }
}

TEST(BalancersImtl, StateRoundTripContinuesIdenticallyAndIsChecked) {
  const auto run = [](Balancer& b, int from, int to) {
    std::vector<double> trace;
    for (int step = from; step < to; ++step) {
      const std::vector<double> losses = {1.0 / (1 + step), 0.3 + 0.01 * step, 2.0};
      const auto seeds = seeds_for(b, losses, uint64_t(step));
      combine(b, Step({{seeds[0], 0.5, 0}, {-0.2, seeds[1], 0.1}, {0.3, 0.1, seeds[2]}}, losses,
                      seeds));
      trace.insert(trace.end(), b.weights().begin(), b.weights().end());
    }
    return trace;
  };
  for (const char* mode : {"hybrid", "loss"}) {
    auto a = bound(imtl(mode, 0.05), {1.0, 0.5, 2.0}, 3);
    run(*a, 0, 7);
    const NamedTensors saved = a->state();
    std::vector<std::string> keys;
    for (const auto& [key, t] : saved) keys.push_back(key);
    EXPECT_EQ(keys, (std::vector<std::string>{"balancer.imtl.loss_scale", "balancer.imtl.adam_m",
                                              "balancer.imtl.adam_v", "balancer.imtl.adam_steps",
                                              "balancer.imtl.weights"}));
    auto b = bound(imtl(mode, 0.05), {1.0, 0.5, 2.0}, 3);
    b->load_state(saved);
    EXPECT_EQ(run(*b, 7, 20), run(*a, 7, 20)) << mode;

    NamedTensors broken = saved;
    broken[0].second = Tensor::from_vector<double>({3}, {0.0, 20.0, 0.0});  // e^20 > 1e6
    EXPECT_TRUE(contains(error_message([&] { b->load_state(broken); }), "loss_scale")) << mode;
  }
  // IMTL-G alone learns nothing.
  auto g = bound(imtl("gradient"), {1.0, 0.5, 2.0}, 3);
  run(*g, 0, 3);
  EXPECT_TRUE(g->state().empty());
  EXPECT_TRUE(contains(error_message([&] {
                         g->load_state(bound(imtl("hybrid"), {1.0, 0.5, 2.0}, 3)->state());
                       }),
                       "keeps no state"));
}

}  // namespace
}  // namespace polytask
