// Synchronised BatchNorm (LayerCall::sync_batchnorm, --sync-batchnorm) on the CPU, f64 and f32:
// a batch cut into uneven shards over 2 and 3 ranks (threads through
// tests/support/thread_communicator.h) gives each shard's rows of the whole-batch layer's y and
// dx, the same running statistics on every rank (the whole-batch run's), and parameter
// gradients that sum over the ranks to the whole-batch run's; Overwrite and Accumulate, dx
// not wanted, an empty shard. Not synchronising (no communicator, or one of size 1) leaves the
// single-process kernels' bits. And the test communicator itself.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "tests/engine/sync_batchnorm_fixtures.h"

namespace polytask {
namespace {

using testing::BnModes;
using testing::BnProblem;
using testing::BnResult;
using testing::SyncCase;
using testing::expect_shards_match;
using testing::run_ranks;
using testing::run_sharded;
using testing::run_single;

// Odd sizes and uneven shards: 7 rows as 4 + 3 and 3 + 2 + 2; 2 rows over 3 ranks leaves the
// last one empty (it still takes part in every sum).
const std::vector<SyncCase>& sync_cases() {
  static const std::vector<SyncCase> cases = {
      {"features_7_over_2", Shape{5}, 7, 2},     {"features_7_over_3", Shape{5}, 7, 3},
      {"images_7_over_2", Shape{3, 5, 7}, 7, 2}, {"images_7_over_3", Shape{3, 5, 7}, 7, 3},
      {"images_5_over_4", Shape{2, 3, 3}, 5, 4}, {"features_2_over_3", Shape{4}, 2, 3},
  };
  return cases;
}

class SyncBatchNorm : public ::testing::TestWithParam<std::tuple<size_t, DType>> {
 protected:
  const SyncCase& sync_case() const { return sync_cases()[std::get<0>(GetParam())]; }
  DType dtype() const { return std::get<1>(GetParam()); }
  void check(const BnModes& modes, uint64_t seed = 11) const {
    const SyncCase& c = sync_case();
    const BnProblem p(c.sample, c.rows, seed);
    const BnResult single = run_single(p, dtype(), Device::CPU, modes);
    const std::vector<BnResult> ranks = run_sharded(p, c.ranks, dtype(), Device::CPU, modes);
    expect_shards_match(p, single, ranks, dtype(), modes);
  }
};

TEST_P(SyncBatchNorm, ShardsMatchTheWholeBatch) { check({}); }

TEST_P(SyncBatchNorm, AccumulateAddsToWhatIsThere) {
  check({.dx_mode = GradMode::Accumulate, .param_mode = GradMode::Accumulate});
}

TEST_P(SyncBatchNorm, DifferingModes) {
  check({.dx_mode = GradMode::Accumulate, .param_mode = GradMode::Overwrite}, 12);
  check({.dx_mode = GradMode::Overwrite, .param_mode = GradMode::Accumulate}, 13);
}

TEST_P(SyncBatchNorm, NoInputGradient) { check({.want_dx = false}); }

INSTANTIATE_TEST_SUITE_P(Shards, SyncBatchNorm,
                         ::testing::Combine(::testing::Range(size_t(0), sync_cases().size()),
                                            ::testing::Values(DType::F64, DType::F32)),
                         [](const auto& param_info) {
                           return std::string(sync_cases()[std::get<0>(param_info.param)].label) +
                                  (std::get<1>(param_info.param) == DType::F64 ? "_f64" : "_f32");
                         });

// The forward's sums are shifted by the running mean (kernels/batchnorm.h): channels centred up
// to ~50 standard deviations from it still agree to ~1e-12 in f64.
TEST(SyncBatchNormPrecision, MeanFarFromTheRunningMean) {
  const BnProblem p(Shape{3, 4, 5}, 9, 21, 12.0);
  const BnResult single = run_single(p, DType::F64, Device::CPU);
  expect_shards_match(p, single, run_sharded(p, 3, DType::F64, Device::CPU), DType::F64);
}

// Bit for bit the single-process path: no communicator, SingleProcess, and a group of one.
void expect_same_bits(const BnResult& a, const BnResult& b) {
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.save_mean, b.save_mean);
  EXPECT_EQ(a.save_invstd, b.save_invstd);
  EXPECT_EQ(a.running_mean, b.running_mean);
  EXPECT_EQ(a.running_var, b.running_var);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dgamma, b.dgamma);
  EXPECT_EQ(a.dbeta, b.dbeta);
}

