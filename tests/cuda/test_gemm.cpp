// CUDA SGEMM (kernels/cuda/gemm.cu) against the CPU reference in double: odd shapes and sizes
// just past the tile multiples, the three layouts, every tile configuration, the float4 and
// scalar load paths (padded, odd and misaligned strides), alpha/beta cases, beta = 0 over a
// NaN-poisoned C, empty dimensions, the workload's shapes, determinism, and (on a GPU) cuBLAS.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/gemm.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

#if !defined(POLYTASK_CUDA_EMULATION)
#include "kernels/vendor/cublas.h"
#endif

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr Transpose kNo = Transpose::No, kYes = Transpose::Yes;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

// The per-element error bound of a float GEMM against the exact (double) product. Each of the
// k fused multiply-adds rounds once, by at most 2^-24 of the running sum, and the running sum
// never exceeds S = |alpha|·sum_p |a_ip||b_pj| + |beta c_ij|. With inputs of random sign the
// k rounding errors add like a random walk, ~sqrt(k)·2^-24·S; the epilogue adds three more
// roundings. A factor 4 of margin gives 2^-24·(4·sqrt(k) + 4)·S, still far below the effect
// of one wrong or missing term (~|a_ip b_pj| ≈ S/k).
constexpr double kUnitRoundoff = 5.9604644775390625e-8;  // 2^-24
double gemm_tolerance(int64_t k) {
  return kUnitRoundoff * (4.0 * std::sqrt(static_cast<double>(k)) + 4.0);
}

// Row strides: Tight = the stored width, Aligned = padded to a multiple of 4 (the float4
// path whenever the base is aligned), Odd = padded to a non-multiple of 4 (the scalar path).
enum class Stride { Tight, Aligned, Odd };

int64_t stride_for(int64_t width, Stride stride) {
  switch (stride) {
    case Stride::Tight:
      return width;
    case Stride::Aligned:
      return (width + 3) / 4 * 4 + 4;
    case Stride::Odd:
      return (width + 1) % 4 == 0 ? width + 2 : width + 1;
  }
  return width;
}

struct Shape {
  int64_t m, n, k;
};

// One problem on the host, as stored: A (a_rows, lda), B (b_rows, ldb), C (m, ldc). Padding
// columns of A and B hold NaN (a kernel that reads them poisons its output); C's padding holds
// NaN too and must come back untouched.
struct Problem {
  Transpose trans_a = kNo, trans_b = kNo;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  std::vector<float> a, b, c;

  int64_t a_rows() const { return trans_a == kNo ? m : k; }
  int64_t a_cols() const { return trans_a == kNo ? k : m; }
  int64_t b_rows() const { return trans_b == kNo ? k : n; }
  int64_t b_cols() const { return trans_b == kNo ? n : k; }
};

std::vector<float> padded_random(int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  const auto dense = random_vector<float>(sz(rows * cols), seed);
  std::vector<float> out(sz(rows * ld), kNaN);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t col = 0; col < cols; ++col) out[sz(r * ld + col)] = dense[sz(r * cols + col)];
  return out;
}

Problem make_problem(Transpose trans_a, Transpose trans_b, Shape shape, Stride stride, float alpha,
                     float beta, uint64_t seed) {
  Problem p;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.m = shape.m;
  p.n = shape.n;
  p.k = shape.k;
  p.alpha = alpha;
  p.beta = beta;
  p.lda = stride_for(p.a_cols(), stride);
  p.ldb = stride_for(p.b_cols(), stride);
  p.ldc = stride_for(p.n, stride);
  p.a = padded_random(p.a_rows(), p.a_cols(), p.lda, seed);
  p.b = padded_random(p.b_rows(), p.b_cols(), p.ldb, seed + 1);
  p.c = padded_random(p.m, p.n, p.ldc, seed + 2);
  // beta = 0 must not read C: poison all of it.
  if (beta == 0.0f) std::fill(p.c.begin(), p.c.end(), kNaN);
  return p;
}

