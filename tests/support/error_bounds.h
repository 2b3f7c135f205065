// Bounded-error comparisons of kernel results against a double-precision reference, shared by
// the CUDA kernel tests: each element must lie within tol·scale of the reference, where scale
// is the same computation on absolute values (the error scale S of a chain of roundings).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace polytask::testing {

// Unit roundoff of FP32: 2^-24.
inline constexpr double kUnitRoundoff = 5.9604644775390625e-8;

// The per-element error bound, relative to S, of a chain of `depth` FP32 fused multiply-adds
// against the exact (double) result: each rounds by at most 2^-24 of the running sum, which
// never exceeds S; with inputs of random sign the roundings add like a random walk,
// ~sqrt(depth)·2^-24·S; a factor 4 of margin plus a few epilogue roundings gives
// 2^-24·(4·sqrt(depth) + 4), far below the effect of one wrong or missing term (~S/depth).
inline double fp32_chain_tolerance(int64_t depth) {
  return kUnitRoundoff * (4.0 * std::sqrt(static_cast<double>(depth)) + 4.0);
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

inline std::vector<double> absolute(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::abs(v[i]);
  return out;
}

// A reference result in double and its error scale S (the same computation on absolute
// values), element by element.
struct BoundedReference {
  std::vector<double> value, scale;
};

// Every element of `got` within tol·scale[i] (+1e-30) of expected[i]; sizes equal.
inline ::testing::AssertionResult close_to(const std::string& what, const std::vector<float>& got,
                                           const std::vector<double>& expected,
                                           const std::vector<double>& scale, double tol) {
  if (got.size() != expected.size())
    return ::testing::AssertionFailure()
           << what << ": size " << got.size() << " vs " << expected.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = tol * scale[i] + 1e-30;
    if (!(std::abs(static_cast<double>(got[i]) - expected[i]) <= bound))
      return ::testing::AssertionFailure() << what << ": element " << i << " = " << got[i]
                                           << ", expected " << expected[i] << " within " << bound;
  }
  return ::testing::AssertionSuccess();
}

inline bool same_bits(float x, float y) { return std::memcmp(&x, &y, sizeof(float)) == 0; }

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace polytask::testing
