// PLACEHOLDER until the strategy lands (kernels/balance/aligned_mtl.h).
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class AlignedMtl final : public ProgramBalancer {
 public:
  AlignedMtl() : ProgramBalancer(kb::Strategy::AlignedMtl) {}
  std::string name() const override { return "aligned-mtl"; }
};

}  // namespace

std::unique_ptr<Balancer> make_aligned_mtl(const BalancerOptions&) { return std::make_unique<AlignedMtl>(); }

}  // namespace polytask::balancing
