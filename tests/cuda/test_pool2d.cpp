// CUDA max pooling (kernels/cuda/pool2d.cu) against the CPU reference, bit for bit: odd shapes
// with non-overlapping, overlapping (stride < kernel), gapped (stride > kernel) and non-square
// windows, inputs with ties (small integers), NaN and infinities, the workload shapes,
// NaN-poisoned outputs, Overwrite and Accumulate over pre-seeded gradients, bit-identical
// repeats, and (on a GPU with cuDNN) cuDNN as a second oracle.
//
// Why bit for bit: forward only compares and copies input values, and backward adds the same
// float values in the same order from the same start as the CPU (see pool2d.cu), so there is no
// rounding to tolerate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/pool2d.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"
#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
#include "kernels/vendor/cudnn_ops.h"
#endif

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

int64_t in_count(const MaxPool2dShape& s) { return s.n * s.c * s.h_in * s.w_in; }
int64_t out_count(const MaxPool2dShape& s) { return s.n * s.c * s.h_out * s.w_out; }

std::string describe(const MaxPool2dShape& s) {
  return std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.h_in) + "x" +
         std::to_string(s.w_in) + " k" + std::to_string(s.k_h) + "x" + std::to_string(s.k_w) +
         " s" + std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w);
}

// Odd sizes with every kind of window: N=3, C=5, H=W=11 under 2x2 and 3x3 windows at strides
// 1, 2, 3 (overlapping, tiling, gapped), non-square windows and strides, a window spanning the
// whole plane, and planes whose last rows and columns no window covers.
std::vector<MaxPool2dShape> odd_shapes() {
  struct Window {
    int64_t k_h, k_w, s_h, s_w;
  };
  std::vector<MaxPool2dShape> shapes;
  for (const Window w : {Window{2, 2, 2, 2}, Window{3, 3, 3, 3}, Window{2, 2, 1, 1},
                         Window{3, 3, 1, 1}, Window{3, 3, 2, 2}, Window{2, 2, 3, 3},
                         Window{1, 1, 1, 1}, Window{2, 3, 1, 2}, Window{3, 2, 2, 1}})
    shapes.push_back(max_pool2d_shape(3, 5, 11, 11, w.k_h, w.k_w, w.s_h, w.s_w));
  shapes.push_back(max_pool2d_shape(2, 3, 7, 5, 7, 5, 1, 1));    // one window per plane
  shapes.push_back(max_pool2d_shape(2, 3, 9, 13, 3, 3, 2, 2));   // non-square plane
  shapes.push_back(max_pool2d_shape(1, 1, 1, 1, 1, 1, 1, 1));    // a single element
  shapes.push_back(max_pool2d_shape(1, 2, 16, 16, 4, 4, 1, 1));  // 16 windows per input
  return shapes;
}

// The workload's pools (2x2, stride 2, after the convolutions of the conv presets): at batch 128
// on a GPU, at batch 2 in emulation (the emulator runs a fiber per thread) and under
// POLYTASK_TEST_SMALL (tests/support/cuda_test.h).
std::vector<MaxPool2dShape> workload_shapes() {
  const int64_t n = polytask::testing::small_shapes() ? 2 : 128;
  return {max_pool2d_shape(n, 32, 26, 26, 2, 2, 2, 2), max_pool2d_shape(n, 64, 11, 11, 2, 2, 2, 2),
          max_pool2d_shape(n, 32, 32, 32, 2, 2, 2, 2)};
}

enum class Values { Random, Ties, Special };

// Random: distinct-ish floats in [-1, 1). Ties: integers 0..3, so most windows hold equal maxima
// (the first in row-major order must win). Special: random with NaN, +inf and -inf sprinkled
// in (a NaN must win its window; with two NaNs, the first).
std::vector<float> make_input(int64_t count, Values kind, uint64_t seed) {
  std::vector<float> x = random_vector<float>(sz(count), seed, -1.0, 1.0);
  if (kind == Values::Ties)
    for (float& v : x) v = std::floor((v + 1.0f) * 2.0f);
  if (kind == Values::Special)
    for (size_t i = 0; i < x.size(); ++i) {
      if (i % 7 == 3) x[i] = std::numeric_limits<float>::quiet_NaN();
      if (i % 11 == 5) x[i] = std::numeric_limits<float>::infinity();
      if (i % 13 == 1) x[i] = -std::numeric_limits<float>::infinity();
    }
  return x;
}

