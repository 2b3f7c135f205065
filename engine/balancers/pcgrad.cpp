// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"), applied to the per-task
// gradients with respect to the shared representation z (as LibMTL's rep_grad mode does), so
// the trunk still runs backward once.
//
// Seeds are the configured weights, so g_t = w_t·∂L_t/∂z. For each task i, in turn:
//   pc_i = g_i; for every other task j, in a random order:
//     if <pc_i, g_j> < 0:  pc_i -= <pc_i, g_j> / ‖g_j‖² · g_j
// then dz = Σ_i pc_i. Inner products run over the whole (batch, *z) tensor (z flattened
// across the batch: the trunk's parameter gradient is linear in it). The order of the other
// tasks is a Fisher-Yates shuffle driven by splitmix64 of (seed, step, i): deterministic, the
// same in a resumed run, and allocation-free. With two tasks the order does not matter.
#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class PcGrad final : public Balancer {
 public:
  explicit PcGrad(uint64_t seed) : seed_(seed) {}
  std::string name() const override { return "pcgrad"; }
  std::string describe() const override { return cat("pcgrad (seed ", seed_, ")"); }
  bool accepts_set_weight() const override { return true; }

  void loss_seeds(uint64_t, std::span<const double>, std::span<double> seeds) override {
    std::copy(weights_.begin(), weights_.end(), seeds.begin());
  }

  void combine(const TaskGradients& g, const Tensor& dz) override {
    if (!dz.defined()) return;
    const size_t tasks = g.grads.size();
    const int64_t n = g.grads[0].dim(0);
    for (size_t i = 0; i < tasks; ++i) {
      views_[i] = projected_[i].slice(0, n);
      copy(g.grads[i], views_[i]);
      // The other tasks, shuffled.
      size_t count = 0;
      for (size_t j = 0; j < tasks; ++j)
        if (j != i) order_[count++] = j;
      uint64_t state = seed_ ^ (g.step * 0x632be59bd9b4e019ull) ^ (uint64_t(i) << 48);
      for (size_t k = count; k > 1; --k) std::swap(order_[k - 1], order_[splitmix64(state) % k]);
      for (size_t k = 0; k < count; ++k) {
        const size_t j = order_[k];
        const double norm2 = g.gram[j * tasks + j];
        if (!(norm2 > 0)) continue;
        const double d = dot(views_[i], g.grads[j]);
        if (d < 0) axpy(-d / norm2, g.grads[j], views_[i]);
      }
    }
    plain_sum(views_, dz);
  }

 protected:
  void on_bind() override {
    projected_.clear();
    for (size_t t = 0; t < tasks_.size(); ++t)
      projected_.push_back(Tensor::zeros(binding_.grad_shape, binding_.dtype, binding_.device));
    views_.resize(tasks_.size());
    order_.resize(tasks_.size());
  }

 private:
  uint64_t seed_;
  std::vector<Tensor> projected_;  // (max_batch, *z) per task
  std::vector<Tensor> views_;      // this batch's rows of projected_
  std::vector<size_t> order_;
};

}  // namespace

std::unique_ptr<Balancer> make_pcgrad(const BalancerOptions& options) {
  return std::make_unique<PcGrad>(options.seed);
}

}  // namespace polytask::balancing
