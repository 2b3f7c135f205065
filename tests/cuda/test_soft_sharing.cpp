// The soft-sharing gradient on the device (kernels/cuda/soft_sharing.cu) against the CPU
// reference: odd sizes around the block edges, 1 to 16 copies, gradients that already hold
// numbers (the kernel adds), and the copy limit.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kernels/error.h"
#include "kernels/soft_sharing.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

TEST(CudaSoftSharing, GradientMatchesTheCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int members : {1, 2, 3, kMaxSoftSharedCopies})
    for (int64_t n : {1, 33, 257, 4099}) {
      std::vector<std::vector<float>> values, grads;
      std::vector<std::unique_ptr<DeviceArray<float>>> dv, dg;
      std::vector<const float*> hv, dvp;
      std::vector<float*> hg, dgp;
      for (int i = 0; i < members; ++i) {
        values.push_back(random_vector<float>(size_t(n), 10 + uint64_t(i)));
        grads.push_back(random_vector<float>(size_t(n), 50 + uint64_t(i)));
        dv.push_back(std::make_unique<DeviceArray<float>>(values.back()));
        dg.push_back(std::make_unique<DeviceArray<float>>(grads.back()));
        dvp.push_back(dv.back()->get());
        dgp.push_back(dg.back()->get());
      }
      for (int i = 0; i < members; ++i) hv.push_back(values[size_t(i)].data()), hg.push_back(grads[size_t(i)].data());
      soft_sharing_gradient(n, members, dvp.data(), dgp.data(), 0.3f, test_stream());
      cpu::soft_sharing_gradient<float>(n, members, hv.data(), hg.data(), 0.3f);
      for (int i = 0; i < members; ++i)
        EXPECT_TRUE(all_close(dg[size_t(i)]->download(), grads[size_t(i)], 1e-6, 1e-6))
            << members << " copies, n=" << n << ", copy " << i;
    }
}

TEST(CudaSoftSharing, RefusesTooManyCopies) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> w(1), g(1);
  const std::vector<const float*> values(kMaxSoftSharedCopies + 1, w.get());
  const std::vector<float*> grads(kMaxSoftSharedCopies + 1, g.get());
  EXPECT_THROW(soft_sharing_gradient(1, kMaxSoftSharedCopies + 1, values.data(), grads.data(),
                                     1.0f, test_stream()),
               Error);
}

}  // namespace
}  // namespace polytask::kernels::cuda
