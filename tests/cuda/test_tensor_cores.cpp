// Tensor-core math (MathPrecision::TF32 / BF16) of the CUDA GEMM, dense and conv2d kernels
// (kernels/cuda/gemm.cu, dense.cu, conv2d.cu; kernels/precision.h), against CPU references in
// double on operands rounded the same way (kernels::round_to_tf32 / round_to_bf16), and against
// the unrounded reference within the expected precision loss: odd sizes, every GEMM layout and
// tile, the scalar staging path (odd strides, misaligned pointers), alpha/beta, beta = 0 over a
// NaN-poisoned C, the bias epilogue, the dense entry points, conv forward / backward-data /
// backward-filter over odd shapes and every tile and chunk choice, bit-identical repeats, and
// errors for values outside the enum. In the emulated build, also the wmma emulation itself
// (kernels/cuda/emulator_wmma.h): its roundings, fragments and argument checks.
//
// Emulated sizes stay modest: an emulated mma does a whole 16x16xK tile per lane.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/dense.h"
#include "kernels/error.h"
#include "kernels/gemm.h"
#include "kernels/precision.h"
#include "tests/support/conv_problem.h"
#include "tests/support/cuda_test.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gemm_problem.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::absolute;
using polytask::testing::close_to;
using polytask::testing::DeviceArray;
using polytask::testing::kEmulated;
using polytask::testing::random_vector;
using polytask::testing::same_bits;
using polytask::testing::test_stream;
using polytask::testing::to_double;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr Transpose kNo = Transpose::No, kYes = Transpose::Yes;
constexpr MathPrecision kTensorModes[] = {MathPrecision::TF32, MathPrecision::BF16};

size_t sz(int64_t v) { return static_cast<size_t>(v); }

uint32_t bits_of(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}
float float_of(uint32_t u) {
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// ---- tolerances ---------------------------------------------------------------------------------

// Half an ulp of the operand format: TF32 keeps 10 mantissa bits, BF16 7.
double operand_roundoff(MathPrecision p) {
  return p == MathPrecision::TF32 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
}
// Products per mma step along k: m16n16k8 (TF32), m16n16k16 (BF16).
int64_t mma_depth(MathPrecision p) { return p == MathPrecision::TF32 ? 8 : 16; }

// Against a CPU reference on the SAME rounded operands (in double, so exact): the products of
// two TF32/BF16 values are exact in FP32, so only the FP32 accumulation of `depth` terms is
// left, relative to S = the same computation on absolute values (|alpha|·sum|a||b| + |beta·c|
// + |bias|). Two models, both covered:
//   - the GPU: NVIDIA does not specify how an mma adds its products. Measured on A100 (Fasi,
//     Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", 2021): products
//     exact, aligned to the largest exponent keeping 3 extra bits and truncated, the sum
//     normalised with truncation once per mma. Worst case, every error the same sign: 2^-26 per
//     product plus 2^-23 per mma step, of S: 2^-23·(depth/8 + steps)·S;
//   - the emulator: one FP32 round-to-nearest chain, 2^-24 per addition, adding like a random
//     walk with random signs: 4·sqrt(depth)·2^-24·S (the bound of tests/cuda/test_gemm.cpp);
// plus 4·2^-24·S for the epilogue (alpha, beta, bias; accumulation into a gradient). For the
// GEMM and dense depths (up to 1600) and every emulated depth (up to ~2000 pixels) that is at
// most 5.8e-5·S, ten times below the effect of one missing or doubled term (~S/depth), and far
// below a forgotten operand rounding (a TF32 truncation is off by ~2^-11·sqrt(depth) of a term,
// random walk, ~10x the bound at depth 100). The worst case grows linearly, though: for the
// backward-filter sums over 10^4-10^5 pixels of the GPU-only workload cases it is ~1e-3·S and
// only catches gross errors (a missing chunk or group), not a single lost slab.
double accumulation_tolerance(int64_t depth, MathPrecision p) {
  const double d = static_cast<double>(std::max<int64_t>(depth, 1));
  const double steps = std::ceil(d / static_cast<double>(mma_depth(p)));
  return std::ldexp(d / 8.0 + steps, -23) + std::ldexp(4.0 * std::sqrt(d) + 4.0, -24);
}

// Against the UNROUNDED reference: each operand moves by at most u = operand_roundoff of
// itself, so a product by at most (2u + u²) of |a||b| and the whole sum by (2u + u²)·S — the
// ~2^-10·sum|a||b| (TF32), ~2^-7 (BF16) precision loss these modes trade for speed — on top of
// the accumulation error, whose scale (S on rounded operands) is at most (1 + u)² of S.
double rounding_tolerance(int64_t depth, MathPrecision p) {
  const double u = operand_roundoff(p);
  return 2.0 * u + u * u + (1.0 + u) * (1.0 + u) * accumulation_tolerance(depth, p);
}

// The rounding must really happen: somewhere the result leaves the exact FP32 product by more
// than u/64 of its scale. FP32 arithmetic stays below ~4·sqrt(depth)·2^-24 (< 2^-17 = TF32's
// u/64 for every depth here); a rounded operand moves a random-data result by ~u/sqrt(depth)
// of S typically. So this fails if a "TF32/BF16" call ran the FP32 kernel.
::testing::AssertionResult shows_rounding(const std::string& what, const std::vector<float>& got,
                                          const std::vector<double>& exact,
                                          const std::vector<double>& scale, MathPrecision p) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i)
    if (scale[i] > 0.0)
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - exact[i]) / scale[i]);
  if (worst > operand_roundoff(p) / 64.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": largest relative deviation from the exact "
         << "product " << worst << " — no sign of " << precision_name(p) << " operands";
}

