// CUDA mixing ops (kernels/cuda/mixing.cu) against the CPU reference: row widths across every
// row-group size (4, 8, 16, 32 lanes and a whole block), odd row counts, NaN-poisoned outputs,
// Overwrite and Accumulate over non-zero seeds, skipped (null) gradients, an input's gradient
// written twice into one buffer, the alpha gradient's one-pass, two-pass and (on a GPU) capped
// grids with the workload's size, and the same bits on a second run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/error.h"
#include "kernels/mixing.h"
#include "kernels/reduce.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::small_shapes;
using polytask::testing::test_stream;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const GradMode kModes[] = {GradMode::Overwrite, GradMode::Accumulate};

size_t sz(int64_t v) { return static_cast<size_t>(v); }

const char* mode_name(GradMode mode) {
  return mode == GradMode::Accumulate ? "accumulate" : "overwrite";
}

// Exact equality, NaN included: the elementwise ops form the CPU's double sums or single float
// products, so they must give the CPU's bits.
::testing::AssertionResult same_bits(const std::vector<float>& actual,
                                     const std::vector<float>& expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << ": " << actual[i] << " vs expected " << expected[i];
  return ::testing::AssertionSuccess();
}

// The reductions (softmax's sums, the gate and alpha gradients) add in double in another fixed
// order than the CPU and round to float once: the results may differ in the last bit. A value
// near 2 has an ulp of 2.4e-7; a missed or doubled term would be off by far more.
constexpr double kReductionRel = 2.4e-7, kReductionAbs = 2.4e-7;

// ---- softmax ----------------------------------------------------------------------------------

struct RowCase {
  int64_t rows, features;
};

// Widths for each row group (<= 4, 8, 16, 32 lanes for up to 1024, a block beyond), odd row
// counts around a block's turn of rows (256 / lanes).
const std::vector<RowCase> kRowCases = {{1, 1},    {3, 3},    {7, 4},   {65, 5}, {33, 8},
                                        {17, 9},   {130, 16}, {9, 17},  {5, 33}, {70, 100},
                                        {3, 1024}, {2, 1025}, {3, 3000}};

TEST(CudaMixing, SoftmaxForwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const RowCase& c : kRowCases) {
    const int64_t n = c.rows * c.features;
    std::vector<float> x = random_vector<float>(sz(n), 1, -4.0, 4.0);
    x[0] += 1000.0f;  // a large logit: the row maximum keeps exp finite
    std::vector<float> expected(sz(n));
    cpu::softmax_forward<float>(c.rows, c.features, x.data(), expected.data());
    DeviceArray<float> d_x(x), d_y(sz(n));  // d_y starts NaN-poisoned
    softmax_forward(c.rows, c.features, d_x.get(), d_y.get(), test_stream());
    EXPECT_TRUE(all_close(d_y.download(), expected, kReductionRel, 0.0))
        << c.rows << " rows of " << c.features;
  }
}

TEST(CudaMixing, SoftmaxRowWithNaNIsNaNAsOnTheCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t features : {3, 40, 2000}) {
    std::vector<float> x = random_vector<float>(sz(2 * features), 2);
    x[sz(features / 2)] = kNaN;  // in row 0 only
    std::vector<float> expected(x.size());
    cpu::softmax_forward<float>(2, features, x.data(), expected.data());
    DeviceArray<float> d_x(x), d_y(x.size());
    softmax_forward(2, features, d_x.get(), d_y.get(), test_stream());
    const std::vector<float> got = d_y.download();
    for (int64_t j = 0; j < features; ++j) EXPECT_TRUE(std::isnan(got[sz(j)])) << features;
    const std::vector<float> second(got.begin() + features, got.end());
    EXPECT_TRUE(all_close(second, std::vector<float>(expected.begin() + features, expected.end()),
                          kReductionRel, 0.0));
  }
}

TEST(CudaMixing, SoftmaxBackwardOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  for (const RowCase& c : kRowCases)
    for (GradMode mode : kModes) {
      const int64_t n = c.rows * c.features;
      std::vector<float> y(sz(n));
      const std::vector<float> x = random_vector<float>(sz(n), 3, -2.0, 2.0);
      cpu::softmax_forward<float>(c.rows, c.features, x.data(), y.data());
      const std::vector<float> dy = random_vector<float>(sz(n), 4);
      std::vector<float> expected = random_vector<float>(sz(n), 5);  // the seed
      DeviceArray<float> d_y(y), d_dy(dy), d_dx(sz(n));
      if (mode == GradMode::Accumulate) d_dx.upload(expected);
      cpu::softmax_backward<float>(c.rows, c.features, y.data(), dy.data(), expected.data(), mode);
      softmax_backward(c.rows, c.features, d_y.get(), d_dy.get(), d_dx.get(), mode, test_stream());
      EXPECT_TRUE(all_close(d_dx.download(), expected, kReductionRel, kReductionAbs))
          << c.rows << " rows of " << c.features << ", " << mode_name(mode);
    }
}

