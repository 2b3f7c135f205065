// UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"): each task
// gradient at z is projected onto the dual cone of all of them (the directions that conflict
// with no task) and the projections are averaged, as TorchJD's UPGrad() does by default.
//
// Seeds are the configured weights w_t (set_weight changes them for the next step, as for
// static and PCGrad), so the rows UPGrad combines are w_t·∂L_t/∂z; with every w_t = 1 it is
// TorchJD's UPGrad() on the Jacobian of the task losses at z. The coefficients are TorchJD's
// weights: c_t = (1/T)·Σ_i v^(i)_t >= 1/T, so dz is on the scale of the mean gradient (half the
// static sum's with two tasks). The per-step arithmetic, the QP solver and the exact defaults
// (trace normalisation, 1e-4 regularisation) are kernels/balance/upgrad.h. Nothing is learned:
// a checkpoint keeps no state.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class UpGrad final : public ProgramBalancer {
 public:
  UpGrad() : ProgramBalancer(kb::Strategy::UpGrad) {}
  std::string name() const override { return "upgrad"; }
  bool accepts_set_weight() const override { return true; }

 protected:
  void init_state() override {
    // What a step gives equal gradients: their mean, c_t = 1/T.
    for (size_t t = 0; t < tasks_.size(); ++t) st_.weights[t] = st_.base[t] / double(tasks_.size());
  }
};

}  // namespace

std::unique_ptr<Balancer> make_upgrad(const BalancerOptions&) { return std::make_unique<UpGrad>(); }

}  // namespace polytask::balancing
