// PLACEHOLDER until the strategy lands (kernels/balance/rlw.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Rlw final : public ProgramBalancer {
 public:
  Rlw() : ProgramBalancer(kb::Strategy::Rlw) {}
  std::string name() const override { return "rlw"; }
};

}  // namespace

std::unique_ptr<Balancer> make_rlw(const BalancerOptions&) { return std::make_unique<Rlw>(); }

}  // namespace polytask::balancing
