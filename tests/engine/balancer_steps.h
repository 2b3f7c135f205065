// Driving one balancer by hand, step by step, for the per-strategy tests
// (test_balancers_<name>.cpp): the helpers of test_balancers.cpp, shared by the files that
// need them. A step's task gradients are rows of a few numbers; the Gram matrix is computed
// from them as the fan-out would.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/balancer.h"
#include "tests/engine/engine_fixtures.h"

namespace polytask::testing {

// A bound balancer over `weights.size()` tasks named t0, t1, ... with gradients of `dim`
// numbers (one batch row).
inline std::unique_ptr<Balancer> bound(BalancerOptions options, std::vector<double> weights,
                                       int64_t dim = 2, DType dtype = DType::F64) {
  auto b = make_balancer(options);
  std::vector<std::string> names;
  for (size_t t = 0; t < weights.size(); ++t) names.push_back(cat("t", t));
  b->bind({names, weights, Shape{1, dim}, dtype, Device::CPU});
  return b;
}

inline BalancerOptions named(const std::string& name) {
  BalancerOptions o;
  o.name = name;
  return o;
}

// The strategy `name` with its default options, bound as above.
inline std::unique_ptr<Balancer> bound(const std::string& name, std::vector<double> weights,
                                       int64_t dim = 2, DType dtype = DType::F64) {
  return bound(named(name), std::move(weights), dim, dtype);
}

// The Gram matrix of the rows of g (T×T, row-major).
inline std::vector<double> gram_of(const std::vector<std::vector<double>>& g) {
  const size_t tasks = g.size();
  std::vector<double> gram(tasks * tasks, 0.0);
  for (size_t i = 0; i < tasks; ++i)
    for (size_t j = 0; j < tasks; ++j)
      for (size_t k = 0; k < g[i].size(); ++k) gram[i * tasks + j] += g[i][k] * g[j][k];
  return gram;
}

// One step's per-task gradients (rows of `dim` numbers) with their Gram matrix, as the
// fan-out hands them over.
struct Step {
  std::vector<Tensor> grads;
  std::vector<double> gram, losses, seeds;
  uint64_t step = 0;

  Step(const std::vector<std::vector<double>>& g, std::vector<double> l, std::vector<double> s)
      : gram(gram_of(g)), losses(std::move(l)), seeds(std::move(s)) {
    for (const auto& v : g) grads.push_back(Tensor::from_vector<double>({1, int64_t(v.size())}, v));
  }
  // Gradients and seeds, with losses 1.
  Step(const std::vector<std::vector<double>>& g, std::vector<double> s)
      : Step(g, std::vector<double>(g.size(), 1.0), std::move(s)) {}
  // Gradients alone, with losses 1 and seeds 1.
  explicit Step(const std::vector<std::vector<double>>& g)
      : Step(g, std::vector<double>(g.size(), 1.0), std::vector<double>(g.size(), 1.0)) {}
  TaskGradients view() const {
    TaskGradients t;
    t.grads = grads;
    t.gram = gram;
    t.losses = losses;
    t.seeds = seeds;
    t.step = step;
    return t;
  }
};

// dz for one step through `b` (after its loss_seeds).
inline std::vector<double> combine(Balancer& b, const Step& s) {
  Tensor dz = Tensor::empty(s.grads[0].shape(), DType::F64);
  dz.fill(NAN);  // every element must be written
  b.combine(s.view(), dz);
  return dz.to_vector<double>();
}

inline std::vector<double> seeds_for(Balancer& b, std::vector<double> losses, uint64_t step = 0) {
  std::vector<double> seeds(losses.size(), NAN);
  b.loss_seeds(step, losses, seeds);
  return seeds;
}

inline std::vector<double> weights_of(const Balancer& b) {
  return {b.weights().begin(), b.weights().end()};
}

// The coefficients c_t of the last step: the weights logged are seeds[t]·c_t.
inline std::vector<double> coefficients_of(const Balancer& b, const Step& s) {
  std::vector<double> c;
  for (size_t t = 0; t < s.seeds.size(); ++t) c.push_back(b.weights()[t] / s.seeds[t]);
  return c;
}

// The coefficients c_t of one step with gradients `g` (configured weights 1, so seeds 1) on a
// fresh balancer.
inline std::vector<double> first_step_coefficients(const BalancerOptions& options,
                                                   const std::vector<std::vector<double>>& g) {
  auto b = bound(options, std::vector<double>(g.size(), 1.0), int64_t(g[0].size()));
  const Step s(g);
  combine(*b, s);
  return coefficients_of(*b, s);
}

// The 3- and 4-task gradients several strategies' reference numbers were computed for (the
// python that produced them is beside each expectation).
inline const std::vector<std::vector<double>> kThreeTasks = {
    {1.0, 0.3, -0.2}, {-0.4, 2.0, 0.5}, {0.2, -0.7, 0.6}};
inline const std::vector<std::vector<double>> kFourTasks = {{0.9, -0.1, 0.4, 0.0, 0.3},
                                                            {-0.2, 1.1, 0.0, 0.5, -0.3},
                                                            {0.3, 0.2, -0.8, 0.1, 0.6},
                                                            {-0.6, -0.4, 0.2, 0.7, 0.1}};

inline void expect_near(const std::vector<double>& actual, const std::vector<double>& expected,
                        double tol = 1e-12) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], tol) << "element " << i;
}

inline bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace polytask::testing