TEST(SyncBatchNormSingleRank, LeavesTheSingleProcessBits) {
  for (const DType dtype : {DType::F64, DType::F32})
    for (const Shape& sample : {Shape{5}, Shape{3, 5, 7}}) {
      SCOPED_TRACE(std::string(dtype == DType::F64 ? "f64 " : "f32 ") +
                   std::to_string(sample.rank()));
      const BnProblem p(sample, 7, 31);
      const BnResult plain = run_single(p, dtype, Device::CPU);
      SingleProcess one;
      expect_same_bits(plain,
                       testing::run_batchnorm(p, 0, p.rows, dtype, Device::CPU, &one, p.rows));
      const std::vector<BnResult> group = run_sharded(p, 1, dtype, Device::CPU);
      expect_same_bits(plain, group[0]);
      // And the synchronised path is a different computation (so the checks above can fail).
      if (dtype == DType::F64) {
        const std::vector<BnResult> two = run_sharded(p, 2, dtype, Device::CPU);
        EXPECT_NE(two[0].y, testing::rows_of(plain.y, p.per_row(), 0, 4));
      }
    }
}

// A wrong global row count fails with the layer's name instead of normalising by it.
TEST(SyncBatchNormErrors, GlobalRowsBelowTheShard) {
  const BnProblem p(Shape{3}, 4, 41);
  try {
    run_ranks(2, [&](Communicator& comm) {
      testing::run_batchnorm(p, 2 * comm.rank(), 2, DType::F64, Device::CPU, &comm, 1);
    });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bn"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("global_rows 1"), std::string::npos) << e.what();
  }
}

// ---- the test communicator -------------------------------------------------------------------

TEST(ThreadCommunicator, SumsInRankOrderBroadcastsAndWaits) {
  std::vector<std::vector<double>> sums(3);
  std::vector<std::vector<float>> floats(3);
  std::vector<int> roots(3);
  run_ranks(3, [&](Communicator& comm) {
    const int r = comm.rank();
    EXPECT_EQ(comm.size(), 3);
    // 1e16 + 1 + (-1e16): rank order gives 0 + ... = (1e16 + 1) - 1e16 = 0 (1 is lost), the
    // same bits on every rank.
    std::vector<double> d = {r == 0 ? 1e16 : (r == 1 ? 1.0 : -1e16), double(r)};
    comm.allreduce_sum(d.data(), d.size(), "doubles");
    sums[size_t(r)] = d;
    std::vector<float> f = {float(r) + 0.5f};
    comm.allreduce_sum(f.data(), f.size(), "floats");
    floats[size_t(r)] = f;
    int root_value = 100 + r;
    comm.broadcast(&root_value, sizeof root_value, 2, "an int");
    roots[size_t(r)] = root_value;
    comm.barrier("the end");
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[size_t(r)], (std::vector<double>{0.0, 3.0}));
    EXPECT_EQ(floats[size_t(r)], std::vector<float>{4.5f});
    EXPECT_EQ(roots[size_t(r)], 102);
  }
}

TEST(ThreadCommunicator, TimesOutOnAMissingRank) {
  try {
    run_ranks(
        2,
        [](Communicator& comm) {
          double v = 1;
          if (comm.rank() == 0) comm.allreduce_sum(&v, 1, "a sum rank 1 never joins");
        },
        0.2);
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a sum rank 1 never joins"), std::string::npos)
        << e.what();
  }
}

TEST(ThreadCommunicator, MismatchedCollectivesAndFailuresReachEveryRank) {
  std::atomic<int> failed{0};
  EXPECT_THROW(run_ranks(2,
                         [&](Communicator& comm) {
                           try {
                             double v[2] = {1, 2};
                             comm.allreduce_sum(v, comm.rank() == 0 ? 1 : 2, "sizes differ");
                           } catch (const Error&) {
                             ++failed;
                             throw;
                           }
                         }),
               Error);
  EXPECT_EQ(failed.load(), 2);
  // A rank that throws outside a collective fails the others' next one at once.
  try {
    run_ranks(2, [](Communicator& comm) {
      if (comm.rank() == 1) fail("rank 1 broke");
      comm.barrier("never complete");
    });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 broke"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace polytask
