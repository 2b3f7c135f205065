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
// [0.1, 2.0], the tutorial's bounds. Equal ρ moves nothing. A step's part is
// kernels/balance/dynamic_weights.h.
#include <algorithm>
#include <cmath>

#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

constexpr double kLowest = 0.1, kHighest = 2.0;

class DynamicWeights final : public ProgramBalancer {
 public:
  DynamicWeights(double step, std::map<std::string, std::vector<double>> schedule)
      : ProgramBalancer(kb::Strategy::Dynamic), step_(step), schedule_(std::move(schedule)) {}
  std::string name() const override { return "dynamic"; }
  std::string describe() const override {
    return schedule_.empty() ? cat("dynamic (step ", step_, ", weights in [0.1, 2])")
                             : "dynamic (schedule)";
  }

  void end_epoch(const EpochSummary& summary) override {
    st_.sum_steps = summary.epoch;
    state_changed();
    if (!schedule_.empty()) {
      apply_schedule(summary.epoch + 1);
      return;
    }
    const auto& losses =
        summary.validation_loss.empty() ? summary.train_loss : summary.validation_loss;
    const size_t n = tasks_.size();
    if (losses.size() != n)
      fail("balancer 'dynamic': ", losses.size(), " losses for ", n, " tasks");
    if (st_.have_reference == 0 || n < 2) return;
    size_t worst = 0, best = 0;
    std::vector<double> rho(n);
    for (size_t t = 0; t < n; ++t) {
      rho[t] = st_.reference[t] > 0 ? std::fmin(losses[t] / st_.reference[t], 1e300) : 0.0;
      if (std::isnan(rho[t])) rho[t] = 0;
      if (rho[t] > rho[worst]) worst = t;
      if (rho[t] < rho[best]) best = t;
    }
    if (!(rho[worst] > rho[best])) return;
    st_.base[worst] = weights_[worst] = std::clamp(st_.base[worst] + step_, kLowest, kHighest);
    st_.base[best] = weights_[best] = std::clamp(st_.base[best] - step_, kLowest, kHighest);
  }

 protected:
  // The first batch's losses in st_.reference (kernels/balance/dynamic_weights.h), the epochs
  // seen in st_.sum_steps.
  std::vector<Field> fields() const override {
    return {{"weights", &kb::State::base},
            {"initial_loss", &kb::State::reference},
            {"have_initial_loss", nullptr, &kb::State::have_reference},
            {"epoch", nullptr, &kb::State::sum_steps}};
  }
  void check_loaded(const kb::State& s) const override {
    for (size_t t = 0; t < tasks_.size(); ++t)
      if (!(s.base[t] >= 0))
        fail("balancer 'dynamic': weight ", s.base[t], " in the checkpoint is negative");
    check_count(name(), "epoch", s.sum_steps);
  }
  void init_state() override {
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
      st_.base[t] = st_.weights[t] = weights_[t] =
          values[std::min(size_t(std::max(epoch, 1) - 1), values.size() - 1)];
    }
  }

  double step_;
  std::map<std::string, std::vector<double>> schedule_;
};

}  // namespace

std::unique_ptr<Balancer> make_dynamic_weights(const BalancerOptions& options) {
  return std::make_unique<DynamicWeights>(options.step, options.schedule);
}

}  // namespace polytask::balancing
