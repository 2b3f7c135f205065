// PLACEHOLDER until the strategy lands: seeds with the configured weights, plain sum.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void imtl_seeds(const Settings& s, State& st, const double*, uint64_t,
                                            double* seeds) {
  base_seeds(s, st, seeds);
}
POLYTASK_HOST_DEVICE inline void imtl_combine(const Settings&, State&, const double*, const double*,
                                              const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
