// CUDA dropout (kernels/cuda/dropout.cu) against the CPU reference, bit for bit: masks and values
// for several (seed, stream) pairs — high words included — and rates from 0 to just below 1,
// odd counts (partial quads), the workload sizes, 16-byte-aligned (float4) and misaligned
// (scalar) arrays, in place, Overwrite and Accumulate over pre-seeded gradients, NaN-poisoned
// outputs, nonzero first indices (data-parallel ranks), bit-identical repeats and invalid rates.
//
// Why bit for bit: the mask is a pure function of (seed, stream, index) and the values are one
// rounding each, as on the CPU (see dropout.cu), so there is nothing to tolerate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/dropout.h"
#include "kernels/error.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

struct Draw {
  uint64_t seed, stream;
};
// Zero, small, and values whose high 32-bit words differ from their low ones (Philox takes each
// as two key / counter words).
const std::vector<Draw> kDraws = {{0, 0},
                                  {1, 0},
                                  {42, 7},
                                  {0xDEADBEEFCAFEF00Dull, 0x123456789ABCDEF0ull},
                                  {std::numeric_limits<uint64_t>::max(), 1ull << 32}};

// 0 keeps all; 1 - 2^-24 is the largest float below 1 (keeps only uniform draws of exactly
// 1 - 2^-24).
const std::vector<float> kRates = {0.0f, 0.1f, 0.3f, 0.5f, 0.9f, 1.0f - 1.0f / 16777216.0f};

// Partial quads (1, 3, 5, 4099), whole quads, and the workload's dropout inputs (heads of 64
// units after a 128-unit trunk, batch 128 and 1024).
std::vector<int64_t> counts() {
  std::vector<int64_t> c = {1, 3, 4, 5, 1001, 4099, 128 * 64, 1024 * 64};
  if (!polytask::testing::kEmulated) c.push_back((int64_t(1) << 24) + 3);
  return c;
}

std::string describe(int64_t count, float rate, const Draw& d) {
  std::ostringstream out;
  out << "count " << count << " rate " << rate << " seed " << d.seed << " stream " << d.stream;
  return out.str();
}

::testing::AssertionResult same_bits(const std::vector<float>& actual,
                                     const std::vector<float>& expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << actual[i]
                                           << " vs expected " << expected[i];
  return ::testing::AssertionSuccess();
}

// x without zeros, so a dropped element (0) is told from a kept one in the comparison.
std::vector<float> nonzero_input(int64_t count, uint64_t seed) {
  std::vector<float> x = random_vector<float>(sz(count), seed, 0.5, 2.0);
  for (size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];
  return x;
}

std::vector<float> cpu_forward(int64_t count, float rate, const Draw& d,
                               const std::vector<float>& x, uint64_t first_index = 0) {
  std::vector<float> y(sz(count));
  cpu::dropout_forward<float>(count, rate, d.seed, d.stream, first_index, x.data(), y.data());
  return y;
}

// Runs forward on device copies placed `offset` floats into their buffers (offset 0: 16-byte
// aligned, the float4 path; 1-3: the scalar path, unless first_index mod 4 = offset puts the
// global quads back on 16-byte boundaries). y starts NaN-poisoned.
std::vector<float> cuda_forward(int64_t count, float rate, const Draw& d,
                                const std::vector<float>& x, int64_t offset = 0,
                                uint64_t first_index = 0) {
  std::vector<float> padded(sz(count + offset), 0.0f);
  std::copy(x.begin(), x.end(), padded.begin() + offset);
  DeviceArray<float> d_x(padded), d_y(padded.size());
  dropout_forward(count, rate, d.seed, d.stream, first_index, d_x.get() + offset,
                  d_y.get() + offset, test_stream());
  const std::vector<float> all = d_y.download();
  return std::vector<float>(all.begin() + offset, all.end());
}

TEST(CudaDropout, ForwardMatchesCpuBitForBit) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (int64_t count : counts()) {
    const std::vector<float> x = nonzero_input(count, seed++);
    for (const Draw& d : kDraws)
      for (float rate : kRates)
        EXPECT_TRUE(same_bits(cuda_forward(count, rate, d, x), cpu_forward(count, rate, d, x)))
            << describe(count, rate, d);
  }
}

