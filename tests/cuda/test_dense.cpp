// CUDA dense layer (kernels/cuda/dense.cu) against the CPU reference in double: forward with
// and without bias (y NaN-poisoned first), backward data and filter in Overwrite and
// Accumulate (gradients pre-seeded to prove they add), db = nullptr, the workload's shapes, and
// bit-identical repeats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/dense.h"
#include "kernels/error.h"
#include "tests/support/cuda_test.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::absolute;
using polytask::testing::close_to;
using polytask::testing::DeviceArray;
using polytask::testing::kUnitRoundoff;
using polytask::testing::random_vector;
using polytask::testing::test_stream;
using polytask::testing::to_double;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

// Same bound as the SGEMM test (tests/cuda/test_gemm.cpp): each of the `depth` fused
// multiply-adds rounds by at most 2^-24 of the running sum, bounded by S = the same
// expression on absolute values (sum |x||w| + |b|, or + |seed| when accumulating); random
// signs make the errors add like a random walk, ~sqrt(depth); 4x margin plus the epilogue's
// roundings: 2^-24·(4·sqrt(depth) + 4)·S.
double tolerance(int64_t depth) { return polytask::testing::fp32_chain_tolerance(depth); }

std::string describe(const DenseShape& s) { return cat("n=", s.n, " in=", s.in, " out=", s.out); }

// Odd sizes, sizes just past the tile multiples, and the workload's two layers (batch 128,
// 1600 -> 128 -> 10). The emulator runs ~1 µs per thread switch; these stay cheap there.
constexpr DenseShape kShapes[] = {{1, 1, 1},     {5, 13, 9},       {67, 45, 131},
                                  {33, 129, 65}, {128, 1600, 128}, {128, 128, 10}};

TEST(CudaDense, ForwardWithAndWithoutBiasMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 1;
  for (const DenseShape& s : kShapes)
    for (const bool with_bias : {true, false}) {
      const auto x = random_vector<float>(sz(s.n * s.in), seed++);
      const auto w = random_vector<float>(sz(s.out * s.in), seed++);
      const auto b = random_vector<float>(sz(s.out), seed++);
      DeviceArray<float> dx(x), dw(w), db(b), dy(sz(s.n * s.out));  // dy: y, NaN-poisoned
      dense_forward(s, dx.get(), dw.get(), with_bias ? db.get() : nullptr, dy.get(), test_stream());
      const std::vector<float> y = dy.download();

      const auto xd = to_double(x), wd = to_double(w), bd = to_double(b);
      std::vector<double> expected(y.size()), scale(y.size());
      cpu::dense_forward<double>(s, xd.data(), wd.data(), with_bias ? bd.data() : nullptr,
                                 expected.data());
      const auto xa = absolute(xd), wa = absolute(wd), ba = absolute(bd);
      cpu::dense_forward<double>(s, xa.data(), wa.data(), with_bias ? ba.data() : nullptr,
                                 scale.data());
      EXPECT_TRUE(close_to(describe(s) + (with_bias ? " with bias" : " no bias"), y, expected,
                           scale, tolerance(s.in)));
    }
}

TEST(CudaDense, BackwardDataOverwritesOrAccumulates) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const DenseShape& s : kShapes)
    for (const GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const auto dy = random_vector<float>(sz(s.n * s.out), seed++);
      const auto w = random_vector<float>(sz(s.out * s.in), seed++);
      // Overwrite: dx starts NaN (every element must be written). Accumulate: dx starts at a
      // non-zero seed that must survive as a summand.
      const auto seed_dx = random_vector<float>(sz(s.n * s.in), seed++, -2.0, 2.0);
      DeviceArray<float> d_dy(dy), d_w(w), d_dx(sz(s.n * s.in));
      if (mode == GradMode::Accumulate) d_dx.upload(seed_dx);
      dense_backward_data(s, d_dy.get(), d_w.get(), d_dx.get(), mode, test_stream());
      const std::vector<float> dx = d_dx.download();

      const auto dyd = to_double(dy), wd = to_double(w);
      std::vector<double> expected(dx.size(), 0.0), scale(dx.size(), 0.0);
      if (mode == GradMode::Accumulate) {
        expected = to_double(seed_dx);
        scale = absolute(expected);
      }
      cpu::dense_backward_data<double>(s, dyd.data(), wd.data(), expected.data(), mode);
      const auto dya = absolute(dyd), wa = absolute(wd);
      cpu::dense_backward_data<double>(s, dya.data(), wa.data(), scale.data(), mode);
      EXPECT_TRUE(
          close_to(describe(s) + (mode == GradMode::Accumulate ? " accumulate" : " overwrite"), dx,
                   expected, scale, tolerance(s.out)));
    }
}

