// PLACEHOLDER until the strategy lands (kernels/balance/static_from_norms.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class StaticFromNorms final : public ProgramBalancer {
 public:
  StaticFromNorms() : ProgramBalancer(kb::Strategy::StaticFromNorms) {}
  std::string name() const override { return "static-from-norms"; }
};

}  // namespace

std::unique_ptr<Balancer> make_static_from_norms(const BalancerOptions&) { return std::make_unique<StaticFromNorms>(); }

}  // namespace polytask::balancing
