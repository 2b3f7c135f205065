// Static weights, Keras' loss_weights: seed_t = w_t, dz = Σ_t w_t·∂L_t/∂z. The default, and
// bit-identical to the plain weighted sum the engine made before balancers existed. Its seeds
// are known on the host, so it needs no per-step program on the device (kernels/balance/
// static_weights.h states the same step for the other strategies' switch), and it takes any
// number of tasks (the programmed strategies take at most kernels::balance::kMaxTasks).
#include <algorithm>

#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class StaticWeights final : public Balancer {
 public:
  std::string name() const override { return "static"; }
  bool accepts_set_weight() const override { return true; }
  bool needs_step_losses() const override { return false; }
  bool needs_gram() const override { return false; }
  void loss_seeds(uint64_t, std::span<const double>, std::span<double> seeds) override {
    std::copy(weights_.begin(), weights_.end(), seeds.begin());
  }
};

}  // namespace

std::unique_ptr<Balancer> make_static_weights(const BalancerOptions&) {
  return std::make_unique<StaticWeights>();
}

}  // namespace polytask::balancing