// How many floats each operand sits past a 16-byte boundary; 1 forces its scalar path.
struct Offsets {
  int64_t a = 0, b = 0, c = 0;
};

std::vector<float> shifted(const std::vector<float>& v, int64_t offset) {
  std::vector<float> out(sz(offset), kNaN);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

std::vector<float> run_cuda(const Problem& p, GemmTiles tiles, Offsets at = {}) {
  DeviceArray<float> a(shifted(p.a, at.a)), b(shifted(p.b, at.b)), c(shifted(p.c, at.c));
  GemmOptions options;
  options.tiles = tiles;
  gemm(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.get() + at.a, p.lda, b.get() + at.b, p.ldb,
       p.beta, c.get() + at.c, p.ldc, test_stream(), options);
  const std::vector<float> out = c.download();
  return std::vector<float>(out.begin() + at.c, out.end());
}

std::vector<double> to_double(const std::vector<float>& v, bool absolute) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = absolute ? std::abs(static_cast<double>(v[i])) : static_cast<double>(v[i]);
  return out;
}

// The exact product (cpu::gemm in double) and the error scale S of gemm_tolerance, computed
// by the same reference on absolute values.
struct Reference {
  std::vector<double> value, scale;
};

Reference reference(const Problem& p) {
  Reference ref;
  std::vector<double> c = to_double(p.c, false), c_abs = to_double(p.c, true);
  if (p.beta == 0.0f) {  // the contract: C is not read; the reference must not see its NaNs
    std::fill(c.begin(), c.end(), 0.0);
    std::fill(c_abs.begin(), c_abs.end(), 0.0);
  }
  const std::vector<double> a = to_double(p.a, false), b = to_double(p.b, false);
  const std::vector<double> a_abs = to_double(p.a, true), b_abs = to_double(p.b, true);
  cpu::gemm<double>(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.data(), p.lda, b.data(), p.ldb,
                    p.beta, c.data(), p.ldc);
  cpu::gemm<double>(p.trans_a, p.trans_b, p.m, p.n, p.k, std::abs(p.alpha), a_abs.data(), p.lda,
                    b_abs.data(), p.ldb, std::abs(p.beta), c_abs.data(), p.ldc);
  ref.value = std::move(c);
  ref.scale = std::move(c_abs);
  return ref;
}

bool same_bits(float x, float y) { return std::memcmp(&x, &y, sizeof(float)) == 0; }

std::string describe(const Problem& p) {
  return cat(p.trans_a == kYes ? "T" : "N", p.trans_b == kYes ? "T" : "N", " m=", p.m, " n=", p.n,
             " k=", p.k, " lda=", p.lda, " ldb=", p.ldb, " ldc=", p.ldc, " alpha=", p.alpha,
             " beta=", p.beta);
}

// Every element of C within gemm_tolerance of the reference; the padding columns untouched.
::testing::AssertionResult matches_reference(const Problem& p, const std::vector<float>& got,
                                             const Reference& ref, double tol_factor = 1.0) {
  const double tol = tol_factor * gemm_tolerance(p.k);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.ldc; ++j) {
      const size_t at = sz(i * p.ldc + j);
      if (j >= p.n) {
        if (!same_bits(got[at], p.c[at]))
          return ::testing::AssertionFailure() << describe(p) << ": padding C(" << i << ", " << j
                                               << ") overwritten with " << got[at];
        continue;
      }
      const double bound = tol * ref.scale[at] + 1e-30;
      if (!(std::abs(static_cast<double>(got[at]) - ref.value[at]) <= bound))
        return ::testing::AssertionFailure()
               << describe(p) << ": C(" << i << ", " << j << ") = " << got[at] << ", expected "
               << ref.value[at] << " within " << bound;
    }
  return ::testing::AssertionSuccess();
}