// The mask is a function of the element index, not the address: misaligned arrays (the
// scalar path) give the same bits.
TEST(CudaDropout, MisalignedArraysGiveTheSameMask) {
  POLYTASK_REQUIRE_GPU();
  const Draw d = kDraws[3];
  for (int64_t count : {int64_t(5), int64_t(1001), int64_t(4099)}) {
    const std::vector<float> x = nonzero_input(count, 200);
    const std::vector<float> expected = cpu_forward(count, 0.3f, d, x);
    for (int64_t offset : {1, 2, 3})
      EXPECT_TRUE(same_bits(cuda_forward(count, 0.3f, d, x, offset), expected))
          << describe(count, 0.3f, d) << " offset " << offset;
  }
}

TEST(CudaDropout, ForwardInPlaceMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  const Draw d = kDraws[2];
  for (float rate : {0.0f, 0.5f}) {
    const std::vector<float> x = nonzero_input(4099, 300);
    DeviceArray<float> d_x(x);
    dropout_forward(4099, rate, d.seed, d.stream, 0, d_x.get(), d_x.get(), test_stream());
    EXPECT_TRUE(same_bits(d_x.download(), cpu_forward(4099, rate, d, x))) << "rate " << rate;
  }
}

TEST(CudaDropout, BackwardMatchesCpuBitForBit) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 400;
  for (int64_t count : counts())
    for (const Draw& d : {kDraws[0], kDraws[3], kDraws[4]})
      for (float rate : kRates)
        for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate})
          for (int64_t offset : {0, 1}) {
            const std::vector<float> dy = nonzero_input(count, seed++);
            // Accumulate adds onto a seed; Overwrite writes into NaN poison.
            const std::vector<float> dx_seed = random_vector<float>(sz(count), seed++);
            std::vector<float> expected = dx_seed;
            cpu::dropout_backward<float>(count, rate, d.seed, d.stream, 0, dy.data(),
                                         expected.data(), mode);
            std::vector<float> padded_dy(sz(count + offset), 0.0f), padded_dx(padded_dy.size());
            std::copy(dy.begin(), dy.end(), padded_dy.begin() + offset);
            std::copy(dx_seed.begin(), dx_seed.end(), padded_dx.begin() + offset);
            DeviceArray<float> d_dy(padded_dy), d_dx(padded_dx.size());
            if (mode == GradMode::Accumulate) d_dx.upload(padded_dx);
            dropout_backward(count, rate, d.seed, d.stream, 0, d_dy.get() + offset,
                             d_dx.get() + offset, mode, test_stream());
            const std::vector<float> all = d_dx.download();
            EXPECT_TRUE(same_bits(std::vector<float>(all.begin() + offset, all.end()), expected))
                << describe(count, rate, d)
                << (mode == GradMode::Accumulate ? " accumulate" : " overwrite") << " offset "
                << offset;
          }
}

// A nonzero first_index (a data-parallel rank's first global element): the device draws
// Philox index first_index + i for element i as the CPU does, bit for bit, forward and both
// backward modes — first indices inside a Philox block and on one, with high counter words and
// wrapping past 2^64; odd counts; every offset from a 16-byte boundary, so the quads (aligned
// on the global index) run both scalar and float4 (offset = first_index mod 4).
TEST(CudaDropout, FirstIndexMatchesCpuBitForBit) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<uint64_t> firsts = {1, 2, 3, 4, 567, (uint64_t{1} << 34) + 5, ~uint64_t{0} - 2};
  uint64_t seed = 600;
  for (int64_t count : {int64_t(1), int64_t(3), int64_t(5), int64_t(1001), int64_t(4099)})
    for (uint64_t first : firsts)
      for (int64_t offset : {0, 1, 2, 3}) {
        const Draw& d = kDraws[size_t(seed) % kDraws.size()];
        const float rate = 0.3f;
        const std::string what = describe(count, rate, d) + " first_index " +
                                 std::to_string(first) + " offset " + std::to_string(offset);
        const std::vector<float> x = nonzero_input(count, seed++);
        EXPECT_TRUE(same_bits(cuda_forward(count, rate, d, x, offset, first),
                              cpu_forward(count, rate, d, x, first)))
            << what << " forward";
        for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
          // Accumulate adds onto a seed; Overwrite writes into NaN poison.
          const std::vector<float> dx_seed = random_vector<float>(sz(count), seed++);
          std::vector<float> expected = dx_seed;
          cpu::dropout_backward<float>(count, rate, d.seed, d.stream, first, x.data(),
                                       expected.data(), mode);
          std::vector<float> padded_dy(sz(count + offset), 0.0f), padded_dx(padded_dy.size());
          std::copy(x.begin(), x.end(), padded_dy.begin() + offset);
          std::copy(dx_seed.begin(), dx_seed.end(), padded_dx.begin() + offset);
          DeviceArray<float> d_dy(padded_dy), d_dx(padded_dx.size());
          if (mode == GradMode::Accumulate) d_dx.upload(padded_dx);
          dropout_backward(count, rate, d.seed, d.stream, first, d_dy.get() + offset,
                           d_dx.get() + offset, mode, test_stream());
          const std::vector<float> all = d_dx.download();
          EXPECT_TRUE(same_bits(std::vector<float>(all.begin() + offset, all.end()), expected))
              << what << (mode == GradMode::Accumulate ? " accumulate" : " overwrite");
        }
      }
}

