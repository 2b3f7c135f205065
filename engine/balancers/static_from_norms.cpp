// static-from-norms: static loss weights, set once from the first epoch's gradient norms at
// the fan-out z, so that every task's weighted gradient there has the same mean norm (what the
// per-step diagnostics measure). Epoch 1 is exactly static with the configured weights c_t
// (bit for bit: same seeds, coefficients 1); its end sets w_t = K·(1/n̄_t)/Σ_j(1/n̄_j), n̄_t the
// epoch's mean ‖∂L_t/∂z‖ and K = Σ_t c_t; from then on the weights are fixed, as static's.
// Formulas and edge cases (a task with no gradient at z keeps c_t) in
// kernels/balance/static_from_norms.h. The weights are the strategy's own: set_weight is
// refused, and the configured ones must be positive (they seed epoch 1 and divide the norms).
#include <algorithm>

#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class StaticFromNorms final : public ProgramBalancer {
 public:
  StaticFromNorms() : ProgramBalancer(kb::Strategy::StaticFromNorms) {}
  std::string name() const override { return "static-from-norms"; }
  bool needs_step_losses() const override { return false; }

  void end_epoch(const EpochSummary&) override {
    if (!kb::static_from_norms_fix_weights(settings_, st_)) return;
    show_base();
    state_changed();
  }
  void load_state(const NamedTensors& state) override {
    ProgramBalancer::load_state(state);
    // ProgramBalancer shows the weights from before the load; the next step uses the loaded.
    show_base();
  }

 protected:
  void init_state() override { require_positive_weights(); }
  // The weights in st_.base; epoch 1's running sums of the raw norms and its step count; whether
  // the weights are set (then the sums are what they were set from).
  std::vector<Field> fields() const override {
    return {{"weights", &kb::State::base},
            {"norm_sums", &kb::State::sums},
            {"norm_steps", nullptr, &kb::State::sum_steps},
            {"weights_set", nullptr, &kb::State::have_reference}};
  }
  void check_loaded(const kb::State& s) const override {
    check_count(name(), "step count", s.sum_steps);
    if (s.have_reference != 0 && s.have_reference != 1)
      fail("balancer 'static-from-norms': weights_set ", s.have_reference,
           " in the checkpoint is neither 0 nor 1");
    for (size_t t = 0; t < tasks_.size(); ++t) {
      if (!(s.base[t] > 0))
        fail("balancer 'static-from-norms': weight ", s.base[t],
             " in the checkpoint is not positive");
      if (!(s.sums[t] >= 0))
        fail("balancer 'static-from-norms': norm sum ", s.sums[t],
             " in the checkpoint is negative");
    }
  }

 private:
  void show_base() {
    std::copy(st_.base, st_.base + tasks_.size(), st_.weights);
    std::copy(st_.base, st_.base + tasks_.size(), weights_.begin());
  }
};

}  // namespace

std::unique_ptr<Balancer> make_static_from_norms(const BalancerOptions&) {
  return std::make_unique<StaticFromNorms>();
}

}  // namespace polytask::balancing
