// The deterministic dot product (kernels/cuda/reduce.cu) against an index-order double sum: the
// single-block path and the two-pass path (up to the kReduceBlocks cap), a poisoned workspace,
// misaligned inputs, and bit-identical repeats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/reduce.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

double download_scalar(const DeviceArray<double>& x) { return x.download()[0]; }

struct Reference {
  double dot = 0.0;        // index-order sum
  double magnitude = 0.0;  // Σ |a_i b_i|, the scale of the rounding error
};

Reference reference_dot(const std::vector<float>& a, const std::vector<float>& b) {
  Reference r;
  for (size_t i = 0; i < a.size(); ++i) {
    const double term = static_cast<double>(a[i]) * static_cast<double>(b[i]);
    r.dot += term;
    r.magnitude += std::fabs(term);
  }
  return r;
}

// Products are exact in double; each of the additions on a path through the sum (a thread's
// chain of ≤ count / threads terms, then ~18 tree levels) rounds by at most 2^-53 of the partial
// sums, which never exceed Σ|a_i b_i|. 1e-13·Σ|a_i b_i| covers the longest chain tested (~100
// terms) with margin, and is far below one missing or doubled term (~Σ|a b| / count).
constexpr double kDotRelTol = 1e-13;

// Sizes for the single-block first pass (≤ 4096), several blocks, and the cap of kReduceBlocks
// blocks with grid-stride turns (> 1024·4096 elements is too slow to emulate, so the cap is
// reached only on a GPU run via the last size).
std::vector<int64_t> dot_sizes() {
  std::vector<int64_t> sizes = {0, 1, 31, 33, 1000, 4096, 4099, 65539, 100000};
  if (!polytask::testing::kEmulated) sizes.push_back(int64_t(kReduceBlocks) * 4096 * 2 + 7);
  return sizes;
}

TEST(CudaReduce, DotMatchesIndexOrderDoubleSum) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : dot_sizes()) {
    const std::vector<float> a = random_vector<float>(sz(n), 1), b = random_vector<float>(sz(n), 2);
    DeviceArray<float> da(a), db(b);
    DeviceArray<double> result(1), partials(sz(kReduceWorkspace));  // both NaN-poisoned
    dot(n, da.get(), db.get(), result.get(), partials.get(), test_stream());
    const Reference ref = reference_dot(a, b);
    EXPECT_NEAR(download_scalar(result), ref.dot, kDotRelTol * ref.magnitude) << "n=" << n;
  }
}

TEST(CudaReduce, DotOfMisalignedSlices) {
  POLYTASK_REQUIRE_GPU();
  const int64_t n = 5000;
  const std::vector<float> a = random_vector<float>(sz(n + 3), 3),
                           b = random_vector<float>(sz(n + 3), 4);
  DeviceArray<float> da(a), db(b);
  DeviceArray<double> result(1), partials(sz(kReduceWorkspace));
  dot(n, da.get() + 1, db.get() + 3, result.get(), partials.get(), test_stream());
  const Reference ref = reference_dot(std::vector<float>(a.begin() + 1, a.begin() + 1 + n),
                                      std::vector<float>(b.begin() + 3, b.begin() + 3 + n));
  EXPECT_NEAR(download_scalar(result), ref.dot, kDotRelTol * ref.magnitude);
}

TEST(CudaReduce, DotIsBitIdenticalOnRepeat) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : {int64_t(4099), int64_t(100000)}) {
    const std::vector<float> a = random_vector<float>(sz(n), 5), b = random_vector<float>(sz(n), 6);
    DeviceArray<float> da(a), db(b);
    DeviceArray<double> first(1), second(1), partials(sz(kReduceWorkspace));
    dot(n, da.get(), db.get(), first.get(), partials.get(), test_stream());
    partials.poison();  // stale partials must not matter
    dot(n, da.get(), db.get(), second.get(), partials.get(), test_stream());
    const double x = download_scalar(first), y = download_scalar(second);
    EXPECT_EQ(std::memcmp(&x, &y, sizeof(double)), 0) << "n=" << n << ": " << x << " vs " << y;
  }
}

TEST(CudaReduce, DotOfNothingIsZero) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> a(1);
  DeviceArray<double> result(1), partials(sz(kReduceWorkspace));
  dot(0, a.get(), a.get(), result.get(), partials.get(), test_stream());
  EXPECT_EQ(download_scalar(result), 0.0);
}

}  // namespace
}  // namespace polytask::kernels::cuda
