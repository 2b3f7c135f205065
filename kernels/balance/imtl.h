// IMTL (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang 2021, "Towards Impartial Multi-task
// Learning", ICLR), in LibMTL's form (weighting/IMTL.py). settings.mode:
//   0 hybrid   (the default, LibMTL's IMTL) IMTL-L then IMTL-G on the scaled gradients;
//   1 gradient IMTL-G alone, on the configured-weight seeded gradients (state.base);
//   2 loss     IMTL-L alone, coefficients 1.
// IMTL-L: learned loss scales s_t (state.param): task t trains on e^{s_t}·L_t − s_t, so the
// seeds are e^{s_t}, and s takes one Adam step per step (its own, at settings.lr) on
// ∂/∂s_t = e^{s_t}·L_t − 1 (fixed point e^{s_t} = 1/L_t), with e^{s_t} kept in [1e-6, 1e6].
// s starts at log w_t (LibMTL: 0), so the first step uses the configured weights.
// IMTL-G: the combination d = Σ_t α_t g_t, Σ_t α_t = 1, whose projections onto every unit
// gradient u_t = g_t/‖g_t‖ are equal. With D = (g_1 − g_t)ᵀ and U = (u_1 − u_t)ᵀ, t = 2..T,
//   α_{2..T} = g_1·Uᵀ·(D·Uᵀ)⁻¹,   α_1 = 1 − Σ_{t>=2} α_t,
// every inner product taken from the Gram matrix (<g_i, u_j> = G_ij/‖g_j‖), the (T−1)×(T−1)
// system solved by Gaussian elimination with partial pivoting. Task "1" is the one with the
// shortest gradient (the answer is the same for any; see imtl_gradient). torchjd's IMTLG computes
// the same α as pinv(G)·(‖g_t‖)_t normalised to sum 1 (equal when G is invertible). Degenerate
// cases (LibMTL would produce NaN or infinities):
//   a zero gradient has no direction: the task is left out, α_t = 0, and IMTL-G runs on the
//   others (one left: α = 1 for it; none: α_t = 1/T);
//   a singular system (two gradients with the same direction: u_i = u_j): a pivot at most 1e-10
//   of Σ‖g_t‖ (the scale of D·Uᵀ's entries), or a non-finite α, gives equal α = 1/m over the
//   m tasks with a gradient.
#pragma once

#include "kernels/balance/gram_solve.h"

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void imtl_seeds(const Settings& s, State& st, const double* losses,
                                            uint64_t, double* seeds) {
  if (s.mode == 1) return base_seeds(s, st, seeds);
  double grad[kMaxTasks] = {};
  for (int t = 0; t < s.tasks; ++t) {
    seeds[t] = exp(st.param[t]);
    grad[t] = seeds[t] * losses[t] - 1;
  }
  adam_step(st, s.lr, 0, s.tasks, st.param, grad);
  const double lowest = log(1e-6), highest = log(1e6);
  for (int t = 0; t < s.tasks; ++t)
    st.param[t] = st.param[t] < lowest ? lowest : (st.param[t] > highest ? highest : st.param[t]);
}

// IMTL-G's α from the Gram matrix (n×n).
POLYTASK_HOST_DEVICE inline void imtl_gradient(GramMatrix gram, double* alpha) {
  const int n = gram.n;
  double norms[kMaxTasks], scale = 0;
  int index[kMaxTasks], m = 0;
  gram_norms(gram, norms);
  for (int t = 0; t < n; ++t) {
    alpha[t] = 0;
    if (norms[t] > 0) index[m++] = t, scale += norms[t];
  }
  if (m == 0) {
    for (int t = 0; t < n; ++t) alpha[t] = 1.0 / double(n);
    return;
  }
  // The formula's task 1: any task gives the same α, but α_1 = 1 − Σ_{t>=2} α_t loses a small
  // α_1 to cancellation; the shortest gradient has the largest α (1/‖g_t‖ for orthogonal ones).
  for (int i = 1; i < m; ++i)
    if (norms[index[i]] < norms[index[0]]) {
      const int swap = index[0];
      index[0] = index[i];
      index[i] = swap;
    }
  // <g_i, u_j> for the i-th and j-th tasks with a gradient.
  const auto gu = [&](int i, int j) { return gram(index[i], index[j]) / norms[index[j]]; };
  // The transpose of D·Uᵀ, so that α_{2..} (a row vector) solves system·α = (g_1·Uᵀ)ᵀ:
  // system[j][i] = <g_1 − g_{i+1}, u_1 − u_{j+1}>, rhs[j] = <g_1, u_1 − u_{j+1}>.
  double system[kMaxTasks * kMaxTasks] = {}, rhs[kMaxTasks] = {}, x[kMaxTasks];
  const int k = m - 1;
  for (int j = 0; j < k; ++j) {
    rhs[j] = gu(0, 0) - gu(0, j + 1);
    for (int i = 0; i < k; ++i)
      system[j * k + i] = gu(0, 0) - gu(0, j + 1) - gu(i + 1, 0) + gu(i + 1, j + 1);
  }
  if (k > 0 && !pivoted_solve(system, rhs, k, 1e-10 * scale, x)) {
    for (int i = 0; i < m; ++i) alpha[index[i]] = 1.0 / double(m);
    return;
  }
  double rest = 0;
  for (int i = 0; i < k; ++i) alpha[index[i + 1]] = x[i], rest += x[i];
  alpha[index[0]] = 1 - rest;
}

POLYTASK_HOST_DEVICE inline void imtl_combine(const Settings& s, State&, const double* gram,
                                              const double*, const double*, uint64_t,
                                              double* coefficients) {
  if (s.mode == 2) return;  // IMTL-L alone: the plain sum of the scaled gradients
  imtl_gradient({gram, s.tasks}, coefficients);
}

}  // namespace polytask::kernels::balance
