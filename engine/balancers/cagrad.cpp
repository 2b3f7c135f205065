// CAGrad (Liu, Liu, Jin, Stone & Liu 2021, "Conflict-Averse Gradient Descent for Multi-task
// Learning"): the trunk descends along the direction within c·‖g0‖ of the mean gradient g0
// that most improves the worst task,
//   d = argmax_{‖d − g0‖ <= c·‖g0‖} min_t <g_t, d>  =  g0 + λ·g_w,
// with w the solution of the dual on the simplex, g_w = Σ_t w_t g_t and λ = c·‖g0‖/‖g_w‖,
// applied as d/(1 + c²) (the paper's Algorithm 1 and LibMTL's CAGrad with rescale = 1):
// dz = Σ_t c_t g_t, c_t = (1/T + λ·w_t)/(1 + c²). The gradients are taken at the shared
// representation z (LibMTL's CAGrad refuses rep_grad; here z is where the per-task gradients
// are), seeded with the configured loss weights, so each head trains on its weighted loss.
// Option c (default 0.4, the paper's value for its multi-task experiments; LibMTL's default
// calpha is 0.5). The dual is solved exactly (kernels/balance/cagrad.h, with the guards that
// replace LibMTL's absolute 1e-8s); the weights logged are seed_t·c_t.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class CaGrad final : public ProgramBalancer {
 public:
  explicit CaGrad(double c) : ProgramBalancer(kb::Strategy::CaGrad) { settings_.c = c; }
  std::string name() const override { return "cagrad"; }
  std::string describe() const override { return cat("cagrad (c ", settings_.c, ")"); }

 protected:
  void init_state() override {
    // What a step would use with equal gradients: w = 1/T, λ = c.
    const double t = double(tasks_.size()), c = settings_.c;
    for (size_t i = 0; i < tasks_.size(); ++i)
      st_.weights[i] = st_.base[i] * (1 + c) / (t * (1 + c * c));
  }
};

}  // namespace

std::unique_ptr<Balancer> make_cagrad(const BalancerOptions& options) {
  return std::make_unique<CaGrad>(options.c);
}

}  // namespace polytask::balancing