std::vector<float> rounded(const std::vector<float>& v, MathPrecision p) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = round_operand(p, v[i]);
  return out;
}

// ---- precision names and host roundings ---------------------------------------------------------

TEST(MathPrecision, NamesParseBackAndUnknownNamesThrow) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  for (const MathPrecision p : {MathPrecision::FP32, MathPrecision::TF32, MathPrecision::BF16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  EXPECT_EQ(parse_precision("TF32"), MathPrecision::TF32);
  try {
    parse_precision("fp16");
    ADD_FAILURE() << "fp16 parsed";
  } catch (const polytask::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp32|tf32|bf16"), std::string::npos) << e.what();
  }
}

TEST(MathPrecision, HostRoundingFollowsTheHardwareConversions) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // TF32 (cvt.rna): ties away from zero. 1 + 2^-11 is half-way between 1 and 1 + 2^-10.
  EXPECT_EQ(bits_of(round_to_tf32(float_of(0x3f801000u))), 0x3f802000u);
  EXPECT_EQ(bits_of(round_to_tf32(float_of(0xbf801000u))), 0xbf802000u);  // away from zero
  EXPECT_EQ(bits_of(round_to_tf32(float_of(0x3f800fffu))), 0x3f800000u);  // below half: down
  EXPECT_EQ(bits_of(round_to_tf32(float_of(0x3f803000u))), 0x3f804000u);  // tie, odd: up
  EXPECT_EQ(bits_of(round_to_tf32(std::numeric_limits<float>::max())), 0x7f800000u);
  // BF16 (cvt.rn): ties to even.
  EXPECT_EQ(bits_of(round_to_bf16(float_of(0x3f808000u))), 0x3f800000u);  // tie, even: down
  EXPECT_EQ(bits_of(round_to_bf16(float_of(0x3f818000u))), 0x3f820000u);  // tie, odd: up
  EXPECT_EQ(bits_of(round_to_bf16(float_of(0x3f808001u))), 0x3f810000u);
  EXPECT_EQ(bits_of(round_to_bf16(float_of(0xc0ff8000u))), 0xc1000000u);  // carry into exponent
  for (const MathPrecision p : kTensorModes) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(round_operand(p, inf), inf);
    EXPECT_EQ(round_operand(p, -inf), -inf);
    EXPECT_TRUE(std::isnan(round_operand(p, kNaN)));
    EXPECT_TRUE(std::isnan(round_operand(p, float_of(0x7f800001u))));  // never to infinity
    EXPECT_EQ(bits_of(round_operand(p, -0.0f)), 0x80000000u);
  }
  EXPECT_EQ(bits_of(round_operand(MathPrecision::FP32, float_of(0x3f801234u))), 0x3f801234u);
}

// ---- GEMM ---------------------------------------------------------------------------------------

using namespace polytask::testing::gemm_test;
using polytask::testing::gemm_test::describe;  // next to describe(const Case&) below

// One problem as stored on the host (tests/support/gemm_problem.h): padding columns of A, B
// and C hold NaN; C's padding must come back untouched.
Problem make_problem(Transpose trans_a, Transpose trans_b, Shape shape, Stride stride, float alpha,
                     float beta, bool with_bias, uint64_t seed) {
  return make_gemm_problem(trans_a, trans_b, shape, stride, alpha, beta, seed, with_bias);
}

std::vector<float> run_gemm(const Problem& p, MathPrecision precision, GemmTiles tiles,
                            Offsets at = {}) {
  GemmOptions options;
  options.tiles = tiles;
  options.precision = precision;
  return run_gemm_problem(p, options, at);
}

// The reference on operands rounded per `rounding` (FP32: the exact product of the given
// floats), and its scale S (the same on absolute values), over C's whole stored extent.
Reference gemm_reference(const Problem& p, MathPrecision rounding) {
  return polytask::testing::gemm_test::gemm_reference(p, rounded(p.a, rounding),
                                                      rounded(p.b, rounding));
}

// Both references of one problem in one precision.
struct References {
  Reference rounded, exact;
};
References gemm_references(const Problem& p, MathPrecision precision) {
  return {gemm_reference(p, precision), gemm_reference(p, MathPrecision::FP32)};
}

// Both checks of one result: tight against the rounded-operand reference, and within the
// precision loss of the exact one.
void check_gemm(const Problem& p, MathPrecision precision, const std::vector<float>& got,
                const References& refs, const std::string& label) {
  const std::string what = cat(precision_name(precision), " ", label);
  EXPECT_TRUE(gemm_matches(p, got, refs.rounded, accumulation_tolerance(p.k, precision)))
      << what << " vs rounded operands";
  EXPECT_TRUE(gemm_matches(p, got, refs.exact, rounding_tolerance(p.k, precision)))
      << what << " vs exact";
}
void check_gemm(const Problem& p, MathPrecision precision, const std::vector<float>& got,
                const std::string& label) {
  check_gemm(p, precision, got, gemm_references(p, precision), label);
}

struct Layout {
  Transpose a, b;
};
// A·B (backward data), Aᵀ·B (backward filter), A·Bᵀ (forward).
constexpr Layout kLayouts[] = {{kNo, kNo}, {kYes, kNo}, {kNo, kYes}};
constexpr GemmTiles kAllTiles[] = {GemmTiles::Auto, GemmTiles::Large, GemmTiles::Medium,
                                   GemmTiles::Small};

