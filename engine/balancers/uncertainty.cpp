// Uncertainty weighting (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using Uncertainty to
// Weigh Losses"), in the form LibMTL uses for every task type:
//   L = Σ_t exp(−s_t)·L_t + s_t,   s_t = log σ_t²  learned with the model.
// (The paper writes 1/(2σ²)·L + log σ for regression and 1/σ²·L + log σ for classification;
// the single form above differs by constant factors that the learned s_t absorbs, and it is
// what LibMTL and most reimplementations train.)
//
// Each step: seeds_t = exp(−s_t), so the network gets ∂L/∂θ = Σ_t exp(−s_t)·∂L_t/∂θ; then s
// takes one Adam step (its own, with the balancer's learning rate: by default the network's)
// on ∂L/∂s_t = 1 − exp(−s_t)·L_t, whose fixed point is exp(−s_t) = 1/L_t. s starts at
// −log w_t, so the first step uses the configured weights, and stays in
// [−log kMaxBalancedWeight, −log kMinBalancedWeight]: the weights stay finite and positive
// whatever the losses.
#include <algorithm>
#include <cmath>

#include "engine/balancers/scalar_adam.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Uncertainty final : public Balancer {
 public:
  explicit Uncertainty(double lr) { adam_.lr = lr; }
  std::string name() const override { return "uncertainty"; }
  std::string describe() const override { return cat("uncertainty (lr ", adam_.lr, ")"); }

  void loss_seeds(uint64_t, std::span<const double> losses, std::span<double> seeds) override {
    for (size_t t = 0; t < s_.size(); ++t) {
      weights_[t] = seeds[t] = std::exp(-s_[t]);
      grad_[t] = 1 - weights_[t] * losses[t];
    }
    adam_.step(s_, grad_);
    for (double& s : s_)
      s = std::clamp(s, -std::log(kMaxBalancedWeight), -std::log(kMinBalancedWeight));
  }

  NamedTensors state() const override {
    return {{"balancer.uncertainty.log_variance", vector_tensor(s_)},
            {"balancer.uncertainty.adam_m", vector_tensor(adam_.m)},
            {"balancer.uncertainty.adam_v", vector_tensor(adam_.v)},
            {"balancer.uncertainty.adam_steps", vector_tensor({double(adam_.steps)})},
            {"balancer.uncertainty.weights", vector_tensor(weights_)}};
  }
  void load_state(const NamedTensors& state) override {
    const std::string p = "balancer.uncertainty.";
    expect_only(state,
                {p + "log_variance", p + "adam_m", p + "adam_v", p + "adam_steps", p + "weights"});
    const size_t n = tasks_.size();
    auto s = read_vector(state, p + "log_variance", n);
    auto m = read_vector(state, p + "adam_m", n);
    auto v = read_vector(state, p + "adam_v", n);
    const double steps = read_vector(state, p + "adam_steps", 1)[0];
    auto w = read_vector(state, p + "weights", n);
    if (!(steps >= 0 && steps == std::floor(steps)))
      fail("balancer 'uncertainty': invalid step count ", steps, " in the checkpoint");
    s_ = s, adam_.m = m, adam_.v = v, adam_.steps = int64_t(steps), weights_ = w;
  }

 protected:
  void on_bind() override {
    require_positive_weights();
    s_.resize(tasks_.size());
    for (size_t t = 0; t < s_.size(); ++t) s_[t] = -std::log(clamp_weight(initial_[t]));
    grad_.assign(tasks_.size(), 0.0);
    adam_.resize(tasks_.size());
  }

 private:
  std::vector<double> s_, grad_;
  ScalarAdam adam_;
};

}  // namespace

std::unique_ptr<Balancer> make_uncertainty(const BalancerOptions& options) {
  return std::make_unique<Uncertainty>(balancer_learning_rate(options));
}

}  // namespace polytask::balancing
