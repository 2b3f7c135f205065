// Dynamic weights: loss weights that change once per epoch, in one of two ways.
//
// A schedule (options.schedule, e.g. `schedule = { parity = [1.0, 0.8, 0.5] }`): epoch e uses
// entry e−1 of a task's list, and its last entry after the list ends; tasks the schedule does
// not name keep their configured weight.
//
// Without a schedule, the rule of the Keras multi-output tutorial's TaskWeightScheduler, which
// after each epoch shifts weight toward the task that is doing worse on validation data. Task
// losses have different scales (cross-entropy over 10 classes vs 2, MSE), so "worse" is
// measured scale-free, as the fraction of its initial loss a task still has:
//   ρ_t = L_t(validation, epoch e) / L_t(first training batch)
// (the training loss when there is no validation split). The task with the largest ρ gains
// `step` (default 0.1), the one with the smallest ρ gives up `step`, and every weight stays in
// [0.1, 2.0], the tutorial's bounds. Equal ρ moves nothing.
#include <algorithm>
#include <cmath>

#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

constexpr double kLowest = 0.1, kHighest = 2.0;

class DynamicWeights final : public Balancer {
 public:
  DynamicWeights(double step, std::map<std::string, std::vector<double>> schedule)
      : step_(step), schedule_(std::move(schedule)) {}
  std::string name() const override { return "dynamic"; }
  std::string describe() const override {
    return schedule_.empty() ? cat("dynamic (step ", step_, ", weights in [0.1, 2])")
                             : "dynamic (schedule)";
  }

  void loss_seeds(uint64_t, std::span<const double> losses, std::span<double> seeds) override {
    if (!have_initial_loss_) {
      initial_loss_.assign(losses.begin(), losses.end());
      have_initial_loss_ = true;
    }
    std::copy(weights_.begin(), weights_.end(), seeds.begin());
  }

  void end_epoch(const EpochSummary& summary) override {
    epoch_ = summary.epoch;
    if (!schedule_.empty()) {
      apply_schedule(summary.epoch + 1);
      return;
    }
    const auto& losses =
        summary.validation_loss.empty() ? summary.train_loss : summary.validation_loss;
    const size_t n = tasks_.size();
    if (losses.size() != n)
      fail("balancer 'dynamic': ", losses.size(), " losses for ", n, " tasks");
    if (!have_initial_loss_ || n < 2) return;
    size_t worst = 0, best = 0;
    std::vector<double> rho(n);
    for (size_t t = 0; t < n; ++t) {
      rho[t] = initial_loss_[t] > 0 ? std::fmin(losses[t] / initial_loss_[t], 1e300) : 0.0;
      if (std::isnan(rho[t])) rho[t] = 0;
      if (rho[t] > rho[worst]) worst = t;
      if (rho[t] < rho[best]) best = t;
    }
    if (!(rho[worst] > rho[best])) return;
    weights_[worst] = std::clamp(weights_[worst] + step_, kLowest, kHighest);
    weights_[best] = std::clamp(weights_[best] - step_, kLowest, kHighest);
  }

  NamedTensors state() const override {
    return {{"balancer.dynamic.weights", vector_tensor(weights_)},
            {"balancer.dynamic.initial_loss",
             vector_tensor(have_initial_loss_ ? initial_loss_
                                              : std::vector<double>(tasks_.size(), 0.0))},
            {"balancer.dynamic.have_initial_loss", vector_tensor({have_initial_loss_ ? 1.0 : 0.0})},
            {"balancer.dynamic.epoch", vector_tensor({double(epoch_)})}};
  }
  void load_state(const NamedTensors& state) override {
    const std::string p = "balancer.dynamic.";
    expect_only(state, {p + "weights", p + "initial_loss", p + "have_initial_loss", p + "epoch"});
    const size_t n = tasks_.size();
    auto w = read_vector(state, p + "weights", n);
    auto l0 = read_vector(state, p + "initial_loss", n);
    const bool have = read_vector(state, p + "have_initial_loss", 1)[0] != 0;
    const double epoch = read_vector(state, p + "epoch", 1)[0];
    for (double x : w)
      if (!(x >= 0)) fail("balancer 'dynamic': weight ", x, " in the checkpoint is negative");
    weights_ = w, initial_loss_ = l0, have_initial_loss_ = have, epoch_ = int(epoch);
  }

 protected:
  void on_bind() override {
    for (const auto& [task, values] : schedule_) {
      if (std::find(tasks_.begin(), tasks_.end(), task) == tasks_.end()) {
        std::string known;
        for (const auto& t : tasks_) known += (known.empty() ? "" : ", ") + t;
        fail("balancer 'dynamic': the schedule names task '", task,
             "', which does not exist (tasks: ", known, ")");
      }
      if (values.empty()) fail("balancer 'dynamic': the schedule of task '", task, "' is empty");
      for (double v : values)
        if (!std::isfinite(v) || v < 0)
          fail("balancer 'dynamic': the schedule of task '", task, "' holds ", v,
               "; weights must be finite and non-negative");
    }
    apply_schedule(1);
  }

 private:
  void apply_schedule(int epoch) {
    for (size_t t = 0; t < tasks_.size(); ++t) {
      const auto it = schedule_.find(tasks_[t]);
      if (it == schedule_.end()) continue;
      const auto& values = it->second;
      weights_[t] = values[std::min(size_t(std::max(epoch, 1) - 1), values.size() - 1)];
    }
  }

  double step_;
  std::map<std::string, std::vector<double>> schedule_;
  std::vector<double> initial_loss_;
  bool have_initial_loss_ = false;
  int epoch_ = 0;
};

}  // namespace

std::unique_ptr<Balancer> make_dynamic_weights(const BalancerOptions& options) {
  return std::make_unique<DynamicWeights>(options.step, options.schedule);
}

}  // namespace polytask::balancing