const char* tiles_name(GemmTiles tiles) {
  switch (tiles) {
    case GemmTiles::Auto:
      return "Auto";
    case GemmTiles::Large:
      return "Large";
    case GemmTiles::Medium:
      return "Medium";
    case GemmTiles::Small:
      return "Small";
  }
  return "?";
}

struct Layout {
  Transpose a, b;
};
// The three layouts the layers use: A·B (backward data), Aᵀ·B (backward filter), A·Bᵀ (forward).
constexpr Layout kLayouts[] = {{kNo, kNo}, {kYes, kNo}, {kNo, kYes}};
constexpr GemmTiles kAllTiles[] = {GemmTiles::Auto, GemmTiles::Large, GemmTiles::Medium,
                                   GemmTiles::Small};

// Odd sizes, sizes one past the tile multiples (32, 64, 128) and the slab depths (8, 16, 32),
// and one bigger than a few tiles in every direction.
constexpr Shape kOddShapes[] = {{1, 1, 1},     {7, 13, 5},    {33, 65, 17},
                                {67, 131, 45}, {129, 130, 9}, {130, 129, 257}};

TEST(CudaGemm, MatchesCpuReferenceOnOddShapesInEveryLayoutAndTileConfiguration) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const Shape shape : kOddShapes)
    for (const Layout layout : kLayouts)
      for (const Stride stride : {Stride::Tight, Stride::Aligned}) {
        const Problem p = make_problem(layout.a, layout.b, shape, stride, 1.0f, 0.0f, seed += 3);
        const Reference ref = reference(p);
        for (const GemmTiles tiles : kAllTiles)
          EXPECT_TRUE(matches_reference(p, run_cuda(p, tiles), ref)) << tiles_name(tiles);
      }
}

TEST(CudaGemm, ScalarPathOnOddStridesAndMisalignedPointers) {
  POLYTASK_REQUIRE_GPU();
  // One float past a 16-byte boundary disables float4 for that operand alone, so these also
  // cover the mixed (float4 A, scalar B) instantiations; Odd strides disable it everywhere.
  const Offsets kOffsets[] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}};
  uint64_t seed = 200;
  for (const Shape shape : {Shape{7, 13, 5}, Shape{67, 131, 45}, Shape{130, 129, 257}})
    for (const Layout layout : kLayouts) {
      const Problem odd =
          make_problem(layout.a, layout.b, shape, Stride::Odd, 1.0f, 0.5f, seed += 3);
      const Reference odd_ref = reference(odd);
      const Problem aligned =
          make_problem(layout.a, layout.b, shape, Stride::Aligned, 1.0f, 0.5f, seed += 3);
      const Reference aligned_ref = reference(aligned);
      for (const GemmTiles tiles : kAllTiles) {
        EXPECT_TRUE(matches_reference(odd, run_cuda(odd, tiles), odd_ref)) << tiles_name(tiles);
        for (const Offsets at : kOffsets)
          EXPECT_TRUE(matches_reference(aligned, run_cuda(aligned, tiles, at), aligned_ref))
              << tiles_name(tiles) << " offsets a=" << at.a << " b=" << at.b << " c=" << at.c;
      }
    }
}

TEST(CudaGemm, AlphaAndBetaCases) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 300;
  for (const Layout layout : kLayouts)
    for (const float alpha : {1.0f, -0.5f, 2.5f})
      for (const float beta : {0.0f, 1.0f, -0.75f}) {
        const Problem p = make_problem(layout.a, layout.b, Shape{37, 70, 23}, Stride::Tight, alpha,
                                       beta, seed += 3);
        EXPECT_TRUE(matches_reference(p, run_cuda(p, GemmTiles::Auto), reference(p)));
      }
}

