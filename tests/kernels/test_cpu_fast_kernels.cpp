// The float CPU fast path (kernels/cpu/sgemm.h, conv2d_fast.h) against the double reference, on
// every instruction-set variant this CPU can run (kernels/cpu/isa.h), plus the fallback: odd
// sizes, every GEMM layout, leading dimensions wider than the matrix, NaN-poisoned outputs,
// Overwrite and Accumulate, results independent of the thread count where promised.
// CTest also runs the whole test_kernels_* set once per variant forced by POLYTASK_CPU_ISA
// (tests/CMakeLists.txt); the last test here checks that the switch took effect.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cpu/conv2d_fast.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/sgemm.h"
#include "tests/support/conv_problem.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gradcheck.h"

namespace {

using polytask::kernels::GradMode;
using polytask::kernels::Transpose;
using polytask::kernels::cpu::ConvPath;
using polytask::kernels::cpu::CpuIsa;
using polytask::kernels::cpu::MicroKernels;
using polytask::testing::BoundedReference;
using polytask::testing::close_to;
using polytask::testing::fp32_chain_tolerance;
using polytask::testing::same_bits;
namespace cpu = polytask::kernels::cpu;
namespace conv = polytask::testing::conv;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<const MicroKernels*> variants() {
  std::vector<const MicroKernels*> out;
  for (CpuIsa isa : cpu::kAllCpuIsas)
    if (cpu::cpu_supports(isa)) out.push_back(&cpu::micro_kernels(isa));
  return out;
}

// ---- GEMM

struct GemmCase {
  Transpose ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;  // extra columns in every stored row (held NaN in A and B)
};

// The stored operands with NaN padding, C's padding included (it must stay NaN).
struct GemmData {
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;
};

GemmData make_gemm_data(const GemmCase& g, uint64_t seed) {
  const int64_t a_rows = g.ta == Transpose::No ? g.m : g.k, a_cols = g.ta == Transpose::No ? g.k : g.m;
  const int64_t b_rows = g.tb == Transpose::No ? g.k : g.n, b_cols = g.tb == Transpose::No ? g.n : g.k;
  GemmData d{a_cols + g.pad, b_cols + g.pad, g.n + g.pad, {}, {}, {}};
  const auto fill = [&](int64_t rows, int64_t cols, int64_t ld, uint64_t s) {
    const auto dense = polytask::testing::random_vector<float>(size_t(rows * cols), s);
    std::vector<float> out(size_t(std::max<int64_t>(rows * ld, 1)), kNaN);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[size_t(r * ld + c)] = dense[size_t(r * cols + c)];
    return out;
  };
  d.a = fill(a_rows, a_cols, d.lda, seed);
  d.b = fill(b_rows, b_cols, d.ldb, seed + 1);
  d.c = fill(g.m, g.n, d.ldc, seed + 2);
  if (g.beta == 0.0f)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) d.c[size_t(i * d.ldc + j)] = kNaN;  // must not be read
  return d;
}

// C's reference in double and its error scale, over the stored extent (padding stays NaN).
BoundedReference gemm_reference(const GemmCase& g, const GemmData& d) {
  BoundedReference ref;
  ref.value.assign(d.c.size(), 0.0);
  ref.scale.assign(d.c.size(), 0.0);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double sum = 0, scale = 0;
      for (int64_t k = 0; k < g.k; ++k) {
        const double a = g.ta == Transpose::No ? d.a[size_t(i * d.lda + k)] : d.a[size_t(k * d.lda + i)];
        const double b = g.tb == Transpose::No ? d.b[size_t(k * d.ldb + j)] : d.b[size_t(j * d.ldb + k)];
        sum += a * b;
        scale += std::abs(a * b);
      }
      const size_t at = size_t(i * d.ldc + j);
      const double c = g.beta == 0.0f ? 0.0 : double(d.c[at]);
      ref.value[at] = double(g.alpha) * sum + double(g.beta) * c;
      ref.scale[at] = std::abs(double(g.alpha)) * scale + std::abs(double(g.beta) * c) + 1e-30;
    }
  return ref;
}

std::vector<float> run_gemm(const MicroKernels& uk, const GemmCase& g, const GemmData& d) {
  std::vector<float> c = d.c;
  cpu::sgemm(uk, g.ta, g.tb, g.m, g.n, g.k, g.alpha, d.a.data(), d.lda, d.b.data(), d.ldb, g.beta,
             c.data(), d.ldc);
  return c;
}

