// Aligned-MTL (Senushkin et al. 2023, "Independent Component Alignment for Multi-Task
// Learning"): the principal components of the task gradients at z are rescaled to one common
// strength σ, so the combined step has condition number 1 and no task's gradient dominates.
//
// Seeds are the configured weights w_t (set_weight changes them for the next step, as for
// static and PCGrad), so the rows aligned are w_t·∂L_t/∂z. The coefficients are TorchJD's
// AlignedMTL() weights α = B·(1/T, ..., 1/T); the scale σ² is the smallest kept eigenvalue of
// the Gram matrix (option scale: min, the paper's), their lower median (median) or mean (rmse).
// The eigensolver, the rank rule and the exact defaults are kernels/balance/aligned_mtl.h.
// Nothing is learned: a checkpoint keeps no state.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class AlignedMtl final : public ProgramBalancer {
 public:
  explicit AlignedMtl(const std::string& scale)
      : ProgramBalancer(kb::Strategy::AlignedMtl), scale_(scale) {
    const char* names[] = {"min", "median", "rmse"};
    for (int32_t i = 0; i < 3; ++i)
      if (scale == names[i]) settings_.mode = i;
  }
  std::string name() const override { return "aligned-mtl"; }
  std::string describe() const override { return cat("aligned-mtl (scale ", scale_, ")"); }
  bool accepts_set_weight() const override { return true; }

 protected:
  void init_state() override {
    // What a step gives equal gradients (one component, B = 11ᵀ/T): c_t = 1/T.
    for (size_t t = 0; t < tasks_.size(); ++t) st_.weights[t] = st_.base[t] / double(tasks_.size());
  }

 private:
  std::string scale_;
};

}  // namespace

std::unique_ptr<Balancer> make_aligned_mtl(const BalancerOptions& options) {
  return std::make_unique<AlignedMtl>(options.scale);
}

}  // namespace polytask::balancing
