// CUDA elementwise ops (kernels/cuda/elementwise.cu) against the CPU reference: odd sizes and the
// workload's, NaN-poisoned outputs, Overwrite and Accumulate over non-zero seeds, the float4 and
// scalar paths (shared and mixed misalignment), in-place ReLU, concat with null gradients and the
// part limit, and the fan-out's weighted sum.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/error.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Odd sizes around the float4 and block edges, and the workload's (128x10 logits, a 128x64
// activation, a 65536-element layer).
const std::vector<int64_t> kSizes = {1, 3, 4, 5, 31, 33, 1000, 1280, 4099, 8192, 65536};

size_t sz(int64_t v) { return static_cast<size_t>(v); }

// Exact equality, NaN included: ops that are a select, a copy or one IEEE operation must give
// the CPU's bits.
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

// Inputs in [-1, 1] with some exact zeros and a NaN, the cases where ReLU's convention shows.
std::vector<float> relu_input(int64_t count, uint64_t seed) {
  std::vector<float> x = random_vector<float>(sz(count), seed);
  for (int64_t i = 0; i < count; i += 7) x[sz(i)] = 0.0f;
  if (count > 10) x[10] = kNaN;
  return x;
}

// A device buffer with `offset` floats of slack in front, to place an array at a chosen
// misalignment; the slack and everything else start NaN-poisoned.
struct Placed {
  DeviceArray<float> buffer;
  int64_t offset;
  Placed(int64_t count, int64_t offset_) : buffer(sz(count + 4)), offset(offset_) {}
  float* get() const { return buffer.get() + offset; }
  void upload(const std::vector<float>& host) const {
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  std::vector<float> download(int64_t count) const {
    std::vector<float> host(sz(count));
    POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(host.data(), get(), host.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }
};

TEST(CudaElementwise, FillWritesEveryElement) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes)
    for (int64_t offset : {0, 1, 3}) {
      Placed y(n, offset);
      fill(n, 0.25f, y.get(), test_stream());
      EXPECT_TRUE(same_bits(y.download(n), std::vector<float>(sz(n), 0.25f)))
          << "n=" << n << " offset=" << offset;
      // The slack before and after stays untouched (NaN).
      const std::vector<float> whole = y.buffer.download();
      for (int64_t i = 0; i < offset; ++i) EXPECT_TRUE(std::isnan(whole[sz(i)]));
      for (int64_t i = offset + n; i < n + 4; ++i) EXPECT_TRUE(std::isnan(whole[sz(i)]));
    }
}

TEST(CudaElementwise, CopyMatchesInput) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> x = random_vector<float>(sz(n), 11);
    DeviceArray<float> dx(x), dy(sz(n));
    copy(n, dx.get(), dy.get(), test_stream());
    EXPECT_TRUE(same_bits(dy.download(), x)) << "n=" << n;
  }
}

TEST(CudaElementwise, ReluForwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> x = relu_input(n, 21);
    std::vector<float> expected(sz(n));
    cpu::relu_forward<float>(n, x.data(), expected.data());
    DeviceArray<float> dx(x), dy(sz(n));
    relu_forward(n, dx.get(), dy.get(), test_stream());
    EXPECT_TRUE(same_bits(dy.download(), expected)) << "n=" << n;
    // In place (y aliases x), as the header allows.
    relu_forward(n, dx.get(), dx.get(), test_stream());
    EXPECT_TRUE(same_bits(dx.download(), expected)) << "in place, n=" << n;
  }
}

TEST(CudaElementwise, ReluBackwardOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes)
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      std::vector<float> y = relu_input(n, 31);
      cpu::relu_forward<float>(n, y.data(), y.data());
      const std::vector<float> dy = random_vector<float>(sz(n), 32);
      std::vector<float> expected = random_vector<float>(sz(n), 33);  // the seed
      DeviceArray<float> d_y(y), d_dy(dy), d_dx(sz(n));
      if (mode == GradMode::Accumulate) d_dx.upload(expected);
      cpu::relu_backward<float>(n, y.data(), dy.data(), expected.data(), mode);
      relu_backward(n, d_y.get(), d_dy.get(), d_dx.get(), mode, test_stream());
      // A select and at most one float addition: the CPU's bits.
      EXPECT_TRUE(same_bits(d_dx.download(), expected))
          << "n=" << n << (mode == GradMode::Accumulate ? " accumulate" : " overwrite");
    }
}

TEST(CudaElementwise, AddForwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes) {
    const std::vector<float> a = random_vector<float>(sz(n), 41),
                             b = random_vector<float>(sz(n), 42);
    std::vector<float> expected(sz(n));
    cpu::add_forward<float>(n, a.data(), b.data(), expected.data());
    DeviceArray<float> da(a), db(b), dy(sz(n));
    add_forward(n, da.get(), db.get(), dy.get(), test_stream());
    EXPECT_TRUE(same_bits(dy.download(), expected)) << "n=" << n;
  }
}

