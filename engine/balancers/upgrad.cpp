// PLACEHOLDER until the strategy lands (kernels/balance/upgrad.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class UpGrad final : public ProgramBalancer {
 public:
  UpGrad() : ProgramBalancer(kb::Strategy::UpGrad) {}
  std::string name() const override { return "upgrad"; }
};

}  // namespace

std::unique_ptr<Balancer> make_upgrad(const BalancerOptions&) { return std::make_unique<UpGrad>(); }

}  // namespace polytask::balancing
