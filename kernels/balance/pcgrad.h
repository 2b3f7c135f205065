// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"), on the per-task
// gradients at z (LibMTL's rep_grad). Seeds are the weights in state.base (the configured ones,
// which set_weight may change), so g_t = w_t·∂L_t/∂z. For each task i:
//   pc_i = g_i; for every other task j, in a random order:
//     if <pc_i, g_j> < 0:  pc_i −= <pc_i, g_j> / ‖g_j‖² · g_j
// and dz = Σ_i pc_i. Every pc_i stays a combination Σ_k P_ik·g_k of the task gradients, so the
// projections run on the Gram matrix (<pc_i, g_j> = Σ_k P_ik·G_kj) and dz = Σ_k (Σ_i P_ik)·g_k:
// T×T arithmetic instead of passes over the gradients. The order of the other tasks is a
// Fisher-Yates shuffle driven by splitmix64 of (seed, step, i): deterministic, and the same in
// a resumed run. With two tasks the order does not matter.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

POLYTASK_HOST_DEVICE inline void pcgrad_seeds(const Settings& s, State& st, const double*, uint64_t,
                                              double* seeds) {
  base_seeds(s, st, seeds);
}

POLYTASK_HOST_DEVICE inline void pcgrad_combine(const Settings& s, State&, const double* gram,
                                                const double*, const double*, uint64_t step,
                                                double* c) {
  const int n = s.tasks;
  for (int k = 0; k < n; ++k) c[k] = 0;
  for (int i = 0; i < n; ++i) {
    double p[kMaxTasks] = {};  // pc_i = Σ_k p[k]·g_k
    for (int k = 0; k < n; ++k) p[k] = k == i ? 1 : 0;
    int order[kMaxTasks] = {};
    int count = 0;
    for (int j = 0; j < n; ++j)
      if (j != i) order[count++] = j;
    uint64_t state = s.seed ^ (step * 0x632be59bd9b4e019ull) ^ (uint64_t(i) << 48);
    for (int k = count; k > 1; --k) {
      const int r = int(splitmix64(state) % uint64_t(k));
      const int swap = order[k - 1];
      order[k - 1] = order[r];
      order[r] = swap;
    }
    for (int k = 0; k < count; ++k) {
      const int j = order[k];
      const double norm2 = gram[j * n + j];
      if (!(norm2 > 0)) continue;
      double d = 0;
      for (int m = 0; m < n; ++m) d += p[m] * gram[m * n + j];
      if (d < 0) p[j] -= d / norm2;
    }
    for (int k = 0; k < n; ++k) c[k] += p[k];
  }
}

}  // namespace polytask::kernels::balance