// Odd sizes and sizes just past the 16/32/64/128 multiples; k past the 16-deep slabs.
std::vector<Shape> odd_shapes() {
  std::vector<Shape> shapes = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {67, 45, 37}};
  if (!kEmulated) {
    shapes.push_back({129, 130, 9});
    shapes.push_back({130, 129, 257});
    shapes.push_back({300, 515, 1001});
  }
  return shapes;
}

TEST(TensorCoreGemm, MatchesReferencesOnOddShapesInEveryLayoutAndTile) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  uint64_t seed = 100;
  for (const Shape shape : odd_shapes())
    for (const Layout layout : kLayouts)
      for (const Stride stride : {Stride::Tight, Stride::Aligned}) {
        const Problem p =
            make_problem(layout.a, layout.b, shape, stride, 1.0f, 0.0f, false, seed += 4);
        for (const MathPrecision precision : kTensorModes) {
          const References refs = gemm_references(p, precision);
          for (const GemmTiles tiles : kAllTiles)
            check_gemm(p, precision, run_gemm(p, precision, tiles), refs,
                       cat(describe(p), " tiles ", tiles_name(tiles)));
        }
      }
}

TEST(TensorCoreGemm, RoundingReallyHappens) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  for (const Layout layout : kLayouts) {
    const Problem p =
        make_problem(layout.a, layout.b, Shape{40, 36, 45}, Stride::Tight, 1.0f, 0.0f, false, 150);
    const Reference exact = gemm_reference(p, MathPrecision::FP32);
    for (const MathPrecision precision : kTensorModes)
      EXPECT_TRUE(shows_rounding(describe(p), run_gemm(p, precision, GemmTiles::Auto), exact.value,
                                 exact.scale, precision));
  }
}

TEST(TensorCoreGemm, ScalarStagingOnOddStridesAndMisalignedPointers) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // One float past a 16-byte boundary takes an operand (and with it the pair) off float4
  // staging; Odd strides take every operand off it.
  const Offsets kOffsets[] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  uint64_t seed = 200;
  for (const Shape shape : {Shape{7, 13, 5}, Shape{37, 34, 21}})
    for (const Layout layout : kLayouts) {
      const Problem odd =
          make_problem(layout.a, layout.b, shape, Stride::Odd, 1.0f, 0.5f, false, seed += 4);
      const Problem aligned =
          make_problem(layout.a, layout.b, shape, Stride::Aligned, 1.0f, 0.5f, false, seed += 4);
      for (const MathPrecision precision : kTensorModes) {
        const References odd_refs = gemm_references(odd, precision);
        const References aligned_refs = gemm_references(aligned, precision);
        for (const GemmTiles tiles : {GemmTiles::Large, GemmTiles::Small}) {
          check_gemm(odd, precision, run_gemm(odd, precision, tiles), odd_refs,
                     cat(describe(odd), " tiles ", tiles_name(tiles)));
          for (const Offsets at : kOffsets)
            check_gemm(aligned, precision, run_gemm(aligned, precision, tiles, at), aligned_refs,
                       cat(describe(aligned), " tiles ", tiles_name(tiles), " offsets ", at.a, "/",
                           at.b, "/", at.c));
        }
      }
    }
}

TEST(TensorCoreGemm, AlphaBetaAndTheBiasEpilogue) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  uint64_t seed = 300;
  for (const Layout layout : kLayouts)
    for (const float alpha : {1.0f, -0.5f})
      for (const float beta : {0.0f, 1.0f, -0.75f})
        for (const bool with_bias : {false, true}) {
          const Problem p = make_problem(layout.a, layout.b, Shape{37, 70, 23}, Stride::Tight,
                                         alpha, beta, with_bias, seed += 4);
          for (const MathPrecision precision : kTensorModes)
            check_gemm(p, precision, run_gemm(p, precision, GemmTiles::Auto), describe(p));
        }
}

TEST(TensorCoreGemm, BetaZeroOverwritesNanPoisonedCAndAlphaZeroReadsNoOperand) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  for (const MathPrecision precision : kTensorModes) {
    for (const Layout layout : kLayouts) {
      const Problem p = make_problem(layout.a, layout.b, Shape{45, 67, 19}, Stride::Aligned, 1.0f,
                                     0.0f, true, 400);
      ASSERT_TRUE(std::isnan(p.c[0]));
      const std::vector<float> got = run_gemm(p, precision, GemmTiles::Auto);
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j) ASSERT_TRUE(std::isfinite(got[sz(i * p.ldc + j)]));
      check_gemm(p, precision, got, describe(p));
    }
    // alpha = 0: C = beta·C (+ bias) even with NaN in A and B. k = 0: the same with beta = 0
    // writing zeros over NaN.
    Problem p = make_problem(kNo, kYes, Shape{20, 30, 40}, Stride::Tight, 0.0f, -2.0f, false, 450);
    std::fill(p.a.begin(), p.a.end(), kNaN);
    std::fill(p.b.begin(), p.b.end(), kNaN);
    const std::vector<float> got = run_gemm(p, precision, GemmTiles::Auto);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], -2.0f * p.c[i]) << i;
    const Problem empty =
        make_problem(kNo, kNo, Shape{5, 6, 0}, Stride::Tight, 1.0f, 0.0f, false, 460);
    for (const float v : run_gemm(empty, precision, GemmTiles::Auto)) ASSERT_EQ(v, 0.0f);
  }
}

