// PLACEHOLDER until the strategy lands (kernels/balance/famo.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Famo final : public ProgramBalancer {
 public:
  Famo() : ProgramBalancer(kb::Strategy::Famo) {}
  std::string name() const override { return "famo"; }
};

}  // namespace

std::unique_ptr<Balancer> make_famo(const BalancerOptions&) { return std::make_unique<Famo>(); }

}  // namespace polytask::balancing
