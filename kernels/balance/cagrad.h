// CAGrad (Liu, Liu, Jin, Stone & Liu 2021, "Conflict-Averse Gradient Descent for Multi-task
// Learning"): the update that maximises the worst task's improvement within a ball around the
// mean gradient g0 = (1/T)·Σ_t g_t,
//   d = argmax_{‖d − g0‖ <= c·‖g0‖}  min_t <g_t, d>,
// through its dual on the simplex (the paper's Algorithm 1, LibMTL's weighting/CAGrad.py):
//   w = argmin_{w ∈ Δ}  g_wᵀg0 + c·‖g0‖·‖g_w‖,   g_w = Σ_t w_t g_t,
//   d = (g0 + λ·g_w) / (1 + c²),   λ = c·‖g0‖ / ‖g_w‖,
// the division by 1 + c² being LibMTL's and the authors' default `rescale=1`. As coefficients
// on the seeded gradients (seeds: the configured weights, state.base):
//   c_t = (1/T + λ·w_t) / (1 + c²).
// The default c = 0.4 is the paper's for its multi-task experiments (LibMTL's default calpha is
// 0.5).
//
// The dual is solved exactly, not by LibMTL's SLSQP: on the Gram matrix scaled so the largest
// gradient has unit norm (CAGrad's answer does not depend on the gradients' common scale), the
// quadratic term taken with Q = Ĝ + δI, δ = 1e-12 (so every face has a solution: with 0 in the
// convex hull of the gradients the minimiser is g_w ≈ 0). On a face S (the tasks with w_t > 0)
// stationarity reads h_S + ρ·Q_SS·w_S = ν·1, h = Ĝ·(1/T), ρ = c‖g0‖/‖g_w‖, and with
// p = Q_SS⁻¹1, q = Q_SS⁻¹h_S, a = 1ᵀp, b = 1ᵀq, e = h_Sᵀq it has the closed form
//   ρ = sqrt(a·(c‖g0‖)² + b² − a·e),  ν = (b + ρ)/a,  w_S = (ν·p − q)/ρ.
// Every face's point (clipped to the simplex) is a candidate; the one with the least objective
// is the minimiser, since the true one is among them. At most 2^T − 1 = 255 Cholesky solves of
// at most 8×8: bounded, deterministic work.
//
// Guards, where LibMTL adds 1e-8 to ‖g0‖², c·‖g0‖ and ‖g_w‖ (absolute, so its answer changes
// once gradients are small): ‖g0‖ = 0 or c = 0 gives λ = 0 (the mean); ‖g_w‖ below 1e-4 of
// the largest gradient's norm (the tasks are nearly Pareto-stationary: 0 is almost in the
// hull, where g_w's direction is meaningless) gives λ = 0 too, as torchjd's norm_eps = 1e-4
// does (torchjd then returns zero weights; this keeps the rescaled mean).
#pragma once

#include "kernels/balance/gram_solve.h"

