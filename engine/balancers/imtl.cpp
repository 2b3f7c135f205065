// IMTL (Liu et al. 2021, "Towards Impartial Multi-task Learning", ICLR), as LibMTL implements
// it (weighting/IMTL.py), on the per-task gradients at the shared representation z:
//   IMTL-L  learned loss scales s_t: task t trains on e^{s_t}·L_t − s_t (seeds e^{s_t}), s
//           by its own Adam (the balancer's learning rate, default 1e-3) on
//           ∂/∂s_t = e^{s_t}·L_t − 1, starting at s_t = log w_t (the configured weights);
//   IMTL-G  dz = Σ_t α_t g_t, Σ_t α_t = 1, with equal projections of dz onto every unit task
//           gradient: α_{2..T} = g_1·Uᵀ·(D·Uᵀ)⁻¹, D = (g_1 − g_t)ᵀ, U = (u_1 − u_t)ᵀ.
// Option imtl_mode: hybrid (the default: both, LibMTL's IMTL, with IMTL-G on the scaled
// gradients), gradient (IMTL-G on the configured-weight gradients), loss (IMTL-L, plain sum).
// The arithmetic, with what happens for zero or parallel gradients, is kernels/balance/imtl.h.
// As in LibMTL, the heads train on the scaled losses e^{s_t}·L_t (α only weighs the trunk's
// gradient), and s_t's gradient does not depend on α.
#include <cmath>

#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Imtl final : public ProgramBalancer {
 public:
  Imtl(const std::string& mode, double lr) : ProgramBalancer(kb::Strategy::Imtl), mode_(mode) {
    settings_.mode = mode == "gradient" ? 1 : (mode == "loss" ? 2 : 0);
    settings_.lr = lr;
  }
  std::string name() const override { return "imtl"; }
  std::string describe() const override {
    if (settings_.mode == 1) return "imtl (mode gradient)";
    return cat("imtl (mode ", mode_, ", lr ", settings_.lr, ")");
  }

 protected:
  void init_state() override {
    require_positive_weights();
    for (size_t t = 0; t < tasks_.size(); ++t) st_.param[t] = std::log(clamp_weight(initial_[t]));
  }
  std::vector<Field> fields() const override {
    if (settings_.mode == 1) return {};  // IMTL-G alone learns nothing
    std::vector<Field> f = learned("loss_scale");
    f.push_back({"weights", &kb::State::weights});
    return f;
  }
  void check_loaded(const kb::State& s) const override {
    // The seeds are e^{s_t}: a scale outside the bounds a step keeps would overflow them.
    for (size_t t = 0; t < tasks_.size(); ++t)
      if (!(std::fabs(s.param[t]) <= std::log(1e6) + 1e-9))
        fail("balancer 'imtl': loss_scale ", s.param[t],
             " in the checkpoint is outside [log 1e-6, log 1e6]");
  }

 private:
  std::string mode_;
};

}  // namespace

std::unique_ptr<Balancer> make_imtl(const BalancerOptions& options) {
  return std::make_unique<Imtl>(options.imtl_mode, balancer_learning_rate(options));
}

}  // namespace polytask::balancing
