// Dynamic Weight Average (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with
// Attention"): a task whose loss falls more slowly gets more weight in the next epoch.
//   r_t = L_t(e−1) / L_t(e−2),   w_t(e) = K · c_t·exp(r_t/τ) / Σ_i c_i·exp(r_i/τ)
// with L_t the task's mean training loss over an epoch, τ the temperature (default 2), c_t the
// configured weights and K = Σ_t c_t. With all c_t = 1 (the paper's setting) this is exactly
// DWA, w = T·softmax(r/τ); other configured weights act as a prior that DWA rescales. The first
// two epochs use the configured weights (no loss history yet).
#include <algorithm>
#include <cmath>

#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Dwa final : public Balancer {
 public:
  explicit Dwa(double temperature) : temperature_(temperature) {}
  std::string name() const override { return "dwa"; }
  std::string describe() const override { return cat("dwa (temperature ", temperature_, ")"); }

  void loss_seeds(uint64_t, std::span<const double>, std::span<double> seeds) override {
    std::copy(weights_.begin(), weights_.end(), seeds.begin());
  }

  void end_epoch(const EpochSummary& summary) override {
    const size_t n = tasks_.size();
    if (summary.train_loss.size() != n)
      fail("balancer 'dwa': ", summary.train_loss.size(), " losses for ", n, " tasks");
    previous_ = last_;
    last_ = summary.train_loss;
    ++epochs_;
    if (epochs_ < 2) return;
    std::vector<double> logits(n);
    double largest = -INFINITY;
    for (size_t t = 0; t < n; ++t) {
      // r in [0, 1e6]: a loss that grew without bound still gives a finite softmax.
      double r = previous_[t] > 0 ? std::fmin(last_[t] / previous_[t], 1e6) : 1.0;
      if (std::isnan(r)) r = 1.0;
      logits[t] = r / temperature_;
      largest = std::fmax(largest, logits[t]);
    }
    double sum = 0, total = 0;
    for (size_t t = 0; t < n; ++t) {
      logits[t] = initial_[t] * std::exp(logits[t] - largest);
      sum += logits[t];
      total += initial_[t];
    }
    for (size_t t = 0; t < n; ++t) weights_[t] = clamp_weight(total * logits[t] / sum);
  }

  NamedTensors state() const override {
    return {{"balancer.dwa.weights", vector_tensor(weights_)},
            {"balancer.dwa.epochs", vector_tensor({double(epochs_)})},
            {"balancer.dwa.last_loss", vector_tensor(last_)},
            {"balancer.dwa.previous_loss", vector_tensor(previous_)}};
  }
  void load_state(const NamedTensors& state) override {
    const std::string p = "balancer.dwa.";
    expect_only(state, {p + "weights", p + "epochs", p + "last_loss", p + "previous_loss"});
    const size_t n = tasks_.size();
    auto w = read_vector(state, p + "weights", n);
    const double epochs = read_vector(state, p + "epochs", 1)[0];
    auto last = read_vector(state, p + "last_loss", n);
    auto previous = read_vector(state, p + "previous_loss", n);
    if (!(epochs >= 0 && epochs == std::floor(epochs)))
      fail("balancer 'dwa': invalid epoch count ", epochs, " in the checkpoint");
    weights_ = w, epochs_ = int64_t(epochs), last_ = last, previous_ = previous;
  }

 protected:
  void on_bind() override {
    require_positive_weights();
    last_.assign(tasks_.size(), 0.0);
    previous_.assign(tasks_.size(), 0.0);
  }

 private:
  double temperature_;
  int64_t epochs_ = 0;                   // epochs seen
  std::vector<double> last_, previous_;  // mean training losses of the last two epochs
};

}  // namespace

std::unique_ptr<Balancer> make_dwa(const BalancerOptions& options) {
  return std::make_unique<Dwa>(options.temperature);
}

}  // namespace polytask::balancing
