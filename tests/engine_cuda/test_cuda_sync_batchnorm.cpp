// Synchronised BatchNorm (LayerCall::sync_batchnorm) on the CUDA backend, ranks as threads
// (tests/support/thread_communicator.h, the sums copied through the host): each shard's rows of
// y and dx, the running statistics and the summed parameter gradients against the whole batch
// on one GPU layer and against the CPU's synchronised f32 run; both kernel paths (one block per
// channel; several through the partials), uneven and empty shards, Accumulate, no dx; a group of
// one leaves the single-process bits. Built against a GPU (skips without one) and against the
// CUDA emulator (runs in CI).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/engine/sync_batchnorm_fixtures.h"
#include "tests/support/cuda_test.h"

namespace polytask {
namespace {

using testing::bn_close;
using testing::BnModes;
using testing::BnProblem;
using testing::BnResult;
using testing::SyncCase;
using testing::expect_shards_match;
using testing::run_sharded;
using testing::run_single;

// (2, 65, 65): 4225 elements per row and channel, so the shards' 4 and 3 rows (16900 and 12675
// per channel) take the path through the partials (past the one-block path's 4096 elements,
// kernels/cuda/batchnorm.cu).
const std::vector<SyncCase>& sync_cases() {
  static const std::vector<SyncCase> cases = {
      {"features_7_over_2", Shape{5}, 7, 2},           {"features_7_over_3", Shape{5}, 7, 3},
      {"images_7_over_3", Shape{3, 5, 7}, 7, 3},       {"features_2_over_3", Shape{4}, 2, 3},
      {"split_path_7_over_2", Shape{2, 65, 65}, 7, 2},
  };
  return cases;
}

class CudaSyncBatchNorm : public ::testing::TestWithParam<size_t> {
 protected:
  void check(const BnModes& modes, uint64_t seed = 51) const {
    const SyncCase& c = sync_cases()[GetParam()];
    const BnProblem p(c.sample, c.rows, seed);
    const BnResult single = run_single(p, DType::F32, Device::CUDA, modes);
    const std::vector<BnResult> ranks = run_sharded(p, c.ranks, DType::F32, Device::CUDA, modes);
    {
      SCOPED_TRACE("against the whole batch on the device");
      expect_shards_match(p, single, ranks, DType::F32, modes);
    }
    // The CPU's synchronised run: the same formulas in double, sums in another order.
    const std::vector<BnResult> cpu = run_sharded(p, c.ranks, DType::F32, Device::CPU, modes);
    for (size_t r = 0; r < ranks.size(); ++r) {
      SCOPED_TRACE("against the CPU, rank " + std::to_string(r));
      EXPECT_TRUE(bn_close(ranks[r].y, cpu[r].y, DType::F32, testing::largest(single.y)));
      EXPECT_TRUE(bn_close(ranks[r].running_mean, cpu[r].running_mean, DType::F32));
      EXPECT_TRUE(bn_close(ranks[r].running_var, cpu[r].running_var, DType::F32));
      EXPECT_TRUE(bn_close(ranks[r].dx, cpu[r].dx, DType::F32, testing::largest(single.dx)));
      EXPECT_TRUE(bn_close(ranks[r].dgamma, cpu[r].dgamma, DType::F32));
      EXPECT_TRUE(bn_close(ranks[r].dbeta, cpu[r].dbeta, DType::F32));
    }
  }
};

TEST_P(CudaSyncBatchNorm, ShardsMatchTheWholeBatch) {
  POLYTASK_REQUIRE_GPU();
  check({});
}

TEST_P(CudaSyncBatchNorm, AccumulateAndDifferingModes) {
  POLYTASK_REQUIRE_GPU();
  check({.dx_mode = GradMode::Accumulate, .param_mode = GradMode::Accumulate}, 52);
  check({.dx_mode = GradMode::Accumulate, .param_mode = GradMode::Overwrite}, 53);
}

TEST_P(CudaSyncBatchNorm, NoInputGradient) {
  POLYTASK_REQUIRE_GPU();
  check({.want_dx = false}, 54);
}

INSTANTIATE_TEST_SUITE_P(Shards, CudaSyncBatchNorm,
                         ::testing::Range(size_t(0), sync_cases().size()),
                         [](const auto& param_info) {
                           return std::string(sync_cases()[param_info.param].label);
                         });

TEST(CudaSyncBatchNormSingleRank, LeavesTheSingleProcessBits) {
  POLYTASK_REQUIRE_GPU();
  const BnProblem p(Shape{3, 5, 7}, 7, 61);
  const BnResult plain = run_single(p, DType::F32, Device::CUDA);
  const BnResult one = run_sharded(p, 1, DType::F32, Device::CUDA)[0];
  EXPECT_EQ(plain.y, one.y);
  EXPECT_EQ(plain.running_mean, one.running_mean);
  EXPECT_EQ(plain.running_var, one.running_var);
  EXPECT_EQ(plain.dx, one.dx);
  EXPECT_EQ(plain.dgamma, one.dgamma);
  EXPECT_EQ(plain.dbeta, one.dbeta);
}

}  // namespace
}  // namespace polytask
