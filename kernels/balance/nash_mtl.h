// Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya 2022, "Multi-Task
// Learning as a Bargaining Game"): dz = Σ_t α_t g_t with α the Nash bargaining solution,
//   α > 0,   α_t·(Gα)_t = 1  for every t,   G the Gram matrix of the g_t.
// The authors' code (github.com/AvivNavon/nash-mtl, methods/weight_methods.py; torchjd's
// _nash_mtl.py is the same) divides G by its Frobenius norm for the solver's sake but keeps
// the constraints in terms of the raw G, and uses the α it finds as it is; so does this.
// Seeds are the configured weights (state.base); the answer does not depend on them (below).
//
// The authors reach α by 20 sequential convex approximations with CVXPY; this solves the
// same condition exactly. It is invariant to each task's scale: g_t -> k_t·g_t gives
// α_t -> α_t/k_t and the same dz. So with n_t = ‖g_t‖ and the cosines
// C_ij = <g_i, g_j>/(n_i·n_j), α_t = α̂_t/n_t where α̂ minimises the strictly convex
//   f(α̂) = ½·α̂ᵀ(C + εI)α̂ − Σ_t log α̂_t,   ε = 1e-8,
// i.e. α̂_t·((C + εI)α̂)_t = 1. ε (relative to C's unit diagonal) regularises the cases where
// Nash-MTL has no solution (opposite gradients, 0 inside the gradients' cone) and bounds α̂ to
// [√ε/T, √(T/ε)] ≈ [1e-5, 3e4]; elsewhere it moves α by about ε.
//
// Newton's method on f, the T×T Hessian C + εI + diag(1/α̂²) (positive definite) by
// Cholesky: a full step once the Newton decrement λ <= 1/4 (f is self-concordant: the step
// stays in α̂ > 0 and converges quadratically); before, a backtracking line search from the
// full step, never shorter than the damped step 1/(1 + λ), which always decreases f. At most
// 100 iterations (20000 random cases of 2 to 8 tasks, some nearly opposite, from α̂ = 1,
// 1e4 or 1e-5: at most 45); it stops after the step from λ² <= 1e-20, or from λ² <= 1e-12
// no lower than half the last (rounding's floor where α̂ is large). Start: the last step's
// α̂ (state.warm) or 1/sqrt(1 + ε) (exact for orthogonal gradients), whichever has the
// lower f.
//
// A task with a zero gradient has no solution in Nash-MTL; it is left out and gets c_t = 0
// (it adds nothing to dz either way). c_t = α̂_t/‖g_t‖ is capped at 1e30, which only a
// gradient shorter than about 1e-26 reaches (f32, which the fan-out sums with, ends at 3e38).
#pragma once

#include "kernels/balance/gram_solve.h"