::testing::AssertionResult gemm_matches(const std::vector<float>& c, const GemmCase& g,
                                        const GemmData& d, const BoundedReference& ref) {
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = g.n; j < d.ldc; ++j)
      if (!std::isnan(c[size_t(i * d.ldc + j)]))
        return ::testing::AssertionFailure() << "wrote C's padding at (" << i << ", " << j << ")";
  std::vector<float> inside;
  std::vector<double> value, scale;
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      const size_t at = size_t(i * d.ldc + j);
      inside.push_back(c[at]);
      value.push_back(ref.value[at]);
      scale.push_back(ref.scale[at]);
    }
  return close_to("C", inside, value, scale, fp32_chain_tolerance(g.k + 2));
}

std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> out;
  const Transpose N = Transpose::No, T = Transpose::Yes;
  // Sizes around every tile edge (mr 6/8, nr 8/16/32, dot tiles 3x4/4x6, lanes 4/8/16), k past
  // the packed block (256), the dot block (1024) and sgemm's switch to the dot kernels for
  // A·Bᵀ (4096), empty products.
  const int64_t shapes[][3] = {{1, 1, 1},    {7, 5, 3},     {13, 33, 17},  {64, 121, 288},
                               {37, 70, 300}, {9, 50, 1100}, {129, 67, 65}, {5, 0, 4},
                               {4, 6, 0},    {17, 1, 31},   {1, 40, 9},    {3, 7, 4500}};
  for (Transpose ta : {N, T})
    for (Transpose tb : {N, T})
      for (const auto& s : shapes) {
        out.push_back({ta, tb, s[0], s[1], s[2], 1.0f, 0.0f, 0});
        out.push_back({ta, tb, s[0], s[1], s[2], -0.5f, 0.75f, 3});
      }
  return out;
}

std::string describe(const MicroKernels& uk, const GemmCase& g) {
  return polytask::cat(cpu::isa_name(uk.isa), " ", g.ta == Transpose::Yes ? "T" : "N",
                       g.tb == Transpose::Yes ? "T" : "N", " m=", g.m, " n=", g.n, " k=", g.k,
                       " alpha=", g.alpha, " beta=", g.beta, " pad=", g.pad);
}

TEST(CpuSgemm, EveryVariantAndLayoutMatchesDouble) {
  uint64_t seed = 1000;
  for (const MicroKernels* uk : variants())
    for (const GemmCase& g : gemm_cases()) {
      SCOPED_TRACE(describe(*uk, g));
      const GemmData d = make_gemm_data(g, seed += 3);
      EXPECT_TRUE(gemm_matches(run_gemm(*uk, g, d), g, d, gemm_reference(g, d)));
    }
}

// Each element of C is one thread's sum in a fixed order: the bits do not depend on how many
// threads split C.
TEST(CpuSgemm, ResultsDoNotDependOnTheThreadCount) {
  const int saved = omp_get_max_threads();
  for (const MicroKernels* uk : variants())
    for (Transpose ta : {Transpose::No, Transpose::Yes})
      for (Transpose tb : {Transpose::No, Transpose::Yes}) {
        const GemmCase g{ta, tb, 96, 200, 150, 1.0f, 0.0f, 0};
        SCOPED_TRACE(describe(*uk, g));
        const GemmData d = make_gemm_data(g, 77);
        omp_set_num_threads(1);
        const auto one = run_gemm(*uk, g, d);
        for (int threads : {2, 3, 32}) {
          omp_set_num_threads(threads);
          EXPECT_TRUE(same_bits(one, run_gemm(*uk, g, d))) << threads << " threads";
        }
      }
  omp_set_num_threads(saved);
}

// ---- convolution

constexpr double kConvTolerance = 1.5;  // times fp32_chain_tolerance(depth), see below

// Depths of the longest float chains: forward C_in·K_h·K_w (+ bias); backward-data
// C_out·K_h·K_w; backward-filter N·H_out·W_out (split over threads and chunks, then summed).
double forward_tolerance(const polytask::kernels::Conv2dShape& s) {
  return kConvTolerance * fp32_chain_tolerance(s.patch_size() + 2);
}
double data_tolerance(const polytask::kernels::Conv2dShape& s) {
  return kConvTolerance * fp32_chain_tolerance(s.c_out * s.k_h * s.k_w + 1);
}
double filter_tolerance(const polytask::kernels::Conv2dShape& s) {
  return kConvTolerance * fp32_chain_tolerance(s.n * s.out_pixels() + 1);
}

const char* path_name(ConvPath path) { return path == ConvPath::Direct ? "direct" : "im2col"; }
constexpr ConvPath kPaths[] = {ConvPath::Im2col, ConvPath::Direct};