TEST(TensorCoreGemm, BitIdenticalAcrossRunsTilesAndStagingPaths) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // An output element is one accumulator element fed the same mma steps over k in order,
  // whatever the tile size or the staging width, so these all agree to the bit, run after run.
  for (const MathPrecision precision : kTensorModes)
    for (const Layout layout : kLayouts) {
      const Problem p = make_problem(layout.a, layout.b, Shape{70, 66, 40}, Stride::Aligned, 1.5f,
                                     -0.5f, true, 700);
      const std::vector<float> first = run_gemm(p, precision, GemmTiles::Auto);
      EXPECT_TRUE(same_bits(first, run_gemm(p, precision, GemmTiles::Auto)));
      for (const GemmTiles tiles : kAllTiles)
        for (const Offsets at : {Offsets{}, Offsets{1, 1, 1}})
          EXPECT_TRUE(same_bits(first, run_gemm(p, precision, tiles, at)))
              << precision_name(precision) << " " << tiles_name(tiles) << " offset " << at.a;
    }
}

TEST(TensorCoreGemm, Fp32StaysTheDefaultAndUnknownPrecisionsThrow) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const Problem p =
      make_problem(kNo, kYes, Shape{33, 17, 29}, Stride::Tight, 1.0f, 0.0f, true, 800);
  EXPECT_EQ(GemmOptions{}.precision, MathPrecision::FP32);
  EXPECT_TRUE(same_bits(run_gemm(p, MathPrecision::FP32, GemmTiles::Auto),
                        run_gemm(p, GemmOptions{}.precision, GemmTiles::Auto)));
  DeviceArray<float> a(64), b(64), c(64);
  GemmOptions options;
  options.precision = static_cast<MathPrecision>(7);
  EXPECT_THROW(gemm(kNo, kNo, 4, 4, 4, 1.0f, a.get(), 4, b.get(), 4, 0.0f, c.get(), 4,
                    test_stream(), options),
               polytask::Error);
  options.precision = MathPrecision::TF32;  // (Yes, Yes) stays unsupported in every precision
  EXPECT_THROW(gemm(kYes, kYes, 4, 4, 4, 1.0f, a.get(), 4, b.get(), 4, 0.0f, c.get(), 4,
                    test_stream(), options),
               polytask::Error);
}

// ---- dense --------------------------------------------------------------------------------------

TEST(TensorCoreDense, EntryPointsMatchTheCpuOnRoundedOperands) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const std::vector<DenseShape> shapes =
      polytask::testing::small_shapes()
          ? std::vector<DenseShape>{{5, 13, 9}, {33, 40, 17}}
          : std::vector<DenseShape>{{5, 13, 9}, {67, 45, 131}, {128, 1600, 128}, {128, 128, 10}};
  uint64_t seed = 900;
  for (const DenseShape& s : shapes)
    for (const MathPrecision precision : kTensorModes) {
      const std::string what =
          cat(precision_name(precision), " n=", s.n, " in=", s.in, " out=", s.out);
      const auto x = random_vector<float>(sz(s.n * s.in), seed++);
      const auto w = random_vector<float>(sz(s.out * s.in), seed++);
      const auto b = random_vector<float>(sz(s.out), seed++);
      const auto dy = random_vector<float>(sz(s.n * s.out), seed++);
      const auto dx_seed = random_vector<float>(sz(s.n * s.in), seed++);
      const auto dw_seed = random_vector<float>(sz(s.out * s.in), seed++);
      const auto db_seed = random_vector<float>(sz(s.out), seed++);
      const auto xr = to_double(rounded(x, precision)), wr = to_double(rounded(w, precision));
      const auto dyr = to_double(rounded(dy, precision));
      const auto xa = absolute(xr), wa = absolute(wr), dya = absolute(dyr);
      const auto bd = to_double(b), ba = absolute(bd);

      // Forward, y NaN-poisoned; the bias is added in FP32.
      DeviceArray<float> d_x(x), d_w(w), d_b(b), d_y(sz(s.n * s.out));
      dense_forward(s, d_x.get(), d_w.get(), d_b.get(), d_y.get(), test_stream(), precision);
      std::vector<double> y(sz(s.n * s.out)), y_scale(y.size());
      cpu::dense_forward<double>(s, xr.data(), wr.data(), bd.data(), y.data());
      cpu::dense_forward<double>(s, xa.data(), wa.data(), ba.data(), y_scale.data());
      EXPECT_TRUE(close_to(what + " forward", d_y.download(), y, y_scale,
                           accumulation_tolerance(s.in, precision)));

      // Backward data, accumulating into a seed.
      DeviceArray<float> d_dy(dy), d_dx(dx_seed);
      dense_backward_data(s, d_dy.get(), d_w.get(), d_dx.get(), GradMode::Accumulate, test_stream(),
                          precision);
      std::vector<double> dx = to_double(dx_seed), dx_scale = absolute(dx);
      cpu::dense_backward_data<double>(s, dyr.data(), wr.data(), dx.data(), GradMode::Accumulate);
      cpu::dense_backward_data<double>(s, dya.data(), wa.data(), dx_scale.data(),
                                       GradMode::Accumulate);
      EXPECT_TRUE(close_to(what + " backward data", d_dx.download(), dx, dx_scale,
                           accumulation_tolerance(s.out, precision)));

      // Backward filter, accumulating; db is a column sum of the unrounded dy (in double).
      DeviceArray<float> d_dw(dw_seed), d_db(db_seed);
      dense_backward_filter(s, d_x.get(), d_dy.get(), d_dw.get(), d_db.get(), GradMode::Accumulate,
                            test_stream(), precision);
      std::vector<double> dw = to_double(dw_seed), dw_scale = absolute(dw);
      cpu::dense_backward_filter<double>(s, xr.data(), dyr.data(), dw.data(), nullptr,
                                         GradMode::Accumulate);
      cpu::dense_backward_filter<double>(s, xa.data(), dya.data(), dw_scale.data(), nullptr,
                                         GradMode::Accumulate);
      std::vector<double> db = to_double(db_seed), db_scale = absolute(db);
      for (int64_t i = 0; i < s.n; ++i)
        for (int64_t j = 0; j < s.out; ++j) {
          db[sz(j)] += static_cast<double>(dy[sz(i * s.out + j)]);
          db_scale[sz(j)] += std::abs(static_cast<double>(dy[sz(i * s.out + j)]));
        }
      EXPECT_TRUE(close_to(what + " dw", d_dw.download(), dw, dw_scale,
                           accumulation_tolerance(s.n, precision)));
      // A double sum rounded once to float, added to the seed: two FP32 roundings.
      EXPECT_TRUE(
          close_to(what + " db", d_db.download(), db, db_scale, 4.0 * std::ldexp(1.0, -24)));
    }
}

