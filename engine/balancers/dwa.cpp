// Dynamic Weight Average (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with
// Attention"): a task whose loss falls more slowly gets more weight in the next epoch.
//   r_t = L_t(e−1) / L_t(e−2),   w_t(e) = K · c_t·exp(r_t/τ) / Σ_i c_i·exp(r_i/τ)
// with L_t the task's mean training loss over an epoch, τ the temperature (default 2), c_t the
// configured weights and K = Σ_t c_t. With all c_t = 1 (the paper's setting) this is exactly
// DWA, w = T·softmax(r/τ); other configured weights act as a prior that DWA rescales. The first
// two epochs use the configured weights (no loss history yet). A step seeds with the weights
// (kernels/balance/dwa.h).
#include <algorithm>
#include <cmath>

#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Dwa final : public ProgramBalancer {
 public:
  explicit Dwa(double temperature)
      : ProgramBalancer(kb::Strategy::Dwa), temperature_(temperature) {}
  std::string name() const override { return "dwa"; }
  std::string describe() const override { return cat("dwa (temperature ", temperature_, ")"); }

  void end_epoch(const EpochSummary& summary) override {
    const size_t n = tasks_.size();
    if (summary.train_loss.size() != n)
      fail("balancer 'dwa': ", summary.train_loss.size(), " losses for ", n, " tasks");
    std::copy(st_.reference, st_.reference + n, st_.sums);
    std::copy(summary.train_loss.begin(), summary.train_loss.end(), st_.reference);
    st_.sum_steps += 1;
    state_changed();
    if (st_.sum_steps < 2) return;
    std::vector<double> logits(n);
    double largest = -INFINITY;
    for (size_t t = 0; t < n; ++t) {
      // r in [0, 1e6]: a loss that grew without bound still gives a finite softmax.
      double r = st_.sums[t] > 0 ? std::fmin(st_.reference[t] / st_.sums[t], 1e6) : 1.0;
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
    for (size_t t = 0; t < n; ++t)
      st_.base[t] = st_.weights[t] = weights_[t] = clamp_weight(total * logits[t] / sum);
  }

 protected:
  void init_state() override { require_positive_weights(); }
  // The weights in st_.base; the last two epochs' mean training losses in st_.reference (last)
  // and st_.sums (the one before); the epochs seen in st_.sum_steps.
  std::vector<Field> fields() const override {
    return {{"weights", &kb::State::base},
            {"epochs", nullptr, &kb::State::sum_steps},
            {"last_loss", &kb::State::reference},
            {"previous_loss", &kb::State::sums}};
  }
  void check_loaded(const kb::State& s) const override {
    check_count(name(), "epoch count", s.sum_steps);
  }

 private:
  double temperature_;
};

}  // namespace

std::unique_ptr<Balancer> make_dwa(const BalancerOptions& options) {
  return std::make_unique<Dwa>(options.temperature);
}

}  // namespace polytask::balancing
