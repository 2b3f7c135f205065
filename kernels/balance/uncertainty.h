// uncertainty (Kendall, Gal & Cipolla 2018), in the form LibMTL trains for every task type:
//   L = Σ_t exp(−s_t)·L_t + s_t,   s_t = log σ_t² (state.param), learned.
// Each step seeds with exp(−s_t) and then takes one Adam step on ∂L/∂s_t = 1 − exp(−s_t)·L_t
// (fixed point exp(−s_t) = 1/L_t), with s_t kept where exp(−s_t) stays in [1e-6, 1e6].
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void uncertainty_seeds(const Settings& s, State& st,
                                                   const double* losses, uint64_t, double* seeds) {
  double grad[kMaxTasks] = {};
  for (int t = 0; t < s.tasks; ++t) {
    seeds[t] = exp(-st.param[t]);
    grad[t] = 1 - seeds[t] * losses[t];
  }
  adam_step(st, s.lr, 0, s.tasks, st.param, grad);
  const double lowest = -log(1e6), highest = -log(1e-6);
  for (int t = 0; t < s.tasks; ++t)
    st.param[t] = st.param[t] < lowest ? lowest : (st.param[t] > highest ? highest : st.param[t]);
}
POLYTASK_HOST_DEVICE inline void uncertainty_combine(const Settings&, State&, const double*,
                                                     const double*, const double*, uint64_t,
                                                     double*) {}

}  // namespace polytask::kernels::balance
