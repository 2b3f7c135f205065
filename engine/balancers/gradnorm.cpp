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
#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "engine/balancers/scalar_adam.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class GradNorm final : public Balancer {
 public:
  GradNorm(double alpha, double lr) : alpha_(alpha) { adam_.lr = lr; }
  std::string name() const override { return "gradnorm"; }
  std::string describe() const override {
    return cat("gradnorm (alpha ", alpha_, ", lr ", adam_.lr, ")");
  }

  void loss_seeds(uint64_t, std::span<const double> losses, std::span<double> seeds) override {
    if (!have_initial_loss_) {
      // L_t(0), kept away from 0 so that L_t / L_t(0) stays finite.
      for (size_t t = 0; t < w_.size(); ++t) initial_loss_[t] = std::fmax(losses[t], 1e-30);
      have_initial_loss_ = true;
    }
    std::copy(w_.begin(), w_.end(), weights_.begin());
    std::copy(w_.begin(), w_.end(), seeds.begin());
  }

  void combine(const TaskGradients& g, const Tensor& dz) override {
    if (dz.defined()) plain_sum(g.grads, dz);
    const size_t tasks = w_.size();
    // L̃_t in log space, relative to the largest, so that extreme losses (1e300 after 1e-30)
    // cannot overflow: r_t = L̃_t / mean(L̃) is unchanged by the common factor.
    double largest = -INFINITY;
    for (size_t t = 0; t < tasks; ++t) {
      ratio_[t] = std::log(std::fmax(g.losses[t], 1e-300)) - std::log(initial_loss_[t]);
      largest = std::fmax(largest, ratio_[t]);
    }
    double mean_ratio = 0, mean_norm = 0;
    for (size_t t = 0; t < tasks; ++t) {
      ratio_[t] = std::exp(ratio_[t] - largest);
      mean_ratio += ratio_[t] / double(tasks);
      norm_[t] = std::sqrt(g.gram[t * tasks + t]);
      mean_norm += norm_[t] / double(tasks);
    }
    for (size_t t = 0; t < tasks; ++t) {
      const double r = mean_ratio > 0 ? ratio_[t] / mean_ratio : 1.0;
      const double target = mean_norm * std::pow(r, alpha_);
      const double difference = norm_[t] - target;
      const double sign = difference > 0 ? 1.0 : difference < 0 ? -1.0 : 0.0;
      grad_[t] = sign * norm_[t] / g.seeds[t];
    }
    adam_.step(w_, grad_);
    renormalise();
  }

  NamedTensors state() const override {
    return {
        {"balancer.gradnorm.weights", vector_tensor(w_)},
        {"balancer.gradnorm.initial_loss", vector_tensor(initial_loss_)},
        {"balancer.gradnorm.have_initial_loss", vector_tensor({have_initial_loss_ ? 1.0 : 0.0})},
        {"balancer.gradnorm.adam_m", vector_tensor(adam_.m)},
        {"balancer.gradnorm.adam_v", vector_tensor(adam_.v)},
        {"balancer.gradnorm.adam_steps", vector_tensor({double(adam_.steps)})}};
  }
  void load_state(const NamedTensors& state) override {
    const std::string p = "balancer.gradnorm.";
    expect_only(state, {p + "weights", p + "initial_loss", p + "have_initial_loss", p + "adam_m",
                        p + "adam_v", p + "adam_steps"});
    const size_t n = tasks_.size();
    auto w = read_vector(state, p + "weights", n);
    auto l0 = read_vector(state, p + "initial_loss", n);
    const bool have = read_vector(state, p + "have_initial_loss", 1)[0] != 0;
    auto m = read_vector(state, p + "adam_m", n);
    auto v = read_vector(state, p + "adam_v", n);
    const double steps = read_vector(state, p + "adam_steps", 1)[0];
    for (double x : w)
      if (!(x > 0)) fail("balancer 'gradnorm': weight ", x, " in the checkpoint is not positive");
    if (!(steps >= 0 && steps == std::floor(steps)))
      fail("balancer 'gradnorm': invalid step count ", steps, " in the checkpoint");
    w_ = w, initial_loss_ = l0, have_initial_loss_ = have, adam_.m = m, adam_.v = v;
    adam_.steps = int64_t(steps);
    weights_ = w_;
  }

 protected:
  void on_bind() override {
    require_positive_weights();
    const size_t n = tasks_.size();
    w_ = initial_;
    total_ = 0;
    for (double w : initial_) total_ += w;
    initial_loss_.assign(n, 1.0);
    ratio_.assign(n, 0.0), norm_.assign(n, 0.0), grad_.assign(n, 0.0);
    adam_.resize(n);
  }

 private:
  void renormalise() {
    double sum = 0;
    for (double& w : w_) sum += (w = clamp_weight(w));
    for (double& w : w_) w = clamp_weight(w * total_ / sum);
  }

  double alpha_;
  double total_ = 0;  // Σ_t w_t, kept
  std::vector<double> w_, initial_loss_, ratio_, norm_, grad_;
  bool have_initial_loss_ = false;
  ScalarAdam adam_;
};

}  // namespace

std::unique_ptr<Balancer> make_gradnorm(const BalancerOptions& options) {
  return std::make_unique<GradNorm>(options.alpha, balancer_learning_rate(options));
}

}  // namespace polytask::balancing
