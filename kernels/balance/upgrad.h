// UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"): each task
// gradient is projected onto the dual cone of all of them, {x : <x, g_t> >= 0 for every t}, and
// the projections are averaged, so dz conflicts with no task (up to the regularisation below:
// <dz, g_t> >= −1e-4·tr(G)·c_t).
//
// Seeds are the weights in state.base (the configured ones, which set_weight may change), so the
// rows of the Jacobian are g_t = w_t·∂L_t/∂z: a configured weight scales its task's row before
// the projection (it is not TorchJD's preference vector, which stays the mean).
//
// On the Gram matrix G of the g_t (the paper's Proposition 1): the projection of Σ_t u_t·g_t onto
// the dual cone is Σ_t v_t·g_t with
//   v = argmin_v  vᵀ G v   subject to  v >= u,
// and UPGrad projects each row g_i (u = e_i) and averages: c = (1/T)·Σ_i v^(i), dz = Σ_t c_t·g_t.
// Every c_t >= 1/T (v^(t)_t >= 1 and the other entries >= 0), so every task keeps a positive
// weight; gradients that conflict with none of the others come back unchanged (v^(i) = e_i) and
// dz is their mean.
//
// The defaults are TorchJD's UPGrad() (torchjd 0.18, aggregation/_upgrad.py, _linalg/
// _dual_cone.py, _gramian.py), matched exactly: preference = the mean (1/T each), and before the
// solve G is normalised by its trace and regularised,
//   G' = G / tr(G) + 1e-4·I       (G' = 1e-4·I when tr(G) < 1e-4),
// which TorchJD then hands to quadprog. Like TorchJD, the 1e-4 threshold is absolute: when the
// squared gradient norms sum to less than 1e-4, G' = 1e-4·I, every v^(i) = e_i and dz is the
// plain mean of the gradients. The regularisation makes G' positive definite (eigenvalues >= 1e-4
// against a trace near 1), so the QP has one solution even for duplicate, opposite or zero
// gradients, and the solves below stay well conditioned.
//
// The solver: with w = v − u the QP is the non-negative QP  min_w ½wᵀG'w + (G'u)ᵀw, w >= 0,
// solved by Lawson & Hanson's active-set method (their NNLS algorithm, 1974, on the quadratic
// form). Each step solves the equality-constrained problem on the free set exactly (Cholesky of
// a principal submatrix of G'), so the answer is quadprog's up to rounding (~1e-12 relative
// with G' conditioned at most ~1e4), where a projected-gradient or coordinate method would stop
// at a tolerance after a number of sweeps that grows with the conditioning. The method
// terminates in finitely many steps; the caps below (3T+8 entries into the free set, T+1 solves
// after each, each of which frees or fixes a variable) are far above what T <= 8 needs (about T
// entries) and only bound a cycle that rounding might cause.
// State fields used: none beyond base (the seeds) and weights (set by combine()); nothing is
// learned or carried between steps.
#pragma once

