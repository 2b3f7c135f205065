// Nash-MTL (Navon et al. 2022, "Multi-Task Learning as a Bargaining Game"): dz = Σ_t α_t g_t
// with α the Nash bargaining solution of the task gradients at the shared representation z,
//   α > 0,   α_t·(Gα)_t = 1,   G the Gram matrix,
// the α the authors' code (and torchjd's NashMTL) finds and uses unscaled. Solved exactly by
// damped Newton with a warm start from the last step (kernels/balance/nash_mtl.h), where the
// authors run 20 convex approximations with CVXPY. ‖dz‖² = αᵀGα = T whatever the gradients'
// scale: the learning rate sets the trunk's step.
//
// Deviations from the authors' code, which the engine's one backward through the trunk
// imposes or which it has no counterpart for:
//   - α scales the trunk's gradient only; each head trains on its configured-weight loss
//     (seeds: the configured weights, which do not change dz: α_t scales with 1/w_t). The
//     authors backpropagate Σ_t α_t·L_t through the heads too.
//   - no clipping of the shared parameters' gradient norm (their max_norm = 1.0): the engine
//     has no gradient clipping.
//   - α is recomputed every step (their update_weights_every = 1, the default).
//   - a task with a zero gradient gets α_t = 0; opposite gradients (no Nash solution) get
//     the bounded α of the regularised problem.
// The checkpoint keeps the solver's warm start, so a resumed run takes the same steps.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class NashMtl final : public ProgramBalancer {
 public:
  NashMtl() : ProgramBalancer(kb::Strategy::NashMtl) {}
  std::string name() const override { return "nash-mtl"; }

 protected:
  std::vector<Field> fields() const override {
    // warm_alpha: α_t·‖g_t‖ of the last step (0 before the first).
    return {{"warm_alpha", &kb::State::warm}, {"weights", &kb::State::weights}};
  }
  void check_loaded(const kb::State& s) const override {
    for (size_t t = 0; t < tasks_.size(); ++t)
      if (!(s.warm[t] >= 0))
        fail("balancer 'nash-mtl': warm_alpha ", s.warm[t], " in the checkpoint is negative");
  }
};

}  // namespace

std::unique_ptr<Balancer> make_nash_mtl(const BalancerOptions&) {
  return std::make_unique<NashMtl>();
}

}  // namespace polytask::balancing
