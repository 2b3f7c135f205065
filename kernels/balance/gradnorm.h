// GradNorm (Chen et al. 2018). The network trains on Σ_t w_t·L_t (w: state.base); the weights
// train on
//   L_grad = Σ_t | G_t − Ḡ·r_t^α |,   G_t = ‖∂(w_t·L_t)/∂z‖,   Ḡ = mean_t G_t,
//   r_t = L̃_t / mean(L̃),   L̃_t = L_t / L_t(0)   (state.reference: the first step's losses),
// with the target Ḡ·r_t^α held constant, so ∂L_grad/∂w_t = sign(G_t − Ḡ·r_t^α)·G_t/w_t; one
// Adam step per step, then the weights are clamped and renormalised to their starting sum.
// The norms are taken at the shared representation z (LibMTL's rep_grad), see
// engine/balancers/gradnorm.cpp.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void gradnorm_seeds(const Settings& s, State& st, const double* losses,
                                                uint64_t, double* seeds) {
  if (st.have_reference == 0) {
    // L_t(0), kept away from 0 so that L_t / L_t(0) stays finite.
    for (int t = 0; t < s.tasks; ++t) st.reference[t] = losses[t] > 1e-30 ? losses[t] : 1e-30;
    st.have_reference = 1;
  }
  base_seeds(s, st, seeds);
}

POLYTASK_HOST_DEVICE inline void gradnorm_combine(const Settings& s, State& st, const double* gram,
                                                  const double* losses, const double* seeds,
                                                  uint64_t, double*) {
  const int n = s.tasks;
  double ratio[kMaxTasks] = {}, norm[kMaxTasks] = {}, grad[kMaxTasks] = {};
  // L̃_t in log space, relative to the largest, so that extreme losses (1e300 after 1e-30)
  // cannot overflow: r_t = L̃_t / mean(L̃) is unchanged by the common factor.
  double largest = -INFINITY;
  for (int t = 0; t < n; ++t) {
    ratio[t] = log(losses[t] > 1e-300 ? losses[t] : 1e-300) - log(st.reference[t]);
    largest = ratio[t] > largest ? ratio[t] : largest;
  }
  double mean_ratio = 0, mean_norm = 0;
  for (int t = 0; t < n; ++t) {
    ratio[t] = exp(ratio[t] - largest);
    mean_ratio += ratio[t] / double(n);
    norm[t] = sqrt(gram[t * n + t]);
    mean_norm += norm[t] / double(n);
  }
  for (int t = 0; t < n; ++t) {
    const double r = mean_ratio > 0 ? ratio[t] / mean_ratio : 1.0;
    const double difference = norm[t] - mean_norm * pow(r, s.alpha);
    const double sign = difference > 0 ? 1.0 : difference < 0 ? -1.0 : 0.0;
    grad[t] = sign * norm[t] / seeds[t];
  }
  adam_step(st, s.lr, 0, n, st.base, grad);
  double total = 0, sum = 0;
  for (int t = 0; t < n; ++t) total += s.configured[t];
  for (int t = 0; t < n; ++t) sum += (st.base[t] = clamp_weight(st.base[t]));
  for (int t = 0; t < n; ++t) st.base[t] = clamp_weight(st.base[t] * total / sum);
}

}  // namespace polytask::kernels::balance
