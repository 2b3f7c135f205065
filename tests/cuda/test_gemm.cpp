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
#include "tests/support/gemm_problem.h"

#if !defined(POLYTASK_CUDA_EMULATION)
#include "kernels/vendor/cublas.h"
#endif

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
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
double gemm_tolerance(int64_t k) { return polytask::testing::fp32_chain_tolerance(k); }

using namespace polytask::testing::gemm_test;
using polytask::testing::same_bits;

Problem make_problem(Transpose trans_a, Transpose trans_b, Shape shape, Stride stride, float alpha,
                     float beta, uint64_t seed) {
  return make_gemm_problem(trans_a, trans_b, shape, stride, alpha, beta, seed);
}

std::vector<float> run_cuda(const Problem& p, GemmTiles tiles, Offsets at = {}) {
  GemmOptions options;
  options.tiles = tiles;
  return run_gemm_problem(p, options, at);
}

// The exact product (cpu::gemm in double) and the error scale S of gemm_tolerance, computed
// by the same reference on absolute values.
Reference reference(const Problem& p) { return gemm_reference(p, p.a, p.b); }

// Every element of C within gemm_tolerance of the reference; the padding columns untouched.
::testing::AssertionResult matches_reference(const Problem& p, const std::vector<float>& got,
                                             const Reference& ref, double tol_factor = 1.0) {
  return gemm_matches(p, got, ref, tol_factor * gemm_tolerance(p.k));
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
// The emulator runs ~1 µs per thread switch, so it (and POLYTASK_TEST_SMALL) takes two
// representative cases only.
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
    if (polytask::testing::small_shapes() && !w.emulated) continue;
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
      Reference theirs_as_ref{polytask::testing::to_double(theirs), ref.scale};
      EXPECT_TRUE(matches_reference(p, ours, theirs_as_ref, 2.0)) << "ours vs cuBLAS";
    }
}

TEST(CudaGemm, LargeSquareMatchesCpuReference) {
  POLYTASK_REQUIRE_GPU();
  // Under POLYTASK_TEST_SMALL still several tiles in every direction, at 1/512 of the work.
  const int64_t side = polytask::testing::small_shapes() ? 256 : 2048;
  for (const Layout layout : kLayouts) {
    const Problem p =
        make_problem(layout.a, layout.b, Shape{side, side, side}, Stride::Tight, 1.0f, 0.0f, 900);
    EXPECT_TRUE(matches_reference(p, run_cuda(p, GemmTiles::Auto), reference(p)));
  }
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