const char* values_name(Values kind) {
  return kind == Values::Random ? "random" : (kind == Values::Ties ? "ties" : "nan/inf");
}

template <class T>
::testing::AssertionResult same_bits(const std::vector<T>& actual, const std::vector<T>& expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " vs " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << actual[i]
                                           << " vs expected " << expected[i];
  return ::testing::AssertionSuccess();
}

struct Forward {
  std::vector<float> y;
  std::vector<int32_t> argmax;
};

Forward cpu_forward(const MaxPool2dShape& s, const std::vector<float>& x) {
  Forward f{std::vector<float>(sz(out_count(s))), std::vector<int32_t>(sz(out_count(s)))};
  cpu::max_pool2d_forward<float>(s, x.data(), f.y.data(), f.argmax.data());
  return f;
}

// Outputs start poisoned (NaN, argmax -1) so unwritten elements show.
Forward cuda_forward(const MaxPool2dShape& s, const std::vector<float>& x) {
  DeviceArray<float> d_x(x), d_y(sz(out_count(s)));
  DeviceArray<int32_t> d_argmax(sz(out_count(s)));
  max_pool2d_forward(s, d_x.get(), d_y.get(), d_argmax.get(), test_stream());
  return {d_y.download(), d_argmax.download()};
}

// dx for the given argmax: Overwrite into a NaN-poisoned buffer, Accumulate onto `seed`.
// relu_y: the fused ReLU backward's gate (the pool's output), empty for the plain backward.
std::vector<float> cuda_backward(const MaxPool2dShape& s, const std::vector<float>& dy,
                                 const std::vector<int32_t>& argmax, GradMode mode,
                                 const std::vector<float>& seed,
                                 const std::vector<float>& relu_y = {}) {
  DeviceArray<float> d_dy(dy), d_dx(sz(in_count(s))), d_relu_y(relu_y);
  DeviceArray<int32_t> d_argmax(argmax);
  if (mode == GradMode::Accumulate) d_dx.upload(seed);
  max_pool2d_backward(s, d_dy.get(), d_argmax.get(), d_dx.get(), mode, test_stream(),
                      relu_y.empty() ? nullptr : d_relu_y.get());
  return d_dx.download();
}

void expect_forward_matches(const MaxPool2dShape& s, Values kind, uint64_t seed) {
  const std::vector<float> x = make_input(in_count(s), kind, seed);
  const Forward expected = cpu_forward(s, x);
  const Forward got = cuda_forward(s, x);
  EXPECT_TRUE(same_bits(got.y, expected.y)) << describe(s) << " " << values_name(kind);
  EXPECT_EQ(got.argmax, expected.argmax) << describe(s) << " " << values_name(kind);
}

// Plain, and with the ReLU backward fused in (gated by the pool's output: the ties and special
// values include zeros and negatives, so the gate closes on some windows).
void expect_backward_matches(const MaxPool2dShape& s, Values kind, uint64_t seed) {
  const std::vector<float> x = make_input(in_count(s), kind, seed);
  const Forward f = cpu_forward(s, x);
  const std::vector<float> dy = random_vector<float>(sz(out_count(s)), seed + 1);
  for (bool fused : {false, true})
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const std::vector<float> dx_seed = random_vector<float>(sz(in_count(s)), seed + 2);
      std::vector<float> expected = dx_seed;
      cpu::max_pool2d_backward<float>(s, dy.data(), f.argmax.data(), expected.data(), mode,
                                      fused ? f.y.data() : nullptr);
      const std::vector<float> gate = fused ? f.y : std::vector<float>{};
      EXPECT_TRUE(same_bits(cuda_backward(s, dy, f.argmax, mode, dx_seed, gate), expected))
          << describe(s) << " " << values_name(kind)
          << (mode == GradMode::Accumulate ? " accumulate" : " overwrite")
          << (fused ? " relu-gated" : "");
    }
}