namespace polytask::kernels::balance {

// Solves the n×n system A_FF·x_F = r_F on the free set F (free[i] != 0) of a symmetric positive
// definite A (row-major) by Cholesky; x is 0 off F. A pivot that rounding made non-positive is
// taken as 1e-300, so the result stays finite.
POLYTASK_HOST_DEVICE inline void solve_on_free_set(const double* a, int n, const int* free,
                                                   const double* r, double* x) {
  int index[kMaxTasks] = {};
  int m = 0;
  for (int i = 0; i < n; ++i)
    if (free[i]) index[m++] = i;
  double l[kMaxTasks * kMaxTasks] = {}, y[kMaxTasks] = {};
  for (int i = 0; i < m; ++i)
    for (int j = 0; j <= i; ++j) {
      double sum = a[index[i] * n + index[j]];
      for (int k = 0; k < j; ++k) sum -= l[i * kMaxTasks + k] * l[j * kMaxTasks + k];
      if (i == j)
        l[i * kMaxTasks + i] = sqrt(sum > 1e-300 ? sum : 1e-300);
      else
        l[i * kMaxTasks + j] = sum / l[j * kMaxTasks + j];
    }
  for (int i = 0; i < m; ++i) {  // L·y = r_F
    double sum = r[index[i]];
    for (int k = 0; k < i; ++k) sum -= l[i * kMaxTasks + k] * y[k];
    y[i] = sum / l[i * kMaxTasks + i];
  }
  for (int i = m - 1; i >= 0; --i) {  // Lᵀ·x_F = y
    double sum = y[i];
    for (int k = i + 1; k < m; ++k) sum -= l[k * kMaxTasks + i] * y[k];
    y[i] = sum / l[i * kMaxTasks + i];
  }
  for (int i = 0; i < n; ++i) x[i] = 0;
  for (int i = 0; i < m; ++i) x[index[i]] = y[i];
}

// min_w ½wᵀAw + bᵀw subject to w >= 0, for a symmetric positive definite n×n A (row-major), by
// Lawson-Hanson's active set: w starts at 0; while some fixed w_j has a gradient (Aw + b)_j below
// −1e-13 (A's entries are about 1 here), the most negative one is freed and the problem is
// solved on the free set, stepping back to the feasible boundary (and fixing the variables that
// reach 0) while the free solution has a non-positive entry. Returns false when the cap ended it
// (the w returned is feasible either way).
POLYTASK_HOST_DEVICE inline bool nonnegative_qp(const double* a, const double* b, int n,
                                                double* w) {
  int free[kMaxTasks] = {};
  for (int i = 0; i < n; ++i) w[i] = 0, free[i] = 0;
  for (int entry = 0; entry < 3 * n + 8; ++entry) {
    int best = -1;
    double most = -1e-13;
    for (int j = 0; j < n; ++j) {
      if (free[j]) continue;
      double gradient = b[j];
      for (int k = 0; k < n; ++k) gradient += a[j * n + k] * w[k];
      if (gradient < most) most = gradient, best = j;
    }
    if (best < 0) return true;  // KKT: w >= 0, Aw + b >= 0 on the fixed set, = 0 on the free
    free[best] = 1;
    double minus_b[kMaxTasks] = {}, z[kMaxTasks] = {};
    for (int i = 0; i < n; ++i) minus_b[i] = -b[i];
    for (int removal = 0; removal <= n; ++removal) {
      solve_on_free_set(a, n, free, minus_b, z);
      double step = 1;
      int blocking = -1;
      for (int i = 0; i < n; ++i)
        if (free[i] && z[i] <= 0) {
          // w_i > z_i here (w_i >= 0 >= z_i, and w_i = z_i = 0 only for the entry just freed,
          // which rounding alone can send non-positive: it is fixed again below).
          const double gap = w[i] - z[i];
          const double s = gap > 0 ? w[i] / gap : 0.0;
          if (s < step) step = s, blocking = i;
        }
      if (blocking < 0) {
        for (int i = 0; i < n; ++i) w[i] = z[i];
        break;
      }
      for (int i = 0; i < n; ++i) {
        if (!free[i]) continue;
        w[i] += step * (z[i] - w[i]);
        if (i == blocking || w[i] <= 0) w[i] = 0, free[i] = 0;
      }
    }
  }
  return false;
}

POLYTASK_HOST_DEVICE inline void upgrad_seeds(const Settings& s, State& st, const double*, uint64_t,
                                              double* seeds) {
  base_seeds(s, st, seeds);
}

POLYTASK_HOST_DEVICE inline void upgrad_combine(const Settings& s, State&, const double* gram,
                                                const double*, const double*, uint64_t, double* c) {
  const int n = s.tasks;
  double trace = 0;
  for (int t = 0; t < n; ++t) trace += gram[t * n + t];
  // TorchJD's normalize(G, 1e-4) then regularize(G, 1e-4).
  double a[kMaxTasks * kMaxTasks] = {};
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      a[i * n + j] = (trace < 1e-4 ? 0.0 : gram[i * n + j] / trace) + (i == j ? 1e-4 : 0.0);
  for (int t = 0; t < n; ++t) c[t] = 0;
  for (int i = 0; i < n; ++i) {
    // Row i: u = e_i, v = w + u with w the non-negative QP's solution for b = A·u = A's column i.
    double b[kMaxTasks] = {}, w[kMaxTasks] = {};
    for (int k = 0; k < n; ++k) b[k] = a[k * n + i];
    nonnegative_qp(a, b, n, w);
    w[i] += 1;
    for (int k = 0; k < n; ++k) c[k] += w[k];
  }
  for (int t = 0; t < n; ++t) c[t] /= double(n);
}

}  // namespace polytask::kernels::balance