// ---- mixture ----------------------------------------------------------------------------------

const std::vector<MixtureShape> kMixtureShapes = {
    {1, 1, 1}, {3, 2, 5}, {7, 3, 33}, {33, 8, 64}, {5, 4, 1030}, {130, 4, 17}, {4, 3, 0}};

TEST(CudaMixing, MixtureForwardIsTheCpusBits) {
  POLYTASK_REQUIRE_GPU();
  for (const MixtureShape& s : kMixtureShapes) {
    const std::vector<float> experts = random_vector<float>(sz(s.rows * s.experts * s.width), 6);
    const std::vector<float> gate = random_vector<float>(sz(s.rows * s.experts), 7, 0.0, 1.0);
    std::vector<float> expected(sz(s.rows * s.width));
    cpu::mixture_forward<float>(s, experts.data(), gate.data(), expected.data());
    DeviceArray<float> d_experts(experts), d_gate(gate), d_y(expected.size());
    mixture_forward(s, d_experts.get(), d_gate.get(), d_y.get(), test_stream());
    // Double sums of exact float products in expert order, rounded once, as on the CPU.
    EXPECT_TRUE(same_bits(d_y.download(), expected))
        << s.rows << "x" << s.experts << "x" << s.width;
  }
}

TEST(CudaMixing, MixtureBackwardOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  // Each gradient in each mode, the two always in different modes (one kernel call writes
  // both).
  for (const MixtureShape& s : kMixtureShapes)
    for (GradMode experts_mode : kModes) {
      const GradMode gate_mode =
          experts_mode == GradMode::Overwrite ? GradMode::Accumulate : GradMode::Overwrite;
      const int64_t ne = s.rows * s.experts * s.width, ng = s.rows * s.experts;
      const std::vector<float> experts = random_vector<float>(sz(ne), 8);
      const std::vector<float> gate = random_vector<float>(sz(ng), 9, 0.0, 1.0);
      const std::vector<float> dy = random_vector<float>(sz(s.rows * s.width), 10);
      std::vector<float> dexperts = random_vector<float>(sz(ne), 11);  // seeds
      std::vector<float> dgate = random_vector<float>(sz(ng), 12);
      DeviceArray<float> d_experts(experts), d_gate(gate), d_dy(dy), d_dexperts(sz(ne)),
          d_dgate(sz(ng));
      if (experts_mode == GradMode::Accumulate) d_dexperts.upload(dexperts);
      if (gate_mode == GradMode::Accumulate) d_dgate.upload(dgate);
      cpu::mixture_backward<float>(s, experts.data(), gate.data(), dy.data(), dexperts.data(),
                                   experts_mode, dgate.data(), gate_mode);
      mixture_backward(s, d_experts.get(), d_gate.get(), d_dy.get(), d_dexperts.get(), experts_mode,
                       d_dgate.get(), gate_mode, test_stream());
      const std::string where = std::to_string(s.rows) + "x" + std::to_string(s.experts) + "x" +
                                std::to_string(s.width) + " experts " + mode_name(experts_mode) +
                                ", gate " + mode_name(gate_mode);
      // One product (and one addition) per expert element: the CPU's bits.
      EXPECT_TRUE(same_bits(d_dexperts.download(), dexperts)) << where;
      EXPECT_TRUE(all_close(d_dgate.download(), dgate, kReductionRel, kReductionAbs)) << where;
    }
}

