// Static weights, Keras' loss_weights: seed_t = w_t, dz = Σ_t w_t·∂L_t/∂z (kernels/balance/
// static_weights.h). The default, and bit-identical to the plain weighted sum the engine made
// before balancers existed. On the GPU it is the one strategy the fan-out runs without the
// balancing kernels: its seeds are known on the host.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class StaticWeights final : public ProgramBalancer {
 public:
  StaticWeights() : ProgramBalancer(kb::Strategy::Static) {}
  std::string name() const override { return "static"; }
  bool accepts_set_weight() const override { return true; }
  bool needs_step_losses() const override { return false; }
  bool needs_gram() const override { return false; }
};

}  // namespace

std::unique_ptr<Balancer> make_static_weights(const BalancerOptions&) {
  return std::make_unique<StaticWeights>();
}

}  // namespace polytask::balancing
