// Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin 2023, "Independent Component Alignment
// for Multi-Task Learning", Algorithm 1): the task gradients' principal components are made
// equally strong, so no component (and no dominant task) outweighs the others and the system of
// gradients has condition number 1. From the eigendecomposition of the T×T Gram matrix
//   G = V Λ Vᵀ   (λ_1 >= ... >= λ_r > tol kept, the rest dropped as zero),
//   B = σ · V_r Λ_r^{-1/2} V_rᵀ,     α = B·p,     dz = Σ_t α_t g_t,
// so the aligned gradients' Gram matrix is σ²·V_r V_rᵀ: every kept singular value becomes σ.
//
// Seeds are the weights in state.base (the configured ones, which set_weight may change), so the
// rows are g_t = w_t·∂L_t/∂z: a configured weight scales its task's gradient before the alignment.
//
// Defaults from TorchJD's AlignedMTL() (torchjd 0.18, aggregation/_aligned_mtl.py, adapted from
// the authors' SamsungLabs/MTL code), matched exactly:
//   preference p = 1/T each (TorchJD's default pref_vector, the mean). LibMTL's Aligned_MTL sums
//     B's rows instead (p = 1 each), a T times larger step; we follow TorchJD.
//   rank: λ_i > tol = λ_max·T·ε with ε = 2.2e-16, the double's (LibMTL takes torch.finfo().eps,
//     float32's 1.2e-7, which drops more of a nearly singular Gram matrix);
//   σ² by settings.mode, TorchJD's scale_mode: 0 "min" the smallest kept eigenvalue (the paper's),
//     1 "median" the lower median of the kept ones (torch.median's choice for an even count),
//     2 "rmse" their mean (the name is TorchJD's, after the original code).
//   A Gram matrix of rank 0 (every gradient zero) gives B = I, as TorchJD's does: α = p, finite.
// α_t may be zero (a task whose gradient lies in a dropped component) or negative: B is positive
// semi-definite, not entrywise positive.
//
// The eigendecomposition is cyclic Jacobi (Golub & Van Loan, Matrix Computations, §8.5):
// deterministic, needs no library, and accurate to a few ε·‖G‖ in every eigenvalue, so an
// eigenvalue that is zero in exact arithmetic (a duplicate, opposite or zero gradient) lands
// well below tol, as LAPACK's does for TorchJD. It converges quadratically; at most 30 sweeps
// (T <= 8 needs about 6-8).
// State fields used: none beyond base (the seeds) and weights (set by combine()).
#pragma once

namespace polytask::kernels::balance {

// The eigenvalues and eigenvectors of a symmetric n×n matrix `a` (row-major, overwritten: it
// ends diagonal), by cyclic Jacobi rotations: values[k] with eigenvector column k of `vectors`
// (row-major n×n: vectors[i*n+k]), in no particular order. Stops when the off-diagonal part is
// below 1e-18 of the matrix's norm (or is zero), or after 30 sweeps.
POLYTASK_HOST_DEVICE inline void symmetric_eigen(double* a, int n, double* values,
                                                 double* vectors) {
  double norm2 = 0;
  for (int i = 0; i < n * n; ++i) norm2 += a[i] * a[i];
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) vectors[i * n + j] = i == j ? 1 : 0;
  for (int sweep = 0; sweep < 30; ++sweep) {
    double off2 = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off2 += a[p * n + q] * a[p * n + q];
    if (!(off2 > 1e-36 * norm2)) break;  // also ends on NaN
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        // The rotation (c, s) that zeroes a_pq: t = tan θ, the smaller root of
        // t² + 2τt − 1 = 0 with τ = (a_qq − a_pp) / (2 a_pq).
        const double tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = fabs(tau) > 1e150 ? 0.5 / tau
                         : tau >= 0        ? 1 / (tau + sqrt(1 + tau * tau))
                                           : -1 / (-tau + sqrt(1 + tau * tau));
        const double c = 1 / sqrt(1 + t * t), s = t * c;
        for (int k = 0; k < n; ++k) {  // columns p and q: A·J
          const double kp = a[k * n + p], kq = a[k * n + q];
          a[k * n + p] = c * kp - s * kq;
          a[k * n + q] = s * kp + c * kq;
        }
        for (int k = 0; k < n; ++k) {  // rows p and q: Jᵀ·(A·J)
          const double pk = a[p * n + k], qk = a[q * n + k];
          a[p * n + k] = c * pk - s * qk;
          a[q * n + k] = s * pk + c * qk;
        }
        a[p * n + q] = a[q * n + p] = 0;  // zero up to rounding: make it exact
        for (int k = 0; k < n; ++k) {     // V·J
          const double kp = vectors[k * n + p], kq = vectors[k * n + q];
          vectors[k * n + p] = c * kp - s * kq;
          vectors[k * n + q] = s * kp + c * kq;
        }
      }
  }
  for (int i = 0; i < n; ++i) values[i] = a[i * n + i];
}

POLYTASK_HOST_DEVICE inline void aligned_mtl_seeds(const Settings& s, State& st, const double*,
                                                   uint64_t, double* seeds) {
  base_seeds(s, st, seeds);
}

POLYTASK_HOST_DEVICE inline void aligned_mtl_combine(const Settings& s, State&, const double* gram,
                                                     const double*, const double*, uint64_t,
                                                     double* alpha) {
  const int n = s.tasks;
  double a[kMaxTasks * kMaxTasks] = {}, lambda[kMaxTasks] = {}, v[kMaxTasks * kMaxTasks] = {};
  for (int i = 0; i < n * n; ++i) a[i] = gram[i];
  symmetric_eigen(a, n, lambda, v);
  double largest = 0;
  for (int k = 0; k < n; ++k) largest = lambda[k] > largest ? lambda[k] : largest;
  const double tol = largest * double(n) * 2.220446049250313e-16;
  // The kept eigenvalues in ascending order (insertion sort; n <= 8).
  double kept[kMaxTasks] = {};
  int rank = 0;
  for (int k = 0; k < n; ++k) {
    if (!(lambda[k] > tol)) continue;
    int at = rank++;
    for (; at > 0 && kept[at - 1] > lambda[k]; --at) kept[at] = kept[at - 1];
    kept[at] = lambda[k];
  }
  if (rank == 0) {  // B = I
    for (int t = 0; t < n; ++t) alpha[t] = 1 / double(n);
    return;
  }
  double scale = kept[0];                         // min
  if (s.mode == 1) scale = kept[(rank - 1) / 2];  // the lower median
  if (s.mode == 2) {
    scale = 0;
    for (int k = 0; k < rank; ++k) scale += kept[k];
    scale /= double(rank);
  }
  // α = σ Σ_k v_k (v_k·p) / sqrt(λ_k), p = 1/T: sqrt(σ²/λ_k) <= sqrt(λ_max / tol) stays finite.
  for (int t = 0; t < n; ++t) alpha[t] = 0;
  for (int k = 0; k < n; ++k) {
    if (!(lambda[k] > tol)) continue;
    double projection = 0;
    for (int t = 0; t < n; ++t) projection += v[t * n + k];
    const double factor = sqrt(scale / lambda[k]) * projection / double(n);
    for (int t = 0; t < n; ++t) alpha[t] += factor * v[t * n + k];
  }
}

}  // namespace polytask::kernels::balance