TEST(CudaElementwise, ScaleGradOverwriteAndAccumulate) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kSizes)
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const std::vector<float> dy = random_vector<float>(sz(n), 51);
      std::vector<float> expected = random_vector<float>(sz(n), 52);
      DeviceArray<float> d_dy(dy), d_dx(sz(n));
      if (mode == GradMode::Accumulate) d_dx.upload(expected);
      cpu::scale_grad<float>(n, -0.37f, dy.data(), expected.data(), mode);
      scale_grad(n, -0.37f, d_dy.get(), d_dx.get(), mode, test_stream());
      if (mode == GradMode::Overwrite) {
        EXPECT_TRUE(same_bits(d_dx.download(), expected)) << "n=" << n;  // one multiply
      } else {
        // dx + s·dy: nvcc fuses it into one fma, which skips the rounding of s·dy the CPU makes;
        // the two differ by at most an ulp of the result (|result| < 1.37, so 2^-23 ≈ 1.2e-7),
        // doubled for margin. A missed or doubled term would be off by ~0.37.
        EXPECT_TRUE(all_close(d_dx.download(), expected, 0.0, 2.4e-7)) << "n=" << n;
      }
    }
}

// The float4 path with every array at the same misalignment (a scalar head, then float4s), and
// the all-scalar fallback when they differ.
TEST(CudaElementwise, MisalignedArraysTakeTheHeadAndScalarPaths) {
  POLYTASK_REQUIRE_GPU();
  struct Offsets {
    int64_t a, b, y;
  };
  for (int64_t n : {1, 2, 5, 33, 1000, 4099})
    for (Offsets o : {Offsets{1, 1, 1}, Offsets{2, 2, 2}, Offsets{3, 3, 3}, Offsets{0, 1, 2},
                      Offsets{3, 0, 0}}) {
      const std::vector<float> a = random_vector<float>(sz(n), 61),
                               b = random_vector<float>(sz(n), 62);
      std::vector<float> seed = random_vector<float>(sz(n), 63);
      Placed pa(n, o.a), pb(n, o.b), py(n, o.y);
      pa.upload(a);
      pb.upload(b);
      std::vector<float> expected(sz(n));
      cpu::add_forward<float>(n, a.data(), b.data(), expected.data());
      add_forward(n, pa.get(), pb.get(), py.get(), test_stream());
      EXPECT_TRUE(same_bits(py.download(n), expected))
          << "add n=" << n << " offsets " << o.a << o.b << o.y;

      py.upload(seed);
      cpu::relu_backward<float>(n, a.data(), b.data(), seed.data(), GradMode::Accumulate);
      relu_backward(n, pa.get(), pb.get(), py.get(), GradMode::Accumulate, test_stream());
      EXPECT_TRUE(same_bits(py.download(n), seed))
          << "relu' n=" << n << " offsets " << o.a << o.b << o.y;
      const std::vector<float> whole = py.buffer.download();
      for (int64_t i = o.y + n; i < n + 4; ++i)
        EXPECT_TRUE(std::isnan(whole[sz(i)])) << "wrote past the end";
    }
}

TEST(CudaElementwise, EmptyCountsLaunchNothing) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(4), y(4);
  fill(0, 1.0f, y.get(), test_stream());
  relu_forward(0, x.get(), y.get(), test_stream());
  scale_grad(0, 2.0f, x.get(), y.get(), GradMode::Accumulate, test_stream());
  for (float v : y.download()) EXPECT_TRUE(std::isnan(v));
}

struct ConcatCase {
  int64_t outer;
  std::vector<int64_t> inner;
};

