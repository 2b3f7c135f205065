// FAMO (Liu, Liu, Hu, Stone & Liu 2023, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS),
// as the authors' code trains it (github Cranial-XIX/FAMO, methods/weight_methods.py class FAMO,
// with min_losses = 0). Logits ξ (state.param, starting at 0), z = softmax(ξ),
// D_t = L_t + 1e-8, c = Σ_t z_t/D_t; the network trains on Σ_t z_t·log(D_t)/c, whose gradient
// with respect to L_t is the seed
//   seeds_t = z_t/(c·D_t) = softmax(ξ − log D)_t        (Σ_t seeds_t = 1),
// computed in the second form so that no quotient under- or overflows. After a step, with the
// losses L' after it:
//   δ_t = log D_t − log D'_t,   ∂ξ = J_softmax(ξ)ᵀ·δ = z ⊙ (δ − <z, δ>),
// and one Adam step on ξ (PyTorch's Adam, L2 weight decay γ): ξ −= Adam(∂ξ + γ·ξ), so a task
// whose log-loss fell more than the z-weighted average loses weight. Defaults from the
// authors' code: lr 0.025 (w_lr), γ = 1e-3 (their NYUv2/CelebA/QM9 runs; settings.decay).
//
// Deviation: the authors evaluate L' by a second forward pass over the SAME batch after the
// optimiser step. There is no extra forward here: L' is the NEXT step's batch losses. At each
// seeds() call, before the new seeds, ξ is updated from state.reference (the previous step's
// losses) and the current ones, which are then remembered (have_reference = 1). δ therefore
// also carries the difference between two batches (noise with mean ~0 across an epoch), and
// the update lands one step later than the authors' (it is what the next step would use in
// theirs too). Their gradient clipping of the shared parameters (max_norm) is the optimiser's
// business here and not part of the balancer.
//
// Bounds: D is kept in [1e-8, 1e300] (a NaN or negative loss counts as 0), so every log and δ
// is finite; the seeds are clamped to [1e-6, 1e6] (clamp_weight) so that a task whose share
// would underflow keeps a positive one. Coefficients stay 1 (FAMO is a loss weighting).
#pragma once

namespace polytask::kernels::balance {

// log D_t = log(L_t − min_t + 1e-8) with min_t = 0, D kept in [1e-8, 1e300].
POLYTASK_HOST_DEVICE inline double famo_log_gap(double loss) {
  double d = loss + 1e-8;
  if (!(d >= 1e-8)) d = 1e-8;  // NaN or a negative loss
  if (d > 1e300) d = 1e300;    // +inf
  return log(d);
}

// softmax(x) of n numbers into out, with the largest subtracted first.
POLYTASK_HOST_DEVICE inline void famo_softmax(int n, const double* x, double* out) {
  double largest = -INFINITY, sum = 0;
  for (int t = 0; t < n; ++t) largest = x[t] > largest ? x[t] : largest;
  for (int t = 0; t < n; ++t) sum += (out[t] = exp(x[t] - largest));
  for (int t = 0; t < n; ++t) out[t] /= sum;
}

POLYTASK_HOST_DEVICE inline void famo_seeds(const Settings& s, State& st, const double* losses,
                                            uint64_t, double* seeds) {
  const int n = s.tasks;
  double log_gap[kMaxTasks] = {}, z[kMaxTasks] = {}, x[kMaxTasks] = {};
  for (int t = 0; t < n; ++t) log_gap[t] = famo_log_gap(losses[t]);
  if (st.have_reference != 0) {
    // The authors' update(curr_loss), with this batch's losses as the "after" losses.
    double delta[kMaxTasks], grad[kMaxTasks], mean = 0;
    famo_softmax(n, st.param, z);
    for (int t = 0; t < n; ++t) {
      delta[t] = famo_log_gap(st.reference[t]) - log_gap[t];
      mean += z[t] * delta[t];
    }
    for (int t = 0; t < n; ++t) grad[t] = z[t] * (delta[t] - mean);
    adam_step(st, s.lr, s.decay, n, st.param, grad);
  }
  for (int t = 0; t < n; ++t) st.reference[t] = losses[t];
  st.have_reference = 1;
  for (int t = 0; t < n; ++t) x[t] = st.param[t] - log_gap[t];
  famo_softmax(n, x, seeds);
  for (int t = 0; t < n; ++t) seeds[t] = clamp_weight(seeds[t]);
}

POLYTASK_HOST_DEVICE inline void famo_combine(const Settings&, State&, const double*, const double*,
                                              const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