// ---- conv2d -------------------------------------------------------------------------------------

using namespace polytask::testing::conv;

std::vector<Case> conv_cases() {
  constexpr Padding kValid = Padding::Valid, kSame = Padding::Same;
  std::vector<Case> cases = {
      {"stride 2 same", conv2d_shape(3, 5, 11, 11, 7, 3, 3, 2, 2, kSame)},
      {"1x1", conv2d_shape(2, 6, 7, 9, 5, 1, 1, 1, 1, kValid)},
      {"3x2 stride 2x1 same", conv2d_shape(2, 4, 10, 7, 6, 3, 2, 2, 1, kSame)},
      {"C_in 1", conv2d_shape(2, 1, 12, 12, 8, 3, 3, 1, 1, kValid)},
      {"C_in 40, C_out 65", conv2d_shape(1, 40, 4, 5, 65, 3, 3, 1, 1, kSame)},
      {"deep", conv2d_shape(1, 60, 4, 4, 30, 3, 3, 1, 1, kSame)},  // K = 540: past the table
  };
  // The workload's layers: batch 128 on a GPU, 2 in emulation and under POLYTASK_TEST_SMALL.
  const bool small = polytask::testing::small_shapes();
  const int64_t n = small ? 2 : 128;
  cases.push_back({"13x13x32 -> 64 valid", conv2d_shape(n, 32, 13, 13, 64, 3, 3, 1, 1, kValid)});
  cases.push_back({"32x32x3 -> 32 same", conv2d_shape(n, 3, 32, 32, 32, 3, 3, 1, 1, kSame)});
  if (!small) {
    cases.push_back({"28x28x1 -> 32 valid", conv2d_shape(n, 1, 28, 28, 32, 3, 3, 1, 1, kValid)});
    cases.push_back({"32x32x32 -> 32 same", conv2d_shape(n, 32, 32, 32, 32, 3, 3, 1, 1, kSame)});
  }
  return cases;
}

// References on x, w, dy rounded per `rounding` (FP32: exact); the bias, ReLU and the seeds of
// accumulated gradients are FP32 in every mode.
Reference forward_reference(const Conv2dShape& s, const Inputs& in, MathPrecision rounding,
                            bool relu) {
  return conv_forward_reference(s, rounded(in.x, rounding), rounded(in.w, rounding), &in.b, relu);
}

Reference backward_data_reference(const Conv2dShape& s, const Inputs& in, MathPrecision rounding) {
  return conv_backward_data_reference(s, rounded(in.dy, rounding), rounded(in.w, rounding),
                                      in.dx_seed, GradMode::Accumulate);
}

// db sums the rounded dy: the kernel's bias column multiplies it by an exact 1.
FilterReference backward_filter_reference(const Conv2dShape& s, const Inputs& in,
                                          MathPrecision rounding) {
  return conv_backward_filter_reference(s, rounded(in.x, rounding), rounded(in.dy, rounding),
                                        in.dw_seed, in.db_seed, GradMode::Accumulate);
}

Conv2dTuning tuned(MathPrecision precision, Conv2dTiles tiles = Conv2dTiles::Auto,
                   Conv2dFilterTiles filter_tiles = Conv2dFilterTiles::Auto, int64_t chunks = 0) {
  Conv2dTuning tuning;
  tuning.precision = precision;
  tuning.tiles = tiles;
  tuning.filter_tiles = filter_tiles;
  tuning.filter_chunks = chunks;
  return tuning;
}

std::vector<float> run_forward(const Conv2dShape& s, const Inputs& in, bool relu,
                               const Conv2dTuning& tuning) {
  DeviceArray<float> x(in.x), w(in.w), b(in.b), y(sz(y_size(s)));  // y: NaN-poisoned
  Conv2dEpilogue epilogue;
  epilogue.relu = relu;
  conv2d_forward(s, x.get(), w.get(), b.get(), y.get(), nullptr, test_stream(), epilogue, tuning);
  return y.download();
}

std::vector<float> run_backward_data(const Conv2dShape& s, const Inputs& in,
                                     const Conv2dTuning& tuning) {
  DeviceArray<float> dy(in.dy), w(in.w), dx(in.dx_seed);
  conv2d_backward_data(s, dy.get(), w.get(), dx.get(), GradMode::Accumulate, nullptr, test_stream(),
                       tuning);
  return dx.download();
}

struct FilterResult {
  std::vector<float> dw, db;
};