std::vector<conv::Case> conv_cases() {
  auto cases = conv::odd_cases();
  using polytask::kernels::conv2d_shape;
  using polytask::kernels::Padding;
  // The workloads' layers at a batch that splits unevenly over threads and chunks.
  cases.push_back({"28x28x1 -> 32 valid", conv2d_shape(5, 1, 28, 28, 32, 3, 3, 1, 1, Padding::Valid)});
  cases.push_back({"13x13x32 -> 64 valid", conv2d_shape(11, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid)});
  cases.push_back({"32x32x3 -> 32 same", conv2d_shape(3, 3, 32, 32, 32, 3, 3, 1, 1, Padding::Same)});
  return cases;
}

TEST(CpuConvFast, ForwardWithBiasAndReluMatchesDouble) {
  uint64_t seed = 5000;
  for (const MicroKernels* uk : variants())
    for (const conv::Case& c : conv_cases())
      for (ConvPath path : kPaths)
        for (bool relu : {false, true}) {
          SCOPED_TRACE(polytask::cat(cpu::isa_name(uk->isa), " ", path_name(path), " ",
                                     conv::describe(c), relu ? " relu" : ""));
          const auto in = conv::make_inputs(c.s, seed += 10);
          const auto ref = conv::conv_forward_reference(c.s, in.x, in.w, &in.b, relu);
          std::vector<float> y(size_t(conv::y_size(c.s)), kNaN);
          cpu::conv2d_forward_fast(*uk, c.s, in.x.data(), in.w.data(), in.b.data(), y.data(), relu,
                                   path);
          EXPECT_TRUE(close_to("y", y, ref.value, ref.scale, forward_tolerance(c.s)));
        }
}

TEST(CpuConvFast, BackwardDataOverwritesOrAccumulates) {
  uint64_t seed = 6000;
  for (const MicroKernels* uk : variants())
    for (const conv::Case& c : conv_cases())
      for (ConvPath path : kPaths)
        for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
          SCOPED_TRACE(polytask::cat(cpu::isa_name(uk->isa), " ", path_name(path), " ",
                                     conv::describe(c),
                                     mode == GradMode::Overwrite ? " overwrite" : " accumulate"));
          const auto in = conv::make_inputs(c.s, seed += 10);
          const auto ref = conv::conv_backward_data_reference(c.s, in.dy, in.w, in.dx_seed, mode);
          std::vector<float> dx = in.dx_seed;
          if (mode == GradMode::Overwrite) std::fill(dx.begin(), dx.end(), kNaN);
          cpu::conv2d_backward_data_fast(*uk, c.s, in.dy.data(), in.w.data(), dx.data(), mode,
                                         path);
          EXPECT_TRUE(close_to("dx", dx, ref.value, ref.scale, data_tolerance(c.s)));
        }
}

TEST(CpuConvFast, BackwardFilterOverwritesOrAccumulatesWithAndWithoutDb) {
  uint64_t seed = 7000;
  for (const MicroKernels* uk : variants())
    for (const conv::Case& c : conv_cases())
      for (ConvPath path : kPaths)
      for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate})
        for (bool with_db : {true, false}) {
          SCOPED_TRACE(polytask::cat(cpu::isa_name(uk->isa), " ", path_name(path), " ",
                                     conv::describe(c),
                                     mode == GradMode::Overwrite ? " overwrite" : " accumulate",
                                     with_db ? "" : " no db"));
          const auto in = conv::make_inputs(c.s, seed += 10);
          const auto ref =
              conv::conv_backward_filter_reference(c.s, in.x, in.dy, in.dw_seed, in.db_seed, mode);
          std::vector<float> dw = in.dw_seed, db = in.db_seed;
          if (mode == GradMode::Overwrite) {
            std::fill(dw.begin(), dw.end(), kNaN);
            std::fill(db.begin(), db.end(), kNaN);
          }
          const std::vector<float> db_before = db;
          cpu::conv2d_backward_filter_fast(*uk, c.s, in.x.data(), in.dy.data(), dw.data(),
                                           with_db ? db.data() : nullptr, mode, path);
          EXPECT_TRUE(close_to("dw", dw, ref.dw.value, ref.dw.scale, filter_tolerance(c.s)));
          if (with_db)
            EXPECT_TRUE(close_to("db", db, ref.db.value, ref.db.scale, filter_tolerance(c.s)));
          else
            EXPECT_TRUE(same_bits(db, db_before)) << "db was written though not asked for";
        }
}