namespace polytask::kernels::balance {

// The objective h·w + r·sqrt(wᵀQw) of CAGrad's dual at w (full length n).
POLYTASK_HOST_DEVICE inline double cagrad_objective(const double* q, const double* h, double r,
                                                    int n, const double* w) {
  double linear = 0, quadratic = 0;
  for (int i = 0; i < n; ++i) {
    linear += h[i] * w[i];
    for (int j = 0; j < n; ++j) quadratic += w[i] * q[i * n + j] * w[j];
  }
  return linear + r * sqrt(quadratic > 0 ? quadratic : 0.0);
}

// The minimiser w of h·w + r·sqrt(wᵀQw) over the simplex (Q positive definite, r > 0), by the
// per-face closed form above.
POLYTASK_HOST_DEVICE inline void cagrad_dual(const double* q, const double* h, double r, int n,
                                             double* w) {
  double best = INFINITY;
  for (int t = 0; t < n; ++t) w[t] = t == 0 ? 1.0 : 0.0;
  for (unsigned mask = 1; mask < (1u << n); ++mask) {
    int index[kMaxTasks], k = 0;
    for (int t = 0; t < n; ++t)
      if (mask & (1u << t)) index[k++] = t;
    double sub[kMaxTasks * kMaxTasks] = {}, l[kMaxTasks * kMaxTasks] = {}, p[kMaxTasks] = {},
                           qs[kMaxTasks] = {};
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k; ++j) sub[i * k + j] = q[index[i] * n + index[j]];
      p[i] = 1;
      qs[i] = h[index[i]];
    }
    if (!cholesky_factor(sub, k, 0.0, l)) continue;
    cholesky_solve(l, k, p);
    cholesky_solve(l, k, qs);
    double a = 0, b = 0, e = 0;
    for (int i = 0; i < k; ++i) a += p[i], b += qs[i], e += h[index[i]] * qs[i];
    const double discriminant = a * r * r + b * b - a * e;
    if (!(discriminant > 0) || !(a > 0)) continue;  // no stationary point with g_w ≠ 0 here
    const double rho = sqrt(discriminant), nu = (b + rho) / a;
    double candidate[kMaxTasks] = {}, sum = 0;
    for (int i = 0; i < k; ++i) {
      const double v = (nu * p[i] - qs[i]) / rho;
      candidate[index[i]] = v > 0 ? v : 0.0;  // a point outside the simplex, clipped back
      sum += candidate[index[i]];
    }
    if (!(sum > 0) || !(sum <= 1.7976931348623157e308)) continue;
    for (int t = 0; t < n; ++t) candidate[t] /= sum;
    const double value = cagrad_objective(q, h, r, n, candidate);
    if (value < best) {
      best = value;
      for (int t = 0; t < n; ++t) w[t] = candidate[t];
    }
  }
}

POLYTASK_HOST_DEVICE inline void cagrad_seeds(const Settings& s, State& st, const double*, uint64_t,
                                              double* seeds) {
  base_seeds(s, st, seeds);
}

// c_t from the Gram matrix for radius c.
POLYTASK_HOST_DEVICE inline void cagrad_coefficients(GramMatrix gram, double c,
                                                     double* coefficients) {
  const int n = gram.n;
  const double mean = 1.0 / double(n), rescale = 1 + c * c;
  double largest = 0;
  for (int t = 0; t < n; ++t) largest = gram(t, t) > largest ? gram(t, t) : largest;
  double lambda = 0, w[kMaxTasks] = {};
  if (largest > 0 && largest <= 1.7976931348623157e308) {
    double q[kMaxTasks * kMaxTasks] = {}, h[kMaxTasks] = {}, g0_squared = 0;
    for (int i = 0; i < n; ++i) {
      h[i] = 0;
      for (int j = 0; j < n; ++j) {
        const double scaled = gram(i, j) / largest;
        q[i * n + j] = scaled + (i == j ? 1e-12 : 0.0);
        h[i] += scaled * mean;  // <g_i, g0>
      }
      g0_squared += h[i] * mean;
    }
    const double r = c * sqrt(g0_squared > 0 ? g0_squared : 0.0);
    if (r > 0) {
      cagrad_dual(q, h, r, n, w);
      double gw_squared = 0;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) gw_squared += w[i] * q[i * n + j] * w[j];
      const double gw_norm = sqrt(gw_squared > 0 ? gw_squared : 0.0);
      if (gw_norm >= 1e-4) lambda = r / gw_norm;
    }
  }
  for (int t = 0; t < n; ++t) coefficients[t] = (mean + lambda * w[t]) / rescale;
}

POLYTASK_HOST_DEVICE inline void cagrad_combine(const Settings& s, State&, const double* gram,
                                                const double*, const double*, uint64_t,
                                                double* coefficients) {
  cagrad_coefficients({gram, s.tasks}, s.c, coefficients);
}

}  // namespace polytask::kernels::balance
