// dwa: the weights in state.base, set once per epoch on the host from the epochs' mean losses
// (engine/balancers/dwa.cpp); a step seeds with them and sums.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void dwa_seeds(const Settings& s, State& st, const double*, uint64_t,
                                           double* seeds) {
  base_seeds(s, st, seeds);
}
POLYTASK_HOST_DEVICE inline void dwa_combine(const Settings&, State&, const double*, const double*,
                                             const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