// Forward and backward-data give each output to one thread; the filter gradient sums one
// partial per block of images (a count fixed by the batch) in block order: all three give the
// same bits whatever the thread count, 32 included (more threads than blocks), so training
// repeats to the bit on machines with different core counts. Batches below, at and above the
// 16 filter blocks; the second layer of the workloads and the first (whose filter gradient
// reads dy in place).
TEST(CpuConvFast, ResultsDoNotDependOnTheThreadCount) {
  using polytask::kernels::Padding;
  const std::vector<conv::Case> cases = {
      {"13x13x32 -> 64, 9 images", polytask::kernels::conv2d_shape(9, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid)},
      {"13x13x32 -> 64, 37 images", polytask::kernels::conv2d_shape(37, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid)},
      {"28x28x1 -> 8, 21 images", polytask::kernels::conv2d_shape(21, 1, 28, 28, 8, 3, 3, 1, 1, Padding::Valid)},
  };
  const auto& uk = cpu::active_micro_kernels();
  const int saved = omp_get_max_threads();
  for (const conv::Case& c : cases) {
    const auto in = conv::make_inputs(c.s, 42);
    const auto run = [&](ConvPath path) {
      std::vector<float> y(size_t(conv::y_size(c.s))), dx(in.x.size()), dw(in.w.size()), db(in.b.size());
      cpu::conv2d_forward_fast(uk, c.s, in.x.data(), in.w.data(), in.b.data(), y.data(), true, path);
      cpu::conv2d_backward_data_fast(uk, c.s, in.dy.data(), in.w.data(), dx.data(),
                                     GradMode::Overwrite, path);
      cpu::conv2d_backward_filter_fast(uk, c.s, in.x.data(), in.dy.data(), dw.data(), db.data(),
                                       GradMode::Overwrite, path);
      y.insert(y.end(), dx.begin(), dx.end());
      y.insert(y.end(), dw.begin(), dw.end());
      y.insert(y.end(), db.begin(), db.end());
      return y;
    };
    for (ConvPath path : kPaths) {
      omp_set_num_threads(1);
      const auto one_thread = run(path);
      for (int threads : {2, 3, 32}) {
        omp_set_num_threads(threads);
        EXPECT_TRUE(same_bits(run(path), one_thread))
            << c.name << ", " << threads << " threads, " << path_name(path);
      }
    }
  }
  omp_set_num_threads(saved);
}

// Called from inside a caller's parallel region, OpenMP runs the kernels' regions with one
// thread (nested parallelism is off): that thread must run every block.
TEST(CpuConvFast, InsideACallersParallelRegionTheKernelsRunOnOneThread) {
  const conv::Case c{"13x13x32 -> 64 valid",
                     polytask::kernels::conv2d_shape(6, 32, 13, 13, 64, 3, 3, 1, 1,
                                                     polytask::kernels::Padding::Valid)};
  const auto in = conv::make_inputs(c.s, 43);
  const auto& uk = cpu::active_micro_kernels();
  for (ConvPath path : kPaths) {
    const auto filter = [&] {
      std::vector<float> dw(in.w.size(), kNaN), db(in.b.size(), kNaN);
      cpu::conv2d_backward_filter_fast(uk, c.s, in.x.data(), in.dy.data(), dw.data(), db.data(),
                                       GradMode::Overwrite, path);
      dw.insert(dw.end(), db.begin(), db.end());
      return dw;
    };
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one_thread = filter();
    omp_set_num_threads(2);
    std::vector<float> nested;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      nested = filter();
    }
    omp_set_num_threads(saved);
    EXPECT_TRUE(same_bits(nested, one_thread)) << path_name(path);
  }
}

// ---- dispatch

TEST(CpuIsaDispatch, TheFallbackIsAlwaysAvailableAndTheWidestIsSupported) {
  EXPECT_TRUE(cpu::cpu_supports(CpuIsa::Generic));
  EXPECT_TRUE(cpu::cpu_supports(cpu::widest_supported_isa()));
  EXPECT_EQ(cpu::micro_kernels(CpuIsa::Generic).isa, CpuIsa::Generic);
  for (CpuIsa isa : cpu::kAllCpuIsas) {
    if (!cpu::cpu_supports(isa)) {
      EXPECT_THROW(cpu::micro_kernels(isa), polytask::Error);
    }
  }
}

// Under CTest's POLYTASK_CPU_ISA runs, the kernels really run the forced variant; without it,
// the widest one the CPU has.
TEST(CpuIsaDispatch, TheActiveVariantIsTheForcedOneOrTheWidest) {
  const char* forced = std::getenv("POLYTASK_CPU_ISA");
  const std::string description = cpu::isa_description();
  if (forced == nullptr || *forced == '\0') {
    EXPECT_EQ(cpu::active_isa(), cpu::widest_supported_isa()) << description;
    return;
  }
  EXPECT_EQ(std::string(cpu::isa_name(cpu::active_isa())), forced) << description;
  EXPECT_NE(description.find("forced by POLYTASK_CPU_ISA"), std::string::npos) << description;
  EXPECT_EQ(cpu::active_micro_kernels().isa, cpu::active_isa());
}

}  // namespace
