// FAMO (Liu, Liu, Hu, Stone & Liu 2023, "FAMO: Fast Adaptive Multitask Optimization"): loss
// weights z = softmax(ξ) applied to log-losses, Σ_t z_t·log(L_t)/c with c = Σ_t z_t/L_t, and
// logits ξ that learn, from how much each task's log-loss fell in a step, to favour the tasks
// that improve least: O(1) per step, no per-task gradients needed. The per-step arithmetic,
// the formulas and the one deviation from the authors' code (the "after" losses are the next
// step's batch, there being no extra forward pass) are in kernels/balance/famo.h.
//
// The weights FAMO learns replace the configured ones: as in the authors' code there is no
// prior, so the configured weights are ignored except that a weight 0 is refused (a task the
// configuration switched off cannot be re-weighted). The seeds sum to 1, the authors' scale
// (static with weights 1 sums to T); weights() logs the seeds. Defaults: lr 0.025 (the
// authors' w_lr), decay γ 1e-3.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Famo final : public ProgramBalancer {
 public:
  Famo(double lr, double decay) : ProgramBalancer(kb::Strategy::Famo) {
    settings_.lr = lr;
    settings_.decay = decay;
  }
  std::string name() const override { return "famo"; }
  std::string describe() const override {
    return cat("famo (lr ", settings_.lr, ", decay ", settings_.decay, ")");
  }
  bool needs_gram() const override { return false; }

 protected:
  void init_state() override {
    require_positive_weights();
    // ξ = 0: z = 1/T, what the first step uses with equal losses.
    for (size_t t = 0; t < tasks_.size(); ++t) st_.weights[t] = 1.0 / double(tasks_.size());
  }
  std::vector<Field> fields() const override {
    std::vector<Field> f = learned("logits");
    f.insert(f.end(), {{"previous_loss", &kb::State::reference},
                       {"have_previous_loss", nullptr, &kb::State::have_reference},
                       {"weights", &kb::State::weights}});
    return f;
  }
  void check_loaded(const kb::State& s) const override {
    if (s.have_reference != 0 && s.have_reference != 1)
      fail("balancer 'famo': have_previous_loss ", s.have_reference,
           " in the checkpoint is neither 0 nor 1");
    for (size_t t = 0; t < tasks_.size(); ++t)
      if (!(s.adam_v[t] >= 0))
        fail("balancer 'famo': adam_v ", s.adam_v[t], " in the checkpoint is negative");
  }
};

}  // namespace

std::unique_ptr<Balancer> make_famo(const BalancerOptions& options) {
  return std::make_unique<Famo>(balancer_learning_rate(options, 0.025), options.decay);
}

}  // namespace polytask::balancing