TEST(CudaDense, BackwardFilterOverwritesOrAccumulatesWeightAndBiasGradients) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 200;
  for (const DenseShape& s : kShapes)
    for (const GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const auto x = random_vector<float>(sz(s.n * s.in), seed++);
      const auto dy = random_vector<float>(sz(s.n * s.out), seed++);
      const auto seed_dw = random_vector<float>(sz(s.out * s.in), seed++, -2.0, 2.0);
      const auto seed_db = random_vector<float>(sz(s.out), seed++, -2.0, 2.0);
      DeviceArray<float> d_x(x), d_dy(dy), d_dw(sz(s.out * s.in)), d_db(sz(s.out));
      if (mode == GradMode::Accumulate) {
        d_dw.upload(seed_dw);
        d_db.upload(seed_db);
      }
      dense_backward_filter(s, d_x.get(), d_dy.get(), d_dw.get(), d_db.get(), mode, test_stream());
      const std::vector<float> dw = d_dw.download(), db = d_db.download();

      const auto xd = to_double(x), dyd = to_double(dy);
      std::vector<double> dw_ref(dw.size(), 0.0), db_ref(db.size(), 0.0);
      std::vector<double> dw_scale(dw.size(), 0.0), db_scale(db.size(), 0.0);
      if (mode == GradMode::Accumulate) {
        dw_ref = to_double(seed_dw);
        db_ref = to_double(seed_db);
        dw_scale = absolute(dw_ref);
        db_scale = absolute(db_ref);
      }
      cpu::dense_backward_filter<double>(s, xd.data(), dyd.data(), dw_ref.data(), db_ref.data(),
                                         mode);
      const auto xa = absolute(xd), dya = absolute(dyd);
      cpu::dense_backward_filter<double>(s, xa.data(), dya.data(), dw_scale.data(), db_scale.data(),
                                         mode);
      const std::string what =
          describe(s) + (mode == GradMode::Accumulate ? " accumulate" : " overwrite");
      EXPECT_TRUE(close_to(what + " dw", dw, dw_ref, dw_scale, tolerance(s.n)));
      // db sums in double on both sides; the float result rounds once (twice when adding to
      // the seed): 2·2^-24 of (|seed| + sum |dy|).
      EXPECT_TRUE(close_to(what + " db", db, db_ref, db_scale, 2.0 * kUnitRoundoff));
    }
}

TEST(CudaDense, BackwardFilterWithoutBiasGradient) {
  POLYTASK_REQUIRE_GPU();
  const DenseShape s{37, 21, 11};
  const auto x = random_vector<float>(sz(s.n * s.in), 300);
  const auto dy = random_vector<float>(sz(s.n * s.out), 301);
  DeviceArray<float> d_x(x), d_dy(dy), d_dw(sz(s.out * s.in));
  dense_backward_filter(s, d_x.get(), d_dy.get(), d_dw.get(), nullptr, GradMode::Overwrite,
                        test_stream());
  const std::vector<float> dw = d_dw.download();
  std::vector<double> dw_ref(dw.size()), dw_scale(dw.size());
  const auto xd = to_double(x), dyd = to_double(dy);
  const auto xa = absolute(xd), dya = absolute(dyd);
  cpu::dense_backward_filter<double>(s, xd.data(), dyd.data(), dw_ref.data(), nullptr,
                                     GradMode::Overwrite);
  cpu::dense_backward_filter<double>(s, xa.data(), dya.data(), dw_scale.data(), nullptr,
                                     GradMode::Overwrite);
  EXPECT_TRUE(close_to("dw", dw, dw_ref, dw_scale, tolerance(s.n)));
}