TEST(CudaPool2d, ForwardMatchesCpuBitForBit) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const MaxPool2dShape& s : odd_shapes())
    for (Values kind : {Values::Random, Values::Ties, Values::Special})
      expect_forward_matches(s, kind, seed += 3);
}

TEST(CudaPool2d, BackwardMatchesCpuBitForBit) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 200;
  // Ties with overlapping windows send several windows' gradients to one input: the sums must
  // run in the CPU's order to agree to the bit.
  for (const MaxPool2dShape& s : odd_shapes())
    for (Values kind : {Values::Random, Values::Ties}) expect_backward_matches(s, kind, seed += 3);
}

TEST(CudaPool2d, WorkloadShapesMatchCpu) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 300;
  for (const MaxPool2dShape& s : workload_shapes()) {
    expect_forward_matches(s, Values::Random, seed += 3);
    expect_forward_matches(s, Values::Ties, seed += 3);
    expect_backward_matches(s, Values::Ties, seed += 3);
  }
}

TEST(CudaPool2d, BackwardOfCudaForwardMatchesCpuEndToEnd) {
  POLYTASK_REQUIRE_GPU();
  const MaxPool2dShape s = max_pool2d_shape(3, 5, 11, 11, 3, 3, 2, 2);
  const std::vector<float> x = make_input(in_count(s), Values::Ties, 400);
  const std::vector<float> dy = random_vector<float>(sz(out_count(s)), 401);
  DeviceArray<float> d_x(x), d_y(sz(out_count(s))), d_dy(dy), d_dx(sz(in_count(s)));
  DeviceArray<int32_t> d_argmax(sz(out_count(s)));
  max_pool2d_forward(s, d_x.get(), d_y.get(), d_argmax.get(), test_stream());
  max_pool2d_backward(s, d_dy.get(), d_argmax.get(), d_dx.get(), GradMode::Overwrite,
                      test_stream());
  const Forward f = cpu_forward(s, x);
  std::vector<float> expected(sz(in_count(s)));
  cpu::max_pool2d_backward<float>(s, dy.data(), f.argmax.data(), expected.data(),
                                  GradMode::Overwrite);
  EXPECT_TRUE(same_bits(d_dx.download(), expected));
}

TEST(CudaPool2d, RepeatsAreBitIdentical) {
  POLYTASK_REQUIRE_GPU();
  for (const MaxPool2dShape& s : {max_pool2d_shape(3, 5, 11, 11, 3, 3, 1, 1),
                                  max_pool2d_shape(3, 5, 11, 11, 2, 2, 2, 2)}) {
    const std::vector<float> x = make_input(in_count(s), Values::Ties, 500);
    const std::vector<float> dy = random_vector<float>(sz(out_count(s)), 501);
    const std::vector<float> dx_seed = random_vector<float>(sz(in_count(s)), 502);
    const Forward first = cuda_forward(s, x), second = cuda_forward(s, x);
    EXPECT_TRUE(same_bits(first.y, second.y)) << describe(s);
    EXPECT_EQ(first.argmax, second.argmax) << describe(s);
    EXPECT_TRUE(same_bits(cuda_backward(s, dy, first.argmax, GradMode::Accumulate, dx_seed),
                          cuda_backward(s, dy, first.argmax, GradMode::Accumulate, dx_seed)))
        << describe(s);
  }
}

TEST(CudaPool2d, RejectsPlanesTooLargeForInt32Argmax) {
  POLYTASK_REQUIRE_GPU();
  MaxPool2dShape s = max_pool2d_shape(1, 1, 2, 2, 2, 2, 2, 2);
  s.h_in = s.w_in = 50000;  // 2.5e9 elements per plane; rejected before any memory is touched
  EXPECT_THROW(max_pool2d_forward(s, nullptr, nullptr, nullptr, test_stream()), Error);
  EXPECT_THROW(max_pool2d_backward(s, nullptr, nullptr, nullptr, GradMode::Overwrite,
                                   test_stream()),
               Error);
}