namespace polytask::kernels::balance {

// f(α̂) = ½·α̂ᵀ(C + εI)α̂ − Σ_t log α̂_t (INFINITY outside α̂ > 0).
POLYTASK_HOST_DEVICE inline double nash_objective(const double* cosines, int n, double epsilon,
                                                  const double* alpha) {
  double value = 0;
  for (int i = 0; i < n; ++i) {
    if (!(alpha[i] > 0)) return INFINITY;
    double c_alpha = epsilon * alpha[i];
    for (int j = 0; j < n; ++j) c_alpha += cosines[i * n + j] * alpha[j];
    value += 0.5 * alpha[i] * c_alpha - log(alpha[i]);
  }
  return value;
}

// The α̂ > 0 with α̂_t·((C + εI)α̂)_t = 1 for the n×n matrix C, from the start in `alpha`.
POLYTASK_HOST_DEVICE inline void nash_solve(const double* cosines, int n, double epsilon,
                                            double* alpha) {
  double value = nash_objective(cosines, n, epsilon, alpha), previous = INFINITY;
  for (int iteration = 0; iteration < 100; ++iteration) {
    double hessian[kMaxTasks * kMaxTasks] = {}, l[kMaxTasks * kMaxTasks] = {}, grad[kMaxTasks],
                               step[kMaxTasks], trial[kMaxTasks];
    for (int i = 0; i < n; ++i) {
      double c_alpha = epsilon * alpha[i];
      for (int j = 0; j < n; ++j) {
        c_alpha += cosines[i * n + j] * alpha[j];
        hessian[i * n + j] = cosines[i * n + j];
      }
      hessian[i * n + i] += epsilon + 1 / (alpha[i] * alpha[i]);
      grad[i] = c_alpha - 1 / alpha[i];
      step[i] = -grad[i];
    }
    if (!cholesky_factor(hessian, n, 0.0, l)) break;
    cholesky_solve(l, n, step);
    double decrement = 0;  // λ² = gradᵀH⁻¹grad
    for (int i = 0; i < n; ++i) decrement -= grad[i] * step[i];
    // Not a finite number: keep the last iterate (the line search needs a finite λ).
    if (!(decrement >= 0 && decrement <= 1.7976931348623157e308)) break;
    // Within λ <= 1/4 the full step stays inside α̂ > 0 and converges quadratically. Beyond,
    // halve from the full step until f falls by a quarter of the predicted t·λ², down to the
    // damped step 1/(1 + λ), which always decreases f: the full step is what leaves a start
    // far out on the quadratic part (a warm start from opposite gradients, α̂ = 1e4) in one go.
    const double lambda = sqrt(decrement), damped = 1 / (1 + lambda);
    double size = 1, trial_value = INFINITY;
    while (true) {
      for (int i = 0; i < n; ++i) trial[i] = alpha[i] + size * step[i];
      if (lambda <= 0.25) break;
      trial_value = nash_objective(cosines, n, epsilon, trial);
      if (trial_value <= value - 0.25 * size * decrement) break;
      if (size <= damped) break;
      size = 0.5 * size > damped ? 0.5 * size : damped;
    }
    for (int i = 0; i < n; ++i) alpha[i] = trial[i];
    value = lambda <= 0.25 ? nash_objective(cosines, n, epsilon, alpha) : trial_value;
    // A full step from λ <= 1e-10 leaves an error of order λ²: rounding. Where α̂ is large
    // (nearly opposite gradients) rounding in (C + εI)α̂ keeps λ² above that: once λ² is small
    // and no longer falls quadratically, it is at that floor.
    if (decrement <= 1e-20 || (decrement <= 1e-12 && decrement > 0.5 * previous)) break;
    previous = decrement;
  }
}

POLYTASK_HOST_DEVICE inline void nash_mtl_seeds(const Settings& s, State& st, const double*,
                                                uint64_t, double* seeds) {
  base_seeds(s, st, seeds);
}

// c_t from the Gram matrix (n×n), warm-started from and updating `warm`.
POLYTASK_HOST_DEVICE inline void nash_coefficients(GramMatrix gram, double* warm,
                                                   double* coefficients) {
  const double epsilon = 1e-8, start = 1 / sqrt(1 + epsilon);
  double norms[kMaxTasks], cosines[kMaxTasks * kMaxTasks] = {}, alpha[kMaxTasks] = {},
                                               fresh[kMaxTasks] = {};
  int index[kMaxTasks], m = 0;
  const int n = gram.n;
  gram_norms(gram, norms);
  for (int t = 0; t < n; ++t)
    if (norms[t] > 0) index[m++] = t;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      const double cosine = gram(index[i], index[j]) / (norms[index[i]] * norms[index[j]]);
      cosines[i * m + j] = i == j ? 1.0 : (cosine > 1 ? 1.0 : (cosine < -1 ? -1.0 : cosine));
    }
    const double last = warm[index[i]];
    alpha[i] = last > 0 && last < 1e8 ? last : start;
    fresh[i] = start;
  }
  if (nash_objective(cosines, m, epsilon, fresh) < nash_objective(cosines, m, epsilon, alpha))
    for (int i = 0; i < m; ++i) alpha[i] = start;
  nash_solve(cosines, m, epsilon, alpha);
  bool finite = true;
  for (int i = 0; i < m; ++i) finite = finite && alpha[i] > 0 && alpha[i] < 1e8;
  for (int i = 0; i < m; ++i) {
    if (!finite) alpha[i] = start;  // unreachable in exact arithmetic; keeps c_t finite
    warm[index[i]] = alpha[i];
  }
  for (int t = 0; t < n; ++t) coefficients[t] = 0;
  for (int i = 0; i < m; ++i) {
    const double coefficient = alpha[i] / norms[index[i]];
    coefficients[index[i]] = coefficient < 1e30 ? coefficient : 1e30;
  }
}

POLYTASK_HOST_DEVICE inline void nash_mtl_combine(const Settings& s, State& st, const double* gram,
                                                  const double*, const double*, uint64_t,
                                                  double* coefficients) {
  nash_coefficients({gram, s.tasks}, st.warm, coefficients);
}

}  // namespace polytask::kernels::balance
