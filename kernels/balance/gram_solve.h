// Small dense linear algebra for the strategies that solve a system on the T×T Gram matrix
// (cagrad.h, nash_mtl.h, imtl.h): fixed-size, allocation-free, n <= kMaxTasks, row-major. Each
// solve reports failure instead of dividing by a vanishing pivot, so its caller can fall back
// to a documented answer.
#pragma once

namespace polytask::kernels::balance {

// The Gram matrix as combine() hands it over: n×n, row-major. The solvers take it wrapped
// rather than as a bare pointer: combine() (kernels/balance.h) fills only the n×n corner of
// its kMaxTasks² array, and GCC's -Wmaybe-uninitialized flags that array (falsely) wherever it
// is passed as a pointer-to-const to a function that is not inlined.
struct GramMatrix {
  const double* entries;
  int n;
  POLYTASK_HOST_DEVICE double operator()(int i, int j) const { return entries[i * n + j]; }
};

// ‖g_t‖ from the Gram matrix, with 0 for a zero gradient (or a squared norm that is not a
// finite number): the tasks without a direction.
POLYTASK_HOST_DEVICE inline void gram_norms(GramMatrix gram, double* norms) {
  for (int t = 0; t < gram.n; ++t) {
    const double squared = gram(t, t);
    norms[t] = squared > 0 && squared <= 1.7976931348623157e308 ? sqrt(squared) : 0.0;
  }
}

// The Cholesky factor L (lower triangular, n×n, row-major; the upper part is zeroed) of the
// symmetric matrix `a`. False when a pivot is not above `min_pivot` (or is not a number): the
// matrix is not positive definite enough to trust the solve.
POLYTASK_HOST_DEVICE inline bool cholesky_factor(const double* a, int n, double min_pivot,
                                                 double* l) {
  for (int j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int k = 0; k < j; ++k) d -= l[j * n + k] * l[j * n + k];
    if (!(d > min_pivot) || !(d <= 1.7976931348623157e308)) return false;
    const double root = sqrt(d);
    l[j * n + j] = root;
    for (int i = j + 1; i < n; ++i) {
      double v = a[i * n + j];
      for (int k = 0; k < j; ++k) v -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = v / root;
      l[j * n + i] = 0;
    }
  }
  return true;
}

// x = (L·Lᵀ)⁻¹·x in place, with L from cholesky_factor.
POLYTASK_HOST_DEVICE inline void cholesky_solve(const double* l, int n, double* x) {
  for (int i = 0; i < n; ++i) {
    double v = x[i];
    for (int k = 0; k < i; ++k) v -= l[i * n + k] * x[k];
    x[i] = v / l[i * n + i];
  }
  for (int i = n - 1; i >= 0; --i) {
    double v = x[i];
    for (int k = i + 1; k < n; ++k) v -= l[k * n + i] * x[k];
    x[i] = v / l[i * n + i];
  }
}

// Solves a·x = b (a: n×n, row-major, not necessarily symmetric) by Gaussian elimination with
// partial pivoting. False when a pivot's magnitude is not above `min_pivot` (singular, or too
// ill-conditioned to trust) or the solution is not finite; x is then unspecified.
POLYTASK_HOST_DEVICE inline bool pivoted_solve(const double* a, const double* b, int n,
                                               double min_pivot, double* x) {
  double m[kMaxTasks * kMaxTasks] = {}, r[kMaxTasks] = {};
  for (int i = 0; i < n; ++i) {
    r[i] = b[i];
    for (int j = 0; j < n; ++j) m[i * n + j] = a[i * n + j];
  }
  for (int col = 0; col < n; ++col) {
    int pivot = col;
    for (int i = col + 1; i < n; ++i)
      if (fabs(m[i * n + col]) > fabs(m[pivot * n + col])) pivot = i;
    if (!(fabs(m[pivot * n + col]) > min_pivot)) return false;
    if (pivot != col) {
      for (int j = 0; j < n; ++j) {
        const double swap = m[col * n + j];
        m[col * n + j] = m[pivot * n + j];
        m[pivot * n + j] = swap;
      }
      const double swap = r[col];
      r[col] = r[pivot];
      r[pivot] = swap;
    }
    for (int i = col + 1; i < n; ++i) {
      const double factor = m[i * n + col] / m[col * n + col];
      for (int j = col; j < n; ++j) m[i * n + j] -= factor * m[col * n + j];
      r[i] -= factor * r[col];
    }
  }
  for (int i = n - 1; i >= 0; --i) {
    double v = r[i];
    for (int j = i + 1; j < n; ++j) v -= m[i * n + j] * x[j];
    x[i] = v / m[i * n + i];
    if (!(fabs(x[i]) <= 1.7976931348623157e308)) return false;
  }
  return true;
}

}  // namespace polytask::kernels::balance
