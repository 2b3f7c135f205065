// static (Keras' loss_weights): seed_t = w_t (state.base: the configured weights, which
// set_weight may change), dz = Σ_t g_t.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void static_seeds(const Settings& s, State& st, const double*, uint64_t,
                                              double* seeds) {
  base_seeds(s, st, seeds);
}
POLYTASK_HOST_DEVICE inline void static_combine(const Settings&, State&, const double*,
                                                const double*, const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
