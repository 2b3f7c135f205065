// static-from-norms: static loss weights chosen once, from the first epoch's gradient norms at
// the fan-out z (this project's own strategy; no paper). The idea is GradNorm's (Chen et al.
// 2018: equal gradient norms at the shared layer) without its per-step weight training: one
// measurement, then fixed weights, so every later step is exactly static.
//
// Epoch 1 trains exactly like static: seeds = state.base (the configured weights c_t),
// coefficients 1, while combine accumulates the raw norms
//   state.sums[t] += ‖∂L_t/∂z‖ = sqrt(G_tt)/seeds_t,   state.sum_steps += 1.
// At the end of the first epoch that took a step (the host's end_epoch), with n̄_t = sums/steps
// the mean raw norm and K = Σ_t c_t:
//   base_t = K·(1/n̄_t) / Σ_j (1/n̄_j)
// so every task's weighted gradient at z has the same mean norm and the weights keep the
// configured total. A task with no usable norm (n̄_t = 0: its loss does not reach z, or a
// non-finite mean) keeps its configured weight and the others share what remains of K; with no
// usable norm at all nothing changes. Each new weight is then clamped to [1e-6, 1e6]
// (clamp_weight), which only bites when the norms differ by about 1e6 or more. have_reference = 1
// marks the weights as set: combine stops measuring and later epochs change nothing.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void static_from_norms_seeds(const Settings& s, State& st,
                                                         const double*, uint64_t, double* seeds) {
  base_seeds(s, st, seeds);
}

POLYTASK_HOST_DEVICE inline void static_from_norms_combine(const Settings& s, State& st,
                                                           const double* gram, const double*,
                                                           const double* seeds, uint64_t, double*) {
  if (st.have_reference != 0) return;
  const int n = s.tasks;
  for (int t = 0; t < n; ++t) {
    const double g = gram[t * n + t];
    st.sums[t] += g > 0 && seeds[t] > 0 ? sqrt(g) / seeds[t] : 0.0;
  }
  st.sum_steps += 1;
}

// The end of an epoch (host): sets state.base from the accumulated norms, once. Returns whether
// it did.
POLYTASK_HOST_DEVICE inline bool static_from_norms_fix_weights(const Settings& s, State& st) {
  if (st.have_reference != 0 || !(st.sum_steps > 0)) return false;
  const int n = s.tasks;
  double mean[kMaxTasks], smallest = INFINITY, left = 0;
  bool usable[kMaxTasks];
  for (int t = 0; t < n; ++t) {
    mean[t] = st.sums[t] / st.sum_steps;
    usable[t] = mean[t] > 0 && mean[t] < INFINITY;
    if (usable[t]) {
      smallest = mean[t] < smallest ? mean[t] : smallest;
      left += s.configured[t];
    }
  }
  // 1/n̄_t relative to the largest of them, smallest/n̄_t in (0, 1]: no overflow for tiny norms.
  double share = 0;
  for (int t = 0; t < n; ++t) share += usable[t] ? smallest / mean[t] : 0.0;
  for (int t = 0; t < n; ++t)
    st.base[t] = usable[t] ? clamp_weight(left * (smallest / mean[t]) / share) : s.configured[t];
  st.have_reference = 1;
  return true;
}

}  // namespace polytask::kernels::balance