TEST(CudaMixing, MixtureBackwardSkipsANullGradient) {
  POLYTASK_REQUIRE_GPU();
  for (const MixtureShape& s : kMixtureShapes) {
    const int64_t ne = s.rows * s.experts * s.width, ng = s.rows * s.experts;
    DeviceArray<float> experts(random_vector<float>(sz(ne), 13));
    DeviceArray<float> gate(random_vector<float>(sz(ng), 14, 0.0, 1.0));
    DeviceArray<float> dy(random_vector<float>(sz(s.rows * s.width), 15));
    // A null gradient is never touched (the emulator would fault on it); the other is written
    // over its NaN poison.
    DeviceArray<float> dexperts(sz(ne)), dgate(sz(ng));
    mixture_backward(s, experts.get(), gate.get(), dy.get(), nullptr, GradMode::Overwrite,
                     dgate.get(), GradMode::Overwrite, test_stream());
    mixture_backward(s, experts.get(), gate.get(), dy.get(), dexperts.get(), GradMode::Overwrite,
                     nullptr, GradMode::Overwrite, test_stream());
    const std::string where =
        std::to_string(s.rows) + "x" + std::to_string(s.experts) + "x" + std::to_string(s.width);
    for (float v : dgate.download()) EXPECT_FALSE(std::isnan(v)) << where;
    for (float v : dexperts.download()) EXPECT_FALSE(std::isnan(v)) << where;
  }
}

// ---- cross-stitch -----------------------------------------------------------------------------

struct StitchData {
  std::vector<std::vector<float>> host;
  std::vector<std::unique_ptr<DeviceArray<float>>> device;
  std::vector<const float*> host_ptrs, device_ptrs;

  StitchData(int inputs, int64_t count, uint64_t seed) {
    for (int s = 0; s < inputs; ++s) {
      host.push_back(random_vector<float>(sz(count), seed + uint64_t(s)));
      device.push_back(std::make_unique<DeviceArray<float>>(host.back()));
    }
    for (int s = 0; s < inputs; ++s) {
      host_ptrs.push_back(host[sz(s)].data());
      device_ptrs.push_back(device[sz(s)]->get());
    }
  }
};

const std::vector<int64_t> kCounts = {1, 5, 33, 1000, 4099};

TEST(CudaMixing, CrossStitchForwardIsTheCpusBits) {
  POLYTASK_REQUIRE_GPU();
  for (int inputs : {1, 2, 3, kMaxCrossStitchInputs})
    for (int64_t n : kCounts) {
      const StitchData x(inputs, n, 20);
      const std::vector<float> alpha = random_vector<float>(sz(inputs), 30, -1.0, 1.0);
      std::vector<float> expected(sz(n));
      cpu::cross_stitch_forward<float>(n, inputs, x.host_ptrs.data(), alpha.data(),
                                       expected.data());
      DeviceArray<float> d_alpha(alpha), d_y(sz(n));
      cross_stitch_forward(n, inputs, x.device_ptrs.data(), d_alpha.get(), d_y.get(),
                           test_stream());
      EXPECT_TRUE(same_bits(d_y.download(), expected)) << inputs << " inputs, n=" << n;
    }
}

TEST(CudaMixing, CrossStitchInputGradientOverwriteAccumulateAndTwiceIntoOneBuffer) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<float> alpha = {0.9f, -0.35f, 0.05f};
  DeviceArray<float> d_alpha(alpha);
  for (int64_t n : kCounts)
    for (GradMode mode : kModes) {
      const std::vector<float> dy = random_vector<float>(sz(n), 40);
      std::vector<float> expected = random_vector<float>(sz(n), 41);
      DeviceArray<float> d_dy(dy), d_dx(sz(n));
      if (mode == GradMode::Accumulate) d_dx.upload(expected);
      cpu::cross_stitch_backward_input<float>(n, alpha.data(), 1, dy.data(), expected.data(), mode);
      cross_stitch_backward_input(n, d_alpha.get(), 1, d_dy.get(), d_dx.get(), mode, test_stream());
      // One product (__fmul_rn, never fused) and at most one addition: the CPU's bits.
      EXPECT_TRUE(same_bits(d_dx.download(), expected)) << "n=" << n << " " << mode_name(mode);

      // The same value passed as inputs 0 and 2: one buffer, Overwrite then Accumulate.
      cpu::cross_stitch_backward_input<float>(n, alpha.data(), 0, dy.data(), expected.data(),
                                              GradMode::Overwrite);
      cpu::cross_stitch_backward_input<float>(n, alpha.data(), 2, dy.data(), expected.data(),
                                              GradMode::Accumulate);
      cross_stitch_backward_input(n, d_alpha.get(), 0, d_dy.get(), d_dx.get(), GradMode::Overwrite,
                                  test_stream());
      cross_stitch_backward_input(n, d_alpha.get(), 2, d_dy.get(), d_dx.get(), GradMode::Accumulate,
                                  test_stream());
      EXPECT_TRUE(same_bits(d_dx.download(), expected)) << "twice, n=" << n;
    }
}

