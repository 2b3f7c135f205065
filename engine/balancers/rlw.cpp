// RLW, random loss weighting (Lin, Ye, Xu, Shi & Zhang 2022, "Reasonable Effectiveness of Random
// Weighting: A Litmus Test for Multi-Task Learning"): each step weights the losses by
// softmax(ε), ε ~ N(0, I) drawn afresh, the baseline every balancing strategy should beat.
// The per-step arithmetic is kernels/balance/rlw.h: seeds_t = K·softmax(log c + ε)_t with c
// the configured weights (a prior; they must be positive) and K = Σ_t c_t, so the weights sum
// to what static's do (LibMTL's sum to 1: with all c_t = 1 ours are exactly T times theirs).
// ε is a pure function of (seed, step, task) through Philox, so a resumed run draws the same
// weights and there is no state to checkpoint. The step reads neither the losses nor the
// Gram matrix.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Rlw final : public ProgramBalancer {
 public:
  explicit Rlw(uint64_t seed) : ProgramBalancer(kb::Strategy::Rlw) { settings_.seed = seed; }
  std::string name() const override { return "rlw"; }
  std::string describe() const override { return cat("rlw (seed ", settings_.seed, ")"); }
  bool needs_step_losses() const override { return false; }
  bool needs_gram() const override { return false; }
  // The weights logged are the seeds (c_t = 1): weights() shows this step's draw as soon as it is
  // drawn, before combine.
  void loss_seeds(uint64_t step, std::span<const double> losses, std::span<double> seeds) override {
    ProgramBalancer::loss_seeds(step, losses, seeds);
    for (size_t t = 0; t < tasks_.size(); ++t) st_.weights[t] = weights_[t] = seeds[t];
  }

 protected:
  void init_state() override { require_positive_weights(); }
};

}  // namespace

std::unique_ptr<Balancer> make_rlw(const BalancerOptions& options) {
  return std::make_unique<Rlw>(options.seed);
}

}  // namespace polytask::balancing