TEST(CudaGemm, BetaZeroOverwritesNanPoisonedC) {
  POLYTASK_REQUIRE_GPU();
  for (const Layout layout : kLayouts) {
    const Problem p =
        make_problem(layout.a, layout.b, Shape{45, 67, 19}, Stride::Aligned, 1.0f, 0.0f, 400);
    ASSERT_TRUE(std::isnan(p.c[0]));
    const std::vector<float> got = run_cuda(p, GemmTiles::Auto);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) ASSERT_TRUE(std::isfinite(got[sz(i * p.ldc + j)]));
    EXPECT_TRUE(matches_reference(p, got, reference(p)));
  }
}

TEST(CudaGemm, AlphaZeroNeverReadsAOrB) {
  POLYTASK_REQUIRE_GPU();
  // Like BLAS: C = beta·C, even when A and B hold NaN.
  Problem p = make_problem(kNo, kYes, Shape{20, 30, 40}, Stride::Tight, 0.0f, -2.0f, 450);
  std::fill(p.a.begin(), p.a.end(), kNaN);
  std::fill(p.b.begin(), p.b.end(), kNaN);
  const std::vector<float> got = run_cuda(p, GemmTiles::Auto);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], -2.0f * p.c[i]) << i;
}

TEST(CudaGemm, EmptyDimensions) {
  POLYTASK_REQUIRE_GPU();
  // k = 0: C = beta·C, with beta = 0 writing zeros over NaN.
  for (const float beta : {0.0f, 3.0f}) {
    const Problem p = make_problem(kNo, kNo, Shape{5, 6, 0}, Stride::Tight, 1.0f, beta, 500);
    const std::vector<float> got = run_cuda(p, GemmTiles::Auto);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], beta == 0.0f ? 0.0f : beta * p.c[i]) << i;
  }
  // m = 0 or n = 0: nothing to write, nothing launched, nothing touched.
  for (const Shape shape : {Shape{0, 6, 4}, Shape{5, 0, 4}}) {
    const Problem p = make_problem(kYes, kNo, shape, Stride::Aligned, 1.0f, 1.0f, 510);
    const std::vector<float> got = run_cuda(p, GemmTiles::Auto);
    ASSERT_EQ(got.size(), p.c.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(same_bits(got[i], p.c[i])) << i;
  }
}

TEST(CudaGemm, RejectsTheUnsupportedLayoutAndShortStrides) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> a(64), b(64), c(64);
  EXPECT_THROW(
      gemm(kYes, kYes, 4, 4, 4, 1.0f, a.get(), 4, b.get(), 4, 0.0f, c.get(), 4, test_stream()),
      polytask::Error);
  EXPECT_THROW(
      gemm(kNo, kNo, 4, 4, 4, 1.0f, a.get(), 3, b.get(), 4, 0.0f, c.get(), 4, test_stream()),
      polytask::Error);
  EXPECT_THROW(
      gemm(kNo, kNo, 4, 4, 4, 1.0f, a.get(), 4, b.get(), 4, 0.0f, c.get(), 3, test_stream()),
      polytask::Error);
  EXPECT_THROW(
      gemm(kNo, kNo, -1, 4, 4, 1.0f, a.get(), 4, b.get(), 4, 0.0f, c.get(), 4, test_stream()),
      polytask::Error);
}

// The dense layers' shapes for a batch of 128 (features 1600 -> 128 -> 10), as (m, n, k):
// forward A·Bᵀ, backward-data A·B, backward-filter Aᵀ·B.
// The emulator runs ~1 µs per thread switch, so it takes two representative cases only.
struct WorkloadCase {
  Layout layout;
  Shape shape;
  bool emulated;
};
constexpr WorkloadCase kWorkload[] = {
    {{kNo, kYes}, {128, 128, 1600}, false},  // dense 1600->128 forward
    {{kNo, kNo}, {128, 1600, 128}, true},    // its backward data
    {{kYes, kNo}, {128, 1600, 128}, false},  // its backward filter
    {{kNo, kYes}, {128, 10, 128}, false},    // dense 128->10 forward
    {{kNo, kNo}, {128, 128, 10}, true},      // its backward data
    {{kYes, kNo}, {10, 128, 128}, false},    // its backward filter
    {{kNo, kNo}, {1600, 128, 128}, false},   // a tall product
};