FilterResult run_backward_filter(const Conv2dShape& s, const Inputs& in, GradMode mode,
                                 const Conv2dTuning& tuning) {
  DeviceArray<float> x(in.x), dy(in.dy), dw(sz(w_size(s))), db(sz(s.c_out));  // NaN-poisoned
  if (mode == GradMode::Accumulate) {
    dw.upload(in.dw_seed);
    db.upload(in.db_seed);
  }
  DeviceArray<float> ws(sz(std::max<int64_t>(1, conv2d_workspace_elements(s, tuning))));
  conv2d_backward_filter(s, x.get(), dy.get(), dw.get(), db.get(), mode, ws.get(), test_stream(),
                         tuning);
  return {dw.download(), db.download()};
}

// Forward (+ fused ReLU), backward-data and backward-filter of one case in one precision, each
// against the rounded-operand reference and the exact one.
void check_conv(const Case& c, MathPrecision precision, uint64_t seed,
                const Conv2dTuning& extra = {}, const std::string& label = "") {
  const Conv2dShape& s = c.s;
  const Inputs in = make_inputs(s, seed);
  Conv2dTuning tuning = extra;
  tuning.precision = precision;
  const std::string what = cat(describe(c), label, " ", precision_name(precision));

  for (const bool relu : {false, true}) {
    const std::vector<float> y = run_forward(s, in, relu, tuning);
    const Reference ref = forward_reference(s, in, precision, relu);
    const Reference exact = forward_reference(s, in, MathPrecision::FP32, relu);
    const std::string fwd = what + (relu ? " forward + ReLU" : " forward");
    EXPECT_TRUE(
        close_to(fwd, y, ref.value, ref.scale, accumulation_tolerance(s.patch_size(), precision)));
    EXPECT_TRUE(close_to(fwd + " vs exact", y, exact.value, exact.scale,
                         rounding_tolerance(s.patch_size(), precision)));
  }

  const int64_t data_depth = s.c_out * s.k_h * s.k_w;
  const std::vector<float> dx = run_backward_data(s, in, tuning);
  const Reference dx_ref = backward_data_reference(s, in, precision);
  const Reference dx_exact = backward_data_reference(s, in, MathPrecision::FP32);
  EXPECT_TRUE(close_to(what + " dx", dx, dx_ref.value, dx_ref.scale,
                       accumulation_tolerance(data_depth, precision)));
  EXPECT_TRUE(close_to(what + " dx vs exact", dx, dx_exact.value, dx_exact.scale,
                       rounding_tolerance(data_depth, precision)));

  // Backward-filter sums over every output pixel: depth N·H_out·W_out (chunks and thread
  // groups only split that sum; the partial sums are FP32, the chunk sum double).
  const int64_t pixels = std::max<int64_t>(1, s.n * s.out_pixels());
  const FilterReference f_ref = backward_filter_reference(s, in, precision);
  const FilterReference f_exact = backward_filter_reference(s, in, MathPrecision::FP32);
  const FilterResult got = run_backward_filter(s, in, GradMode::Accumulate, tuning);
  EXPECT_TRUE(close_to(what + " dw", got.dw, f_ref.dw.value, f_ref.dw.scale,
                       accumulation_tolerance(pixels, precision)));
  EXPECT_TRUE(close_to(what + " db", got.db, f_ref.db.value, f_ref.db.scale,
                       accumulation_tolerance(pixels, precision)));
  EXPECT_TRUE(close_to(what + " dw vs exact", got.dw, f_exact.dw.value, f_exact.dw.scale,
                       rounding_tolerance(pixels, precision)));
  // Overwrite: no seed, and the result must not depend on the poisoned buffers.
  const FilterResult fresh = run_backward_filter(s, in, GradMode::Overwrite, tuning);
  for (size_t i = 0; i < fresh.dw.size(); ++i)
    ASSERT_TRUE(std::isfinite(fresh.dw[i])) << what << " dw overwrite, element " << i;
  for (size_t i = 0; i < fresh.db.size(); ++i)
    ASSERT_TRUE(std::isfinite(fresh.db[i])) << what << " db overwrite, element " << i;
}

TEST(TensorCoreConv2d, ForwardBackwardDataAndFilterMatchTheCpu) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  uint64_t seed = 1000;
  for (const Case& c : conv_cases())
    for (const MathPrecision precision : kTensorModes) check_conv(c, precision, seed += 10);
}

TEST(TensorCoreConv2d, RoundingReallyHappens) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const Case c{"C_in 8", conv2d_shape(2, 8, 9, 9, 12, 3, 3, 1, 1, Padding::Same)};
  const Inputs in = make_inputs(c.s, 1100);
  for (const MathPrecision precision : kTensorModes) {
    const Reference exact = forward_reference(c.s, in, MathPrecision::FP32, false);
    EXPECT_TRUE(shows_rounding(describe(c) + " forward",
                               run_forward(c.s, in, false, tuned(precision)), exact.value,
                               exact.scale, precision));
    const Reference dx_exact = backward_data_reference(c.s, in, MathPrecision::FP32);
    EXPECT_TRUE(shows_rounding(describe(c) + " dx", run_backward_data(c.s, in, tuned(precision)),
                               dx_exact.value, dx_exact.scale, precision));
    const FilterReference f_exact = backward_filter_reference(c.s, in, MathPrecision::FP32);
    EXPECT_TRUE(
        shows_rounding(describe(c) + " dw",
                       run_backward_filter(c.s, in, GradMode::Accumulate, tuned(precision)).dw,
                       f_exact.dw.value, f_exact.dw.scale, precision));
  }
}

