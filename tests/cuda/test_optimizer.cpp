// CUDA optimiser updates (kernels/cuda/optimizer.cu) against the CPU reference over several
// steps: odd sizes, the float4 path with all arrays aligned, all at the same misalignment (a
// scalar head) and at different ones (all scalar), weight decay, momentum and Nesterov, and
// the step check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/error.h"
#include "kernels/optimizer.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

const std::vector<int64_t> kSizes = {1, 3, 4, 5, 31, 33, 1000, 4099};

// Where each array starts, in floats past a 256-byte-aligned allocation.
struct Offsets {
  int64_t param, grad, state1, state2;
};
const std::vector<Offsets> kOffsets = {
    {0, 0, 0, 0},                // float4 throughout
    {1, 1, 1, 1},                // a shared misalignment: a 3-element scalar head, then float4
    {3, 3, 3, 3}, {0, 1, 2, 3},  // mixed: all scalar
    {2, 2, 2, 0},
};

// A device array placed `offset` floats into a NaN-poisoned buffer with room on both sides.
class Placed {
 public:
  Placed(const std::vector<float>& host, int64_t offset)
      : buffer_(host.size() + 8), offset_(offset), count_(host.size()) {
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(get(), host.data(), count_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  float* get() const { return buffer_.get() + offset_; }
  std::vector<float> download() const {
    const std::vector<float> whole = buffer_.download();
    for (int64_t i = 0; i < offset_; ++i)
      EXPECT_TRUE(std::isnan(whole[sz(i)])) << "wrote before the array";
    for (size_t i = sz(offset_) + count_; i < whole.size(); ++i)
      EXPECT_TRUE(std::isnan(whole[i])) << "wrote past the array";
    return {whole.begin() + offset_, whole.begin() + offset_ + static_cast<std::ptrdiff_t>(count_)};
  }

 private:
  DeviceArray<float> buffer_;
  int64_t offset_;
  size_t count_;
};

// nvcc fuses β·m + (1-β)·g, the v update, p·decay - step·m/denom and SGD's momentum·buf + g
// into fmas where the CPU rounds each product: a few ulps (2^-24 each) per step, compounding
// over kSteps steps. Relative: 2e-6 covers 5 steps with margin; a wrong bias correction or a
// swapped β is off by > 1e-3. Absolute, for values that cancel towards 0 (where relative error
// means nothing): a few ulps of the operands, which are O(1) for param and velocity (|p|, |g|
// ≤ 1), ≤ 0.1 for m ((1-β1)·g) and ≤ 1e-3 for v ((1-β2)·g², never cancelling).
constexpr double kRelTol = 2e-6;
constexpr double kParamAbsTol = 1e-6, kMAbsTol = 1e-7, kVAbsTol = 1e-12;
constexpr int kSteps = 5;

TEST(CudaOptimizer, AdamMatchesCpuOverSeveralSteps) {
  POLYTASK_REQUIRE_GPU();
  for (float weight_decay : {0.0f, 0.01f})
    for (int64_t n : kSizes)
      for (const Offsets& o : kOffsets) {
        std::vector<float> param = random_vector<float>(sz(n), 1), m(sz(n), 0.0f), v(sz(n), 0.0f);
        Placed d_param(param, o.param), d_m(m, o.state1), d_v(v, o.state2);
        for (int step = 1; step <= kSteps; ++step) {
          AdamParams p;
          p.lr = 1e-2f;
          p.weight_decay = weight_decay;
          p.step = step;
          const std::vector<float> grad = random_vector<float>(sz(n), 10 + sz(step));
          Placed d_grad(grad, o.grad);
          cpu::adam_update<float>(n, p, param.data(), grad.data(), m.data(), v.data());
          adam_update(n, p, d_param.get(), d_grad.get(), d_m.get(), d_v.get(), test_stream());
        }
        const auto where = ::testing::Message() << "n=" << n << " offsets " << o.param << o.grad
                                                << o.state1 << o.state2 << " wd " << weight_decay;
        EXPECT_TRUE(all_close(d_param.download(), param, kRelTol, kParamAbsTol))
            << "param " << where;
        EXPECT_TRUE(all_close(d_m.download(), m, kRelTol, kMAbsTol)) << "m " << where;
        EXPECT_TRUE(all_close(d_v.download(), v, kRelTol, kVAbsTol)) << "v " << where;
      }
}

TEST(CudaOptimizer, AdamRejectsStepZero) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(4);
  AdamParams p;
  p.step = 0;
  EXPECT_THROW(adam_update(4, p, x.get(), x.get(), x.get(), x.get(), test_stream()), Error);
}

TEST(CudaOptimizer, SgdMatchesCpuOverSeveralSteps) {
  POLYTASK_REQUIRE_GPU();
  struct Config {
    float momentum;
    bool nesterov;
    float weight_decay;
  };
  for (const Config& c :
       {Config{0.0f, false, 0.0f}, Config{0.9f, false, 1e-3f}, Config{0.9f, true, 0.0f}})
    for (int64_t n : kSizes)
      for (const Offsets& o : kOffsets) {
        std::vector<float> param = random_vector<float>(sz(n), 2), velocity(sz(n), 0.0f);
        Placed d_param(param, o.param), d_velocity(velocity, o.state1);
        SgdParams p;
        p.lr = 0.05f;
        p.momentum = c.momentum;
        p.nesterov = c.nesterov;
        p.weight_decay = c.weight_decay;
        for (int step = 1; step <= kSteps; ++step) {
          const std::vector<float> grad = random_vector<float>(sz(n), 20 + sz(step));
          Placed d_grad(grad, o.grad);
          cpu::sgd_update<float>(n, p, param.data(), grad.data(), velocity.data());
          sgd_update(n, p, d_param.get(), d_grad.get(), d_velocity.get(), test_stream());
        }
        const auto where = ::testing::Message()
                           << "n=" << n << " offsets " << o.param << o.grad << o.state1
                           << " momentum " << c.momentum << (c.nesterov ? " nesterov" : "");
        EXPECT_TRUE(all_close(d_param.download(), param, kRelTol, kParamAbsTol)) << where;
        EXPECT_TRUE(all_close(d_velocity.download(), velocity, kRelTol, kParamAbsTol)) << where;
      }
}

}  // namespace
}  // namespace polytask::kernels::cuda