TEST(CudaGemm, WorkloadShapes) {
  POLYTASK_REQUIRE_GPU();
  uint64_t seed = 600;
  for (const WorkloadCase& w : kWorkload) {
    if (polytask::testing::kEmulated && !w.emulated) continue;
    const Problem p =
        make_problem(w.layout.a, w.layout.b, w.shape, Stride::Tight, 1.0f, 0.0f, seed += 3);
    EXPECT_TRUE(matches_reference(p, run_cuda(p, GemmTiles::Auto), reference(p)));
  }
}

TEST(CudaGemm, BitIdenticalAcrossRunsTileConfigurationsAndLoadPaths) {
  POLYTASK_REQUIRE_GPU();
  // Each element is one thread's FMA chain over k in order, whatever the tiling or the load
  // width, so all of these must agree to the bit — and so must two runs of the same call.
  for (const Layout layout : kLayouts) {
    const Problem p =
        make_problem(layout.a, layout.b, Shape{130, 97, 75}, Stride::Aligned, 1.5f, -0.5f, 700);
    const std::vector<float> first = run_cuda(p, GemmTiles::Auto);
    const std::vector<float> again = run_cuda(p, GemmTiles::Auto);
    ASSERT_EQ(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)), 0);
    for (const GemmTiles tiles : kAllTiles)
      for (const Offsets at : {Offsets{}, Offsets{1, 1, 1}}) {
        const std::vector<float> other = run_cuda(p, tiles, at);
        EXPECT_EQ(std::memcmp(first.data(), other.data(), first.size() * sizeof(float)), 0)
            << tiles_name(tiles) << " offset " << at.a;
      }
  }
}

#if !defined(POLYTASK_CUDA_EMULATION)
// cuBLAS as a second oracle (FP32 math, no TF32). Both are float GEMMs summing in different
// orders, so each is within gemm_tolerance of the exact product and they are within twice it
// of each other.
TEST(CudaGemm, AgreesWithCublas) {
  POLYTASK_REQUIRE_GPU();
  vendor::CublasHandle handle;
  uint64_t seed = 800;
  for (const Shape shape : {Shape{67, 131, 45}, Shape{130, 129, 257}, Shape{128, 1600, 128},
                            Shape{1024, 1024, 1024}, Shape{300, 515, 1001}})
    for (const Layout layout : kLayouts) {
      const Problem p =
          make_problem(layout.a, layout.b, shape, Stride::Tight, 1.0f, 0.25f, seed += 3);
      const std::vector<float> ours = run_cuda(p, GemmTiles::Auto);
      DeviceArray<float> a(p.a), b(p.b), c(p.c);
      vendor::cublas_sgemm_row_major(handle, p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.get(),
                                     p.lda, b.get(), p.ldb, p.beta, c.get(), p.ldc, test_stream());
      const std::vector<float> theirs = c.download();
      const Reference ref = reference(p);
      EXPECT_TRUE(matches_reference(p, ours, ref));
      EXPECT_TRUE(matches_reference(p, theirs, ref)) << "cuBLAS";
      Reference theirs_as_ref{to_double(theirs, false), ref.scale};
      EXPECT_TRUE(matches_reference(p, ours, theirs_as_ref, 2.0)) << "ours vs cuBLAS";
    }
}

TEST(CudaGemm, LargeSquareMatchesCpuReference) {
  POLYTASK_REQUIRE_GPU();
  for (const Layout layout : kLayouts) {
    const Problem p =
        make_problem(layout.a, layout.b, Shape{2048, 2048, 2048}, Stride::Tight, 1.0f, 0.0f, 900);
    EXPECT_TRUE(matches_reference(p, run_cuda(p, GemmTiles::Auto), reference(p)));
  }
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
