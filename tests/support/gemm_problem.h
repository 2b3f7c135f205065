// GEMM problems for the CUDA GEMM tests (tests/cuda/test_gemm.cpp, test_tensor_cores.cpp): the
// operands as stored on the host with NaN-padded rows, the CPU reference in double with its
// error scale, running kernels::cuda::gemm on a problem, and comparing C against the reference.
// The tests take the names with `using namespace polytask::testing::gemm_test;`.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/gemm.h"
#include "tests/support/cuda_test.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gradcheck.h"

namespace polytask::testing::gemm_test {

// Row strides: Tight = the stored width, Aligned = padded to a multiple of 4 (the float4
// path whenever the base is aligned), Odd = padded to a non-multiple of 4 (the scalar path).
enum class Stride { Tight, Aligned, Odd };

inline int64_t stride_for(int64_t width, Stride stride) {
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
// NaN too and must come back untouched. With `with_bias`, bias (n) is added to every row of C
// (GemmOptions::column_bias).
struct Problem {
  kernels::Transpose trans_a = kernels::Transpose::No, trans_b = kernels::Transpose::No;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  std::vector<float> a, b, c, bias;
  bool with_bias = false;

  int64_t a_rows() const { return trans_a == kernels::Transpose::No ? m : k; }
  int64_t a_cols() const { return trans_a == kernels::Transpose::No ? k : m; }
  int64_t b_rows() const { return trans_b == kernels::Transpose::No ? k : n; }
  int64_t b_cols() const { return trans_b == kernels::Transpose::No ? n : k; }
};

// rows x cols random values in [-1, 1) stored with row stride ld; the padding holds NaN.
inline std::vector<float> padded_random(int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  const auto dense = random_vector<float>(static_cast<size_t>(rows * cols), seed);
  std::vector<float> out(static_cast<size_t>(rows * ld), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t col = 0; col < cols; ++col)
      out[static_cast<size_t>(r * ld + col)] = dense[static_cast<size_t>(r * cols + col)];
  return out;
}

// A, B, C from seeds seed, seed + 1, seed + 2 and, with a bias, the bias from seed + 3.
inline Problem make_gemm_problem(kernels::Transpose trans_a, kernels::Transpose trans_b,
                                 Shape shape, Stride stride, float alpha, float beta, uint64_t seed,
                                 bool with_bias = false) {
  Problem p;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.m = shape.m;
  p.n = shape.n;
  p.k = shape.k;
  p.alpha = alpha;
  p.beta = beta;
  p.with_bias = with_bias;
  p.lda = stride_for(p.a_cols(), stride);
  p.ldb = stride_for(p.b_cols(), stride);
  p.ldc = stride_for(p.n, stride);
  p.a = padded_random(p.a_rows(), p.a_cols(), p.lda, seed);
  p.b = padded_random(p.b_rows(), p.b_cols(), p.ldb, seed + 1);
  p.c = padded_random(p.m, p.n, p.ldc, seed + 2);
  if (with_bias)
    p.bias = random_vector<float>(static_cast<size_t>(std::max<int64_t>(p.n, 1)), seed + 3);
  // beta = 0 must not read C: poison all of it.
  if (beta == 0.0f) std::fill(p.c.begin(), p.c.end(), std::numeric_limits<float>::quiet_NaN());
  return p;
}

inline std::string describe(const Problem& p) {
  using kernels::Transpose;
  return cat(p.trans_a == Transpose::Yes ? "T" : "N", p.trans_b == Transpose::Yes ? "T" : "N",
             " m=", p.m, " n=", p.n, " k=", p.k, " lda=", p.lda, " ldb=", p.ldb, " ldc=", p.ldc,
             " alpha=", p.alpha, " beta=", p.beta, p.with_bias ? " bias" : "");
}

inline const char* tiles_name(kernels::cuda::GemmTiles tiles) {
  using kernels::cuda::GemmTiles;
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

// How many floats each operand sits past a 16-byte boundary; 1 forces its scalar path.
struct Offsets {
  int64_t a = 0, b = 0, c = 0;
};

inline std::vector<float> shifted(const std::vector<float>& v, int64_t offset) {
  std::vector<float> out(static_cast<size_t>(offset), std::numeric_limits<float>::quiet_NaN());
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// Runs kernels::cuda::gemm on the problem (with its bias when it has one) and returns C's
// whole stored extent.
inline std::vector<float> run_gemm_problem(const Problem& p, kernels::cuda::GemmOptions options,
                                           Offsets at = {}) {
  DeviceArray<float> a(shifted(p.a, at.a)), b(shifted(p.b, at.b)), c(shifted(p.c, at.c));
  DeviceArray<float> bias(p.bias);
  options.column_bias = p.with_bias ? bias.get() : nullptr;
  kernels::cuda::gemm(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.get() + at.a, p.lda,
                      b.get() + at.b, p.ldb, p.beta, c.get() + at.c, p.ldc, test_stream(), options);
  const std::vector<float> out = c.download();
  return std::vector<float>(out.begin() + at.c, out.end());
}

// The reference value (cpu::gemm in double) and its error scale S (the same on absolute
// values), over C's whole stored extent.
using Reference = BoundedReference;

// The reference of `p` with `a` and `b` in place of p.a and p.b (e.g. rounded copies).
inline Reference gemm_reference(const Problem& p, const std::vector<float>& a_operand,
                                const std::vector<float>& b_operand) {
  std::vector<double> c = to_double(p.c), c_abs = absolute(c);
  if (p.beta == 0.0f) {  // the contract: C is not read; the reference must not see its NaNs
    std::fill(c.begin(), c.end(), 0.0);
    std::fill(c_abs.begin(), c_abs.end(), 0.0);
  }
  const auto a = to_double(a_operand), b = to_double(b_operand);
  const auto a_abs = absolute(a), b_abs = absolute(b);
  kernels::cpu::gemm<double>(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.data(), p.lda,
                             b.data(), p.ldb, p.beta, c.data(), p.ldc);
  kernels::cpu::gemm<double>(p.trans_a, p.trans_b, p.m, p.n, p.k, std::abs(p.alpha), a_abs.data(),
                             p.lda, b_abs.data(), p.ldb, std::abs(p.beta), c_abs.data(), p.ldc);
  if (p.with_bias)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        const size_t at = static_cast<size_t>(i * p.ldc + j);
        c[at] += p.bias[static_cast<size_t>(j)];
        c_abs[at] += std::abs(p.bias[static_cast<size_t>(j)]);
      }
  return {std::move(c), std::move(c_abs)};
}

// C's n columns within tol·S of the reference; C's padding columns untouched.
inline ::testing::AssertionResult gemm_matches(const Problem& p, const std::vector<float>& got,
                                               const Reference& ref, double tol) {
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.ldc; ++j) {
      const size_t at = static_cast<size_t>(i * p.ldc + j);
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

}  // namespace polytask::testing::gemm_test