// Forward's mask and backward's agree: an element is dropped in dx exactly where it is in y.
TEST(CudaDropout, BackwardRecomputesForwardsMask) {
  POLYTASK_REQUIRE_GPU();
  const int64_t count = 4099;
  const Draw d = kDraws[1];
  const std::vector<float> ones(sz(count), 1.0f);
  DeviceArray<float> x(ones), y(sz(count)), dy(ones), dx(sz(count));
  dropout_forward(count, 0.5f, d.seed, d.stream, 0, x.get(), y.get(), test_stream());
  dropout_backward(count, 0.5f, d.seed, d.stream, 0, dy.get(), dx.get(), GradMode::Overwrite,
                   test_stream());
  const std::vector<float> fwd = y.download(), bwd = dx.download();
  int64_t kept = 0;
  for (size_t i = 0; i < fwd.size(); ++i) {
    EXPECT_EQ(fwd[i] == 0.0f, bwd[i] == 0.0f) << "element " << i;
    kept += fwd[i] != 0.0f ? 1 : 0;
  }
  // 4099 fair coin flips: 2050 ± 32 (1 sd); a constant or broken mask is far outside ± 200.
  EXPECT_NEAR(static_cast<double>(kept), 2049.5, 200.0);
}

// A draw equal to the rate is kept (u >= rate): with the rate set to element 7's own uniform,
// element 7 sits exactly on the boundary, which a '>' would drop.
TEST(CudaDropout, DrawEqualToRateIsKept) {
  POLYTASK_REQUIRE_GPU();
  const int64_t count = 13;
  for (const Draw& d : kDraws) {
    const float rate = philox_uniform(d.seed, d.stream, 7);
    if (!(rate > 0.0f)) continue;  // (rate 0 takes the copy path)
    const std::vector<float> x = nonzero_input(count, 550);
    const std::vector<float> expected = cpu_forward(count, rate, d, x);
    ASSERT_NE(expected[7], 0.0f) << "the CPU keeps the boundary draw";
    EXPECT_TRUE(same_bits(cuda_forward(count, rate, d, x), expected)) << describe(count, rate, d);
  }
}

TEST(CudaDropout, RepeatsAreBitIdentical) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<float> x = nonzero_input(1001, 500);
  EXPECT_TRUE(same_bits(cuda_forward(1001, 0.3f, kDraws[3], x), cuda_forward(1001, 0.3f, kDraws[3], x)));
  // A different draw gives a different mask.
  EXPECT_FALSE(same_bits(cuda_forward(1001, 0.3f, kDraws[3], x), cuda_forward(1001, 0.3f, kDraws[2], x)));
}

TEST(CudaDropout, RejectsInvalidRatesAndCounts) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(4), y(4);
  for (float rate : {1.0f, -0.1f, std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_THROW(dropout_forward(4, rate, 0, 0, 0, x.get(), y.get(), test_stream()), Error) << rate;
    EXPECT_THROW(
        dropout_backward(4, rate, 0, 0, 0, x.get(), y.get(), GradMode::Overwrite, test_stream()),
        Error)
        << rate;
  }
  EXPECT_THROW(dropout_forward(-1, 0.5f, 0, 0, 0, x.get(), y.get(), test_stream()), Error);
  // An empty tensor is fine and touches nothing.
  dropout_forward(0, 0.5f, 0, 0, 0, nullptr, nullptr, test_stream());
  dropout_backward(0, 0.5f, 0, 0, 0, nullptr, nullptr, GradMode::Accumulate, test_stream());
}

}  // namespace
}  // namespace polytask::kernels::cuda