#if !defined(POLYTASK_CUDA_EMULATION) && defined(POLYTASK_WITH_CUDNN)
// Distinct values (a shuffled ramp), so no window holds a tie and cuDNN's argmax — recomputed
// from x and y in backward — is ours.
std::vector<float> tie_free_input(int64_t count, uint64_t seed) {
  std::vector<float> x(sz(count));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 1e-3f - 7.0f;
  std::mt19937_64 rng(seed);
  std::shuffle(x.begin(), x.end(), rng);
  return x;
}

// cuDNN as a second oracle. Forward: the maxima are input values, so y must match bit for bit
// (NaN-for-NaN with NaN inputs). Backward: each dx is a sum of at most ceil(k/stride)² dy terms
// of magnitude ≤ 1 (plus the seed with Accumulate) that cuDNN may add in another order: a few
// float ulps of the operands, 1e-6 absolute.
TEST(CudaPool2d, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  vendor::CudnnHandle handle;
  std::vector<MaxPool2dShape> shapes = odd_shapes();
  for (const MaxPool2dShape& s : workload_shapes()) shapes.push_back(s);
  uint64_t seed = 600;
  for (const MaxPool2dShape& s : shapes) {
    const std::vector<float> x = tie_free_input(in_count(s), seed += 3);
    const Forward ours = cuda_forward(s, x);
    DeviceArray<float> d_x(x), d_y(sz(out_count(s)));
    vendor::cudnn_max_pool2d_forward(handle, s, d_x.get(), d_y.get(), test_stream());
    EXPECT_TRUE(same_bits(d_y.download(), ours.y)) << describe(s) << " forward";

    const std::vector<float> dy = random_vector<float>(sz(out_count(s)), seed + 1);
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const std::vector<float> dx_seed = random_vector<float>(sz(in_count(s)), seed + 2);
      const std::vector<float> mine = cuda_backward(s, dy, ours.argmax, mode, dx_seed);
      DeviceArray<float> d_dy(dy), d_dx(sz(in_count(s)));
      if (mode == GradMode::Accumulate) d_dx.upload(dx_seed);
      vendor::cudnn_max_pool2d_backward(handle, s, d_x.get(), d_y.get(), d_dy.get(), d_dx.get(),
                                        mode, test_stream());
      EXPECT_TRUE(all_close(mine, d_dx.download(), 1e-6, 1e-6))
          << describe(s) << (mode == GradMode::Accumulate ? " accumulate" : " overwrite");
    }
  }
  // NaN propagation (CUDNN_PROPAGATE_NAN): the same windows are NaN.
  const MaxPool2dShape s = max_pool2d_shape(3, 5, 11, 11, 3, 3, 2, 2);
  const std::vector<float> x = make_input(in_count(s), Values::Special, 650);
  const Forward ours = cuda_forward(s, x);
  DeviceArray<float> d_x(x), d_y(sz(out_count(s)));
  vendor::cudnn_max_pool2d_forward(handle, s, d_x.get(), d_y.get(), test_stream());
  const std::vector<float> theirs = d_y.download();
  for (size_t i = 0; i < theirs.size(); ++i)
    EXPECT_TRUE(std::isnan(theirs[i]) ? std::isnan(ours.y[i]) : theirs[i] == ours.y[i])
        << "element " << i << ": cuDNN " << theirs[i] << " vs ours " << ours.y[i];
}
#else
TEST(CudaPool2d, AgreesWithCudnn) {
  POLYTASK_REQUIRE_GPU();
  GTEST_SKIP() << (polytask::testing::kEmulated
                       ? "emulated build: cuDNN runs only on a GPU"
                       : "built without cuDNN (POLYTASK_WITH_CUDNN is not defined)");
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