// One block per alpha (<= 4096 elements), two passes (more), the workload's 128 × 32·14·14 on a
// GPU, and past the 256-block cap there (the emulator would take minutes for those).
std::vector<int64_t> alpha_counts() {
  std::vector<int64_t> counts = {1, 5, 4096, 4097, 3 * 4099};
  if (!small_shapes()) {
    counts.push_back(128 * 32 * 14 * 14);
    counts.push_back(257 * 4096 + 3);
  }
  return counts;
}

TEST(CudaMixing, CrossStitchAlphaGradientOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<double> partials(sz(kReduceWorkspace));
  for (int inputs : {1, 2, 3, kMaxCrossStitchInputs})
    for (int64_t n : alpha_counts()) {
      if (inputs == kMaxCrossStitchInputs && n > 4 * 4099) continue;  // enough at 8 inputs
      const StitchData x(inputs, n, 50);
      const std::vector<float> dy = random_vector<float>(sz(n), 60);
      DeviceArray<float> d_dy(dy);
      for (GradMode mode : kModes) {
        std::vector<float> expected = random_vector<float>(sz(inputs), 61);
        DeviceArray<float> d_dalpha(sz(inputs));
        if (mode == GradMode::Accumulate) d_dalpha.upload(expected);
        cpu::cross_stitch_backward_alpha<float>(n, inputs, x.host_ptrs.data(), dy.data(),
                                                expected.data(), mode);
        cross_stitch_backward_alpha(n, inputs, x.device_ptrs.data(), d_dy.get(), d_dalpha.get(),
                                    mode, partials.get(), test_stream());
        EXPECT_TRUE(all_close(d_dalpha.download(), expected, kReductionRel, 1e-6))
            << inputs << " inputs, n=" << n << ", " << mode_name(mode);
      }
    }
}

// A fixed grid and fixed combining orders: a second run gives the same bits, whatever the
// partials workspace held before.
TEST(CudaMixing, ReductionsAreReproducibleToTheBit) {
  POLYTASK_REQUIRE_GPU();
  const int64_t n = 3 * 4099;
  const StitchData x(3, n, 70);
  const std::vector<float> dy = random_vector<float>(sz(n), 71);
  DeviceArray<float> d_dy(dy), first(3), second(3);
  DeviceArray<double> partials(sz(kReduceWorkspace));
  cross_stitch_backward_alpha(n, 3, x.device_ptrs.data(), d_dy.get(), first.get(),
                              GradMode::Overwrite, partials.get(), test_stream());
  partials.poison();
  cross_stitch_backward_alpha(n, 3, x.device_ptrs.data(), d_dy.get(), second.get(),
                              GradMode::Overwrite, partials.get(), test_stream());
  EXPECT_TRUE(same_bits(second.download(), first.download()));

  const MixtureShape s{33, 3, 300};
  DeviceArray<float> experts(random_vector<float>(sz(s.rows * s.experts * s.width), 72));
  DeviceArray<float> gate_dy(random_vector<float>(sz(s.rows * s.width), 73));
  DeviceArray<float> gate(sz(s.rows * s.experts)), g1(gate.size()),
      g2(gate.size());  // gate: unread
  mixture_backward(s, experts.get(), gate.get(), gate_dy.get(), nullptr, GradMode::Overwrite,
                   g1.get(), GradMode::Overwrite, test_stream());
  mixture_backward(s, experts.get(), gate.get(), gate_dy.get(), nullptr, GradMode::Overwrite,
                   g2.get(), GradMode::Overwrite, test_stream());
  EXPECT_TRUE(same_bits(g2.download(), g1.download()));
}

TEST(CudaMixing, CrossStitchRejectsInputCountsOutsideOneToEight) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(4), alpha(9), y(4);
  DeviceArray<double> partials(sz(kReduceWorkspace));
  const std::vector<const float*> xs(9, x.get());
  EXPECT_THROW(cross_stitch_forward(4, 9, xs.data(), alpha.get(), y.get(), test_stream()), Error);
  EXPECT_THROW(cross_stitch_forward(4, 0, xs.data(), alpha.get(), y.get(), test_stream()), Error);
  EXPECT_THROW(cross_stitch_backward_alpha(4, 9, xs.data(), x.get(), y.get(), GradMode::Overwrite,
                                           partials.get(), test_stream()),
               Error);
  EXPECT_THROW(cross_stitch_backward_input(4, alpha.get(), 8, x.get(), y.get(), GradMode::Overwrite,
                                           test_stream()),
               Error);
}

}  // namespace
}  // namespace polytask::kernels::cuda
