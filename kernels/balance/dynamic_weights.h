// dynamic: the weights in state.base, changed once per epoch on the host (the schedule or the
// lagging-task rule, engine/balancers/dynamic_weights.cpp). A step keeps the first batch's
// losses, the rule's yardstick, in state.reference.
#pragma once

namespace polytask::kernels::balance {

POLYTASK_HOST_DEVICE inline void dynamic_seeds(const Settings& s, State& st, const double* losses,
                                               uint64_t, double* seeds) {
  if (st.have_reference == 0) {
    for (int t = 0; t < s.tasks; ++t) st.reference[t] = losses[t];
    st.have_reference = 1;
  }
  base_seeds(s, st, seeds);
}
POLYTASK_HOST_DEVICE inline void dynamic_combine(const Settings&, State&, const double*,
                                                 const double*, const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
