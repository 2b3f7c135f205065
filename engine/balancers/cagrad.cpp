// PLACEHOLDER until the strategy lands (kernels/balance/cagrad.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class CaGrad final : public ProgramBalancer {
 public:
  CaGrad() : ProgramBalancer(kb::Strategy::CaGrad) {}
  std::string name() const override { return "cagrad"; }
};

}  // namespace

std::unique_ptr<Balancer> make_cagrad(const BalancerOptions&) { return std::make_unique<CaGrad>(); }

}  // namespace polytask::balancing
