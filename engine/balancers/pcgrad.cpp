// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"), applied to the per-task
// gradients with respect to the shared representation z (as LibMTL's rep_grad mode does), so
// the trunk still runs backward once.
//
// The projections (kernels/balance/pcgrad.h) run on the T×T Gram matrix of the per-task
// gradients: each projected gradient stays a combination of the task gradients. Inner products
// are over the whole (batch, *z) tensor (z flattened across the batch: the trunk's parameter
// gradient is linear in it).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class PcGrad final : public ProgramBalancer {
 public:
  explicit PcGrad(uint64_t seed) : ProgramBalancer(kb::Strategy::PcGrad) { settings_.seed = seed; }
  std::string name() const override { return "pcgrad"; }
  std::string describe() const override { return cat("pcgrad (seed ", settings_.seed, ")"); }
  bool accepts_set_weight() const override { return true; }
};

}  // namespace

std::unique_ptr<Balancer> make_pcgrad(const BalancerOptions& options) {
  return std::make_unique<PcGrad>(options.seed);
}

}  // namespace polytask::balancing