TEST(CudaDense, BiasGradientOverManyRowsAndRaggedColumns) {
  POLYTASK_REQUIRE_GPU();
  // 1000 rows: many turns of each warp's row stride; 70 columns: a partial last block.
  const DenseShape s{1000, 3, 70};
  const auto x = random_vector<float>(sz(s.n * s.in), 400);
  const auto dy = random_vector<float>(sz(s.n * s.out), 401);
  DeviceArray<float> d_x(x), d_dy(dy), d_dw(sz(s.out * s.in)), d_db(sz(s.out));
  dense_backward_filter(s, d_x.get(), d_dy.get(), d_dw.get(), d_db.get(), GradMode::Overwrite,
                        test_stream());
  const std::vector<float> db = d_db.download();
  for (int64_t j = 0; j < s.out; ++j) {
    double sum = 0.0, sum_abs = 0.0;
    for (int64_t i = 0; i < s.n; ++i) {
      sum += static_cast<double>(dy[sz(i * s.out + j)]);
      sum_abs += std::abs(static_cast<double>(dy[sz(i * s.out + j)]));
    }
    EXPECT_NEAR(static_cast<double>(db[sz(j)]), sum, 2.0 * kUnitRoundoff * sum_abs) << j;
  }
}

TEST(CudaDense, RepeatedCallsAreBitIdentical) {
  POLYTASK_REQUIRE_GPU();
  const DenseShape s{130, 67, 45};
  const auto x = random_vector<float>(sz(s.n * s.in), 500);
  const auto w = random_vector<float>(sz(s.out * s.in), 501);
  const auto b = random_vector<float>(sz(s.out), 502);
  const auto dy = random_vector<float>(sz(s.n * s.out), 503);
  const auto run = [&] {
    DeviceArray<float> d_x(x), d_w(w), d_b(b), d_dy(dy), y(sz(s.n * s.out)), dx(sz(s.n * s.in)),
        dw(sz(s.out * s.in)), db(sz(s.out));
    dense_forward(s, d_x.get(), d_w.get(), d_b.get(), y.get(), test_stream());
    dense_backward_data(s, d_dy.get(), d_w.get(), dx.get(), GradMode::Overwrite, test_stream());
    dense_backward_filter(s, d_x.get(), d_dy.get(), dw.get(), db.get(), GradMode::Overwrite,
                          test_stream());
    std::vector<float> all = y.download();
    for (const DeviceArray<float>* out : {&dx, &dw, &db}) {
      const std::vector<float> part = out->download();
      all.insert(all.end(), part.begin(), part.end());
    }
    return all;
  };
  const std::vector<float> first = run(), second = run();
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
}

TEST(CudaDense, EmptyBatch) {
  POLYTASK_REQUIRE_GPU();
  // n = 0: no rows, so db is all zeros (Overwrite) or keeps its seed (Accumulate).
  const DenseShape s{0, 4, 5};
  DeviceArray<float> x(0), dy(0), dw(sz(s.out * s.in)), db(sz(s.out));
  dense_backward_filter(s, x.get(), dy.get(), dw.get(), db.get(), GradMode::Overwrite,
                        test_stream());
  for (const float v : dw.download()) EXPECT_EQ(v, 0.0f);
  for (const float v : db.download()) EXPECT_EQ(v, 0.0f);
  const std::vector<float> seed_db = random_vector<float>(sz(s.out), 600);
  db.upload(seed_db);
  dense_backward_filter(s, x.get(), dy.get(), dw.get(), db.get(), GradMode::Accumulate,
                        test_stream());
  EXPECT_EQ(db.download(), seed_db);
}

}  // namespace
}  // namespace polytask::kernels::cuda
