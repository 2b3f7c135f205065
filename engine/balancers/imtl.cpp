// PLACEHOLDER until the strategy lands (kernels/balance/imtl.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Imtl final : public ProgramBalancer {
 public:
  Imtl() : ProgramBalancer(kb::Strategy::Imtl) {}
  std::string name() const override { return "imtl"; }
};

}  // namespace

std::unique_ptr<Balancer> make_imtl(const BalancerOptions&) { return std::make_unique<Imtl>(); }

}  // namespace polytask::balancing
