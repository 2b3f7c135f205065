// PLACEHOLDER until the strategy lands (kernels/balance/nash_mtl.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class NashMtl final : public ProgramBalancer {
 public:
  NashMtl() : ProgramBalancer(kb::Strategy::NashMtl) {}
  std::string name() const override { return "nash-mtl"; }
};

}  // namespace

std::unique_ptr<Balancer> make_nash_mtl(const BalancerOptions&) { return std::make_unique<NashMtl>(); }

}  // namespace polytask::balancing