TEST(TensorCoreConv2d, EveryTileAndChunkConfiguration) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const Case c{"C_out 33, stride 2x1", conv2d_shape(2, 5, 9, 7, 33, 2, 3, 2, 1, Padding::Same)};
  uint64_t seed = 1200;
  for (const MathPrecision precision : kTensorModes) {
    for (const Conv2dTiles tiles :
         {Conv2dTiles::M128N64, Conv2dTiles::M64N64, Conv2dTiles::M128N32, Conv2dTiles::M64N32})
      check_conv(c, precision, seed += 10, tuned(precision, tiles),
                 cat(" gather tiles ", static_cast<int>(tiles)));
    for (const Conv2dFilterTiles tiles : {Conv2dFilterTiles::M32N16, Conv2dFilterTiles::M32N32,
                                          Conv2dFilterTiles::M32N64, Conv2dFilterTiles::M64N64})
      for (const int64_t chunks : {1, 3}) {
        const Conv2dTuning tuning = tuned(precision, Conv2dTiles::Auto, tiles, chunks);
        const Inputs in = make_inputs(c.s, seed += 10);
        const FilterReference ref = backward_filter_reference(c.s, in, precision);
        const double tol = accumulation_tolerance(c.s.n * c.s.out_pixels(), precision);
        const FilterResult got = run_backward_filter(c.s, in, GradMode::Accumulate, tuning);
        const std::string what = cat(describe(c), " ", precision_name(precision), " filter tiles ",
                                     static_cast<int>(tiles), " chunks ", chunks);
        EXPECT_TRUE(close_to(what + " dw", got.dw, ref.dw.value, ref.dw.scale, tol));
        EXPECT_TRUE(close_to(what + " db", got.db, ref.db.value, ref.db.scale, tol));
      }
  }
}

TEST(TensorCoreConv2d, BitIdenticalRepeatsAndGatherTiles) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // Forward / backward-data outputs are one accumulator element fed the same mma steps over the
  // depth in order, whatever the gather tile: bit-identical across tiles and runs. Backward-
  // filter's tiles and chunks change its summation order, so only repeats are compared there.
  const Case c{"C_in 20, C_out 40", conv2d_shape(2, 20, 6, 7, 40, 3, 3, 2, 1, Padding::Same)};
  const Inputs in = make_inputs(c.s, 1300);
  for (const MathPrecision precision : kTensorModes) {
    const std::vector<float> y = run_forward(c.s, in, true, tuned(precision));
    const std::vector<float> dx = run_backward_data(c.s, in, tuned(precision));
    for (const Conv2dTiles tiles : {Conv2dTiles::Auto, Conv2dTiles::M128N64, Conv2dTiles::M64N64,
                                    Conv2dTiles::M128N32, Conv2dTiles::M64N32}) {
      EXPECT_TRUE(same_bits(run_forward(c.s, in, true, tuned(precision, tiles)), y))
          << precision_name(precision) << " forward, tiles " << static_cast<int>(tiles);
      EXPECT_TRUE(same_bits(run_backward_data(c.s, in, tuned(precision, tiles)), dx))
          << precision_name(precision) << " backward-data, tiles " << static_cast<int>(tiles);
    }
    for (const int64_t chunks : {1, 3}) {
      const Conv2dTuning tuning =
          tuned(precision, Conv2dTiles::Auto, Conv2dFilterTiles::Auto, chunks);
      const FilterResult first = run_backward_filter(c.s, in, GradMode::Overwrite, tuning);
      const FilterResult again = run_backward_filter(c.s, in, GradMode::Overwrite, tuning);
      const std::string what = cat(precision_name(precision), " chunks ", chunks);
      EXPECT_TRUE(same_bits(first.dw, again.dw)) << what;
      EXPECT_TRUE(same_bits(first.db, again.db)) << what;
    }
  }
}

TEST(TensorCoreConv2d, UnknownPrecisionThrows) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  const Conv2dShape s = conv2d_shape(1, 2, 5, 5, 3, 3, 3, 1, 1, Padding::Same);
  DeviceArray<float> x(sz(x_size(s))), w(sz(w_size(s))), y(sz(y_size(s))), db(sz(s.c_out));
  Conv2dTuning tuning;
  tuning.precision = static_cast<MathPrecision>(7);
  EXPECT_THROW(conv2d_forward(s, x.get(), w.get(), nullptr, y.get(), nullptr, test_stream(),
                              Conv2dEpilogue{}, tuning),
               polytask::Error);
  EXPECT_THROW(conv2d_backward_data(s, y.get(), w.get(), x.get(), GradMode::Overwrite, nullptr,
                                    test_stream(), tuning),
               polytask::Error);
  EXPECT_THROW(conv2d_backward_filter(s, x.get(), y.get(), w.get(), db.get(), GradMode::Overwrite,
                                      nullptr, test_stream(), tuning),
               polytask::Error);
}

// ---- the wmma emulation itself ------------------------------------------------------------------

#if defined(POLYTASK_CUDA_EMULATION)
namespace wmma = nvcuda::wmma;
namespace emulator = polytask::kernels::cuda::emulator;

void run_one_warp(const std::function<void()>& body) {
  emulator::run("wmma emulation test", dim3(1), dim3(32), 0, body);
}

TEST(WmmaEmulation, RoundingsAgreeWithTheHostFunctionsBitForBit) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // Two independent implementations of each rounding (emulator_wmma.h, precision.cpp).
  std::mt19937 rng(7);
  std::vector<uint32_t> patterns = {0x00000000u, 0x80000000u, 0x00000001u, 0x00001000u,
                                    0x00001fffu, 0x00008000u, 0x0000ffffu, 0x7f7fffffu,
                                    0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                    0x3f801000u, 0x3f808000u, 0x3f818000u, 0xbf801000u};
  for (int i = 0; i < 200000; ++i) patterns.push_back(static_cast<uint32_t>(rng()));
  for (const uint32_t u : patterns) {
    const float x = float_of(u);
    const float tf32 = wmma::__float_to_tf32(x);
    const float bf16 = __bfloat162float(__float2bfloat16(x));
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(tf32) && std::isnan(bf16)) << std::hex << u;
      continue;
    }
    ASSERT_EQ(bits_of(tf32), bits_of(round_to_tf32(x))) << std::hex << u;
    ASSERT_EQ(bits_of(bf16), bits_of(round_to_bf16(x))) << std::hex << u;
  }
}

