// Uncertainty weighting (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using Uncertainty to
// Weigh Losses"), in the form LibMTL uses for every task type:
//   L = Σ_t exp(−s_t)·L_t + s_t,   s_t = log σ_t²  learned with the model.
// (The paper writes 1/(2σ²)·L + log σ for regression and 1/σ²·L + log σ for classification;
// the single form above differs by constant factors that the learned s_t absorbs, and it is
// what LibMTL and most reimplementations train.)
//
// The per-step arithmetic is kernels/balance/uncertainty.h. Each step: seeds_t = exp(−s_t), so the network gets ∂L/∂θ = Σ_t exp(−s_t)·∂L_t/∂θ; then s
// takes one Adam step (its own, with the balancer's learning rate: by default the network's)
// on ∂L/∂s_t = 1 − exp(−s_t)·L_t, whose fixed point is exp(−s_t) = 1/L_t. s starts at
// −log w_t, so the first step uses the configured weights, and stays in
// [−log kMaxBalancedWeight, −log kMinBalancedWeight]: the weights stay finite and positive
// whatever the losses.
#include <cmath>

#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Uncertainty final : public ProgramBalancer {
 public:
  explicit Uncertainty(double lr) : ProgramBalancer(kb::Strategy::Uncertainty) {
    settings_.lr = lr;
  }
  std::string name() const override { return "uncertainty"; }
  std::string describe() const override { return cat("uncertainty (lr ", settings_.lr, ")"); }

 protected:
  void init_state() override {
    require_positive_weights();
    for (size_t t = 0; t < tasks_.size(); ++t) st_.param[t] = -std::log(clamp_weight(initial_[t]));
  }
  std::vector<Field> fields() const override {
    std::vector<Field> f = learned("log_variance");
    f.push_back({"weights", &kb::State::weights});
    return f;
  }
};

}  // namespace

std::unique_ptr<Balancer> make_uncertainty(const BalancerOptions& options) {
  return std::make_unique<Uncertainty>(balancer_learning_rate(options));
}

}  // namespace polytask::balancing
