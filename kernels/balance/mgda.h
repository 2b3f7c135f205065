// MGDA-UB (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"): dz is
// the min-norm point of the convex hull of the task gradients at z (the paper's upper bound:
// no extra trunk backward per task). Seeds are 1, so g_t = ∂L_t/∂z. With normalisers n_t
// (none: 1; l2: ‖g_t‖; loss: L_t; loss+: L_t·‖g_t‖, the paper's code and LibMTL's mgda_gn), α
// solves  min_α ‖Σ_t α_t g_t / n_t‖²  over the simplex: exactly for two tasks
// (α_1 = clamp(<ĝ_2 − ĝ_1, ĝ_2> / ‖ĝ_1 − ĝ_2‖², 0, 1)), by Frank-Wolfe with exact line search
// from the best pair for more. As the paper's code does, α then scales the raw gradients:
// dz = Σ_t α_t g_t, a convex combination.
#pragma once

namespace polytask::kernels::balance {

// The γ in [0, 1] minimising ‖(1−γ)·u + γ·v‖² from <u,u>, <u,v>, <v,v>.
POLYTASK_HOST_DEVICE inline double line_min(double uu, double uv, double vv) {
  const double denominator = uu + vv - 2 * uv;
  if (!(denominator > 0)) return uu <= vv ? 0.0 : 1.0;
  const double gamma = (uu - uv) / denominator;
  return gamma < 0 ? 0.0 : (gamma > 1 ? 1.0 : gamma);
}

// The min-norm point α (on the simplex) of the convex hull of n vectors given by their Gram
// matrix (n×n, row-major): exact for n <= 2, Frank-Wolfe (at most 250 iterations) otherwise.
POLYTASK_HOST_DEVICE inline void min_norm_point(const double* gram, int n, double* alpha) {
  for (int t = 0; t < n; ++t) alpha[t] = 0;
  if (n == 1) {
    alpha[0] = 1;
    return;
  }
  double best = INFINITY, bg = 0;
  int bi = 0, bj = 1;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) {
      const double ii = gram[i * n + i], ij = gram[i * n + j], jj = gram[j * n + j];
      const double gamma = line_min(ii, ij, jj);  // weight on j
      const double value =
          (1 - gamma) * (1 - gamma) * ii + 2 * gamma * (1 - gamma) * ij + gamma * gamma * jj;
      if (value < best) best = value, bi = i, bj = j, bg = gamma;
    }
  alpha[bi] = 1 - bg;
  alpha[bj] = bg;
  if (n == 2) return;
  for (int iteration = 0; iteration < 250; ++iteration) {
    double vv = 0, smallest = INFINITY;
    int vertex = 0;
    for (int t = 0; t < n; ++t) {
      double mt = 0;  // (Gα)_t = <g_t, v>
      for (int k = 0; k < n; ++k) mt += gram[t * n + k] * alpha[k];
      vv += alpha[t] * mt;
      if (mt < smallest) smallest = mt, vertex = t;
    }
    const double gamma = line_min(vv, smallest, gram[vertex * n + vertex]);
    if (gamma * fabs(1 - alpha[vertex]) < 1e-10) break;
    for (int t = 0; t < n; ++t) alpha[t] *= 1 - gamma;
    alpha[vertex] += gamma;
  }
}

POLYTASK_HOST_DEVICE inline void mgda_seeds(const Settings& s, State&, const double*, uint64_t,
                                            double* seeds) {
  for (int t = 0; t < s.tasks; ++t) seeds[t] = 1;
}

POLYTASK_HOST_DEVICE inline void mgda_combine(const Settings& s, State&, const double* gram,
                                              const double* losses, const double*, uint64_t,
                                              double* alpha) {
  const int n = s.tasks;
  double scale[kMaxTasks] = {}, scaled[kMaxTasks * kMaxTasks] = {};
  for (int t = 0; t < n; ++t) {
    const double norm = sqrt(gram[t * n + t]);
    double d = 1;
    if (s.normalization == 1) d = norm;
    if (s.normalization == 2) d = losses[t];
    if (s.normalization == 3) d = losses[t] * norm;
    scale[t] = d > 0 && d <= 1.7976931348623157e308 ? 1 / d : 1.0;
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) scaled[i * n + j] = gram[i * n + j] * scale[i] * scale[j];
  min_norm_point(scaled, n, alpha);
}

}  // namespace polytask::kernels::balance