TEST(CudaElementwise, ConcatForwardAndBackward) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<ConcatCase> cases = {{1, {1}},
                                         {7, {3, 1, 5}},
                                         {33, {2, 0, 31}},
                                         {128, {64, 10}},
                                         {5, {1, 2, 3, 4, 5, 6, 7, 8}},
                                         {3, {1000, 33}}};
  for (const ConcatCase& c : cases) {
    const int parts = static_cast<int>(c.inner.size());
    int64_t total = 0;
    for (int64_t w : c.inner) total += w;
    std::vector<std::vector<float>> host;
    std::vector<std::unique_ptr<DeviceArray<float>>> device;
    std::vector<const float*> host_ptrs, device_ptrs;
    for (int p = 0; p < parts; ++p) {
      host.push_back(random_vector<float>(sz(c.outer * c.inner[sz(p)]), 70 + sz(p)));
      device.push_back(std::make_unique<DeviceArray<float>>(host.back()));
    }
    for (int p = 0; p < parts; ++p) {
      host_ptrs.push_back(host[sz(p)].data());
      device_ptrs.push_back(device[sz(p)]->get());
    }
    std::vector<float> expected(sz(c.outer * total));
    cpu::concat_forward<float>(c.outer, parts, c.inner.data(), host_ptrs.data(), expected.data());
    DeviceArray<float> y(sz(c.outer * total));
    concat_forward(c.outer, parts, c.inner.data(), device_ptrs.data(), y.get(), test_stream());
    EXPECT_TRUE(same_bits(y.download(), expected)) << "forward, outer " << c.outer;

    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const std::vector<float> dy = random_vector<float>(sz(c.outer * total), 80);
      DeviceArray<float> d_dy(dy);
      // Part 1 (when there is one) needs no gradient: a null pointer, skipped.
      std::vector<std::vector<float>> seeds;
      std::vector<std::unique_ptr<DeviceArray<float>>> d_parts;
      std::vector<float*> host_dparts, device_dparts;
      for (int p = 0; p < parts; ++p) {
        seeds.push_back(random_vector<float>(sz(c.outer * c.inner[sz(p)]), 90 + sz(p)));
        d_parts.push_back(std::make_unique<DeviceArray<float>>(sz(c.outer * c.inner[sz(p)])));
        if (mode == GradMode::Accumulate && p != 1) d_parts.back()->upload(seeds.back());
      }
      for (int p = 0; p < parts; ++p) {
        const bool skipped = p == 1;
        host_dparts.push_back(skipped ? nullptr : seeds[sz(p)].data());
        device_dparts.push_back(skipped ? nullptr : d_parts[sz(p)]->get());
      }
      cpu::concat_backward<float>(c.outer, parts, c.inner.data(), dy.data(), host_dparts.data(),
                                  mode);
      concat_backward(c.outer, parts, c.inner.data(), d_dy.get(), device_dparts.data(), mode,
                      test_stream());
      for (int p = 0; p < parts; ++p) {
        const std::vector<float> got = d_parts[sz(p)]->download();
        if (p == 1) {
          for (float v : got) EXPECT_TRUE(std::isnan(v)) << "a skipped part was written";
        } else {
          EXPECT_TRUE(same_bits(got, seeds[sz(p)]))
              << "backward part " << p << ", outer " << c.outer;
        }
      }
    }
  }
}

TEST(CudaElementwise, ConcatRejectsTooManyParts) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(1), y(9);
  const std::vector<int64_t> inner(9, 1);
  const std::vector<const float*> parts(9, x.get());
  EXPECT_THROW(concat_forward(1, 9, inner.data(), parts.data(), y.get(), test_stream()), Error);
  EXPECT_THROW(concat_forward(1, 0, inner.data(), parts.data(), y.get(), test_stream()), Error);
}

// The reference the kernel promises: Σ c_p·x_p in part order, each step a double fma, rounded to
// float once.
std::vector<float> weighted_sum_reference(const std::vector<std::vector<float>>& xs,
                                          const std::vector<float>& c, size_t count) {
  std::vector<float> y(count);
  for (size_t i = 0; i < count; ++i) {
    double sum = 0.0;
    for (size_t p = 0; p < xs.size(); ++p)
      sum = std::fma(static_cast<double>(c[p]), static_cast<double>(xs[p][i]), sum);
    y[i] = static_cast<float>(sum);
  }
  return y;
}

TEST(CudaElementwise, WeightedSumMatchesItsReference) {
  POLYTASK_REQUIRE_GPU();
  for (int parts : {0, 1, 2, 3, kMaxWeightedSumParts})
    for (int64_t n : {1, 33, 4099}) {
      std::vector<std::vector<float>> xs;
      std::vector<std::unique_ptr<DeviceArray<float>>> device;
      std::vector<const float*> pointers;
      const std::vector<float> c = random_vector<float>(sz(parts), 100, -2.0, 2.0);
      for (int p = 0; p < parts; ++p) {
        xs.push_back(random_vector<float>(sz(n), 101 + sz(p)));
        device.push_back(std::make_unique<DeviceArray<float>>(xs.back()));
        pointers.push_back(device.back()->get());
      }
      DeviceArray<float> y(sz(n));
      weighted_sum(n, parts, pointers.data(), c.data(), y.get(), test_stream());
      // Double fmas in a fixed order, rounded once: the reference's bits exactly.
      EXPECT_TRUE(same_bits(y.download(), weighted_sum_reference(xs, c, sz(n))))
          << parts << " parts, n=" << n;
      if (parts > 0) {  // y aliasing the first part
        weighted_sum(n, parts, pointers.data(), c.data(), device[0]->get(), test_stream());
        EXPECT_TRUE(same_bits(device[0]->download(), weighted_sum_reference(xs, c, sz(n))));
      }
    }
}

TEST(CudaElementwise, WeightedSumRejectsTooManyParts) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(1), y(1);
  const std::vector<const float*> xs(kMaxWeightedSumParts + 1, x.get());
  const std::vector<float> c(kMaxWeightedSumParts + 1, 1.0f);
  EXPECT_THROW(
      weighted_sum(1, kMaxWeightedSumParts + 1, xs.data(), c.data(), y.get(), test_stream()),
      Error);
}

}  // namespace
}  // namespace polytask::kernels::cuda