TEST(WmmaEmulation, FragmentsLoadMultiplyAndStoreInBothLayouts) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // Small integers: every product and sum is exact, so the result is known to the bit.
  alignas(32) float a[16 * 8], b[8 * 16], c[16 * 16], d[16 * 16];
  for (int i = 0; i < 16 * 8; ++i) a[i] = float(i % 7 - 3);
  for (int i = 0; i < 8 * 16; ++i) b[i] = float(i % 5 - 2);
  for (int i = 0; i < 16 * 16; ++i) c[i] = float(i % 3);
  alignas(32) __nv_bfloat16 a16[16 * 16], b16[16 * 16];
  for (int i = 0; i < 256; ++i) {
    a16[i] = __float2bfloat16(float(i % 9 - 4));
    b16[i] = __float2bfloat16(float(i % 4 - 1));
  }
  // TF32: A stored column-major (element (i, p) at a[p·16 + i]), B row-major, C row-major in,
  // D column-major out.
  run_one_warp([&] {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::load_matrix_sync(acc, c, 16, wmma::mem_row_major);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, wmma::mem_col_major);
  });
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float want = c[i * 16 + j];
      for (int p = 0; p < 8; ++p) want += a[p * 16 + i] * b[p * 16 + j];
      ASSERT_EQ(d[j * 16 + i], want) << i << ", " << j;
    }
  // BF16: A row-major, B column-major (element (p, j) at b16[j·16 + p]), D row-major.
  run_one_warp([&] {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.5f);
    wmma::load_matrix_sync(fa, a16, 16);
    wmma::load_matrix_sync(fb, b16, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
  });
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float want = 0.5f;
      for (int p = 0; p < 16; ++p)
        want += __bfloat162float(a16[i * 16 + p]) * __bfloat162float(b16[j * 16 + p]);
      ASSERT_EQ(d[i * 16 + j], want) << i << ", " << j;
    }
}

TEST(WmmaEmulation, TensorCoresSeeOnlyTheTf32BitsOfAnOperand) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // 1 + 2^-11 + 2^-12 is not a TF32 value. Unrounded, the mma reads its TF32 bits only, 1 (the
  // hardware ignores the low 13 bits); __float_to_tf32 would have rounded it to 1 + 2^-10. A
  // kernel that forgets to round therefore computes differently here, and the tests see it.
  alignas(32) float a[16 * 8], b[8 * 16], d[16 * 16];
  std::fill(a, a + 16 * 8, 0.0f);
  std::fill(b, b + 8 * 16, 0.0f);
  a[0] = 1.0f + std::ldexp(1.0f, -12) + std::ldexp(1.0f, -11);  // (0, 0), row-major
  b[0] = 1.0f;
  run_one_warp([&] {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::load_matrix_sync(fa, a, 8);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, wmma::mem_row_major);
  });
  EXPECT_EQ(d[0], 1.0f);  // truncated to TF32
  EXPECT_EQ(wmma::__float_to_tf32(a[0]), 1.0f + std::ldexp(1.0f, -10));
}

TEST(WmmaEmulation, StoresLeaveOtherLanesElementsUntilTheWarpSynchronises) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  // Each element is stored by one lane; a lane reading the tile right after its own store sees
  // other lanes' elements only after __syncwarp — as on the GPU, where each lane stores its own.
  alignas(32) float tile[16 * 16];
  for (const bool sync : {false, true}) {
    std::fill(tile, tile + 256, -1.0f);
    int unwritten_seen = 0;
    run_one_warp([&] {
      wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
      wmma::fill_fragment(acc, 2.0f);
      wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
      if (sync) __syncwarp();
      for (int e = 0; e < 256; ++e) unwritten_seen += tile[e] == -1.0f ? 1 : 0;
    });
    if (sync)
      EXPECT_EQ(unwritten_seen, 0);
    else
      EXPECT_GT(unwritten_seen, 0);
    for (const float v : tile) ASSERT_EQ(v, 2.0f);
  }
}

TEST(WmmaEmulation, RejectsMisalignedPointersBadStridesAndDivergentArguments) {
  POLYTASK_REQUIRE_TENSOR_CORES();
  alignas(32) static float tile[64 * 16];
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
  EXPECT_THROW(run_one_warp([&] {
                 FragA f;
                 wmma::load_matrix_sync(f, tile + 4, 8);  // 16 bytes past a 32-byte boundary
               }),
               polytask::Error);
  EXPECT_THROW(run_one_warp([&] {
                 FragA f;
                 wmma::load_matrix_sync(f, tile, 10);  // 40 bytes: not a multiple of 16
               }),
               polytask::Error);
  EXPECT_THROW(run_one_warp([&] {
                 FragA f;
                 wmma::load_matrix_sync(f, tile + (threadIdx.x == 5 ? 8 : 0), 8);
               }),
               polytask::Error);
  EXPECT_NO_THROW(run_one_warp([&] {
    FragA f;
    wmma::load_matrix_sync(f, tile + 8, 8);
  }));
}
#endif

}  // namespace
}  // namespace polytask::kernels::cuda
