// GradNorm (Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing in
// Deep Multitask Networks"). The network trains on Σ_t w_t·L_t; the weights w_t train on
//   L_grad = Σ_t | G_t − Ḡ·r_t^α |,   G_t = ‖∂(w_t·L_t)/∂z‖,   Ḡ = mean_t G_t,
//   r_t = L̃_t / mean(L̃),   L̃_t = L_t / L_t(0)   (the loss at the first step),
// with the target Ḡ·r_t^α held constant, so ∂L_grad/∂w_t = sign(G_t − Ḡ·r_t^α)·G_t/w_t.
//
// The gradient norms are taken at the shared representation z — the output of the last shared
// layer, where the fan-out already holds every task's gradient — rather than at that layer's
// weights as in the paper: this needs no extra backward per task (the fan-out's gradient
// buffers are read as they are), and it is the "rep_grad" choice LibMTL offers too. The norm
// is over the whole (batch, *z) tensor.
//
// After each step the weights take one Adam step (the balancer's own, at its learning rate),
// are clamped to [kMinBalancedWeight, kMaxBalancedWeight] and renormalised so that Σ_t w_t
// keeps its starting value (T when the configured weights are all 1, as in the paper). The new
// weights seed the next step.
// The per-step arithmetic is kernels/balance/gradnorm.h.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class GradNorm final : public ProgramBalancer {
 public:
  GradNorm(double alpha, double lr) : ProgramBalancer(kb::Strategy::GradNorm) {
    settings_.alpha = alpha;
    settings_.lr = lr;
  }
  std::string name() const override { return "gradnorm"; }
  std::string describe() const override {
    return cat("gradnorm (alpha ", settings_.alpha, ", lr ", settings_.lr, ")");
  }

 protected:
  void init_state() override {
    require_positive_weights();
    for (size_t t = 0; t < tasks_.size(); ++t) st_.reference[t] = 1;
  }
  std::vector<Field> fields() const override {
    return {{"weights", &kb::State::base},
            {"initial_loss", &kb::State::reference},
            {"have_initial_loss", nullptr, &kb::State::have_reference},
            {"adam_m", &kb::State::adam_m},
            {"adam_v", &kb::State::adam_v},
            {"adam_steps", nullptr, &kb::State::adam_steps}};
  }
  void check_loaded(const kb::State& s) const override {
    for (size_t t = 0; t < tasks_.size(); ++t)
      if (!(s.base[t] > 0))
        fail("balancer 'gradnorm': weight ", s.base[t], " in the checkpoint is not positive");
  }
};

}  // namespace

std::unique_ptr<Balancer> make_gradnorm(const BalancerOptions& options) {
  return std::make_unique<GradNorm>(options.alpha, balancer_learning_rate(options));
}

}  // namespace polytask::balancing
