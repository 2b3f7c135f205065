// Test helpers shared by every kernel and engine test: seeded random data, poisoning, and a
// central-difference gradient checker (Caffe's GradientChecker idea, in double precision).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace polytask::testing {

template <class T = double>
std::vector<T> random_vector(size_t count, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> out(count);
  for (auto& v : out) v = T(dist(rng));
  return out;
}

// Fills with NaN so a test can prove a kernel wrote every output element.
template <class T>
void poison(std::vector<T>& v) {
  std::fill(v.begin(), v.end(), std::numeric_limits<T>::quiet_NaN());
}

template <class T>
bool all_finite(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](T x) { return std::isfinite(double(x)); });
}

// |a - b| <= abs_tol + rel_tol * max(|a|, |b|), reported per element with its index.
template <class T, class U>
::testing::AssertionResult all_close(const std::vector<T>& actual, const std::vector<U>& expected,
                                     double rel_tol, double abs_tol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " vs expected " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = double(actual[i]), e = double(expected[i]);
    if (!(std::abs(a - e) <= abs_tol + rel_tol * std::max(std::abs(a), std::abs(e))))
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a << " vs expected " << e << " (rel_tol " << rel_tol
             << ", abs_tol " << abs_tol << ")";
  }
  return ::testing::AssertionSuccess();
}

struct GradCheckOptions {
  double step = 1e-6;      // central-difference step in double precision
  double rel_tol = 1e-6;   // relative error allowed between analytic and numeric gradient
  double abs_tol = 1e-8;
  // An element is a kink (ReLU at 0, a max-pool tie) when its one-sided differences disagree
  // by more than this; kinks are skipped, but at most max_kink_fraction of the elements.
  double kink_threshold = 1e-4;
  double max_kink_fraction = 0.1;
};

// Compares analytic[i] with (objective(x + h e_i) - objective(x - h e_i)) / 2h for every i.
// `input` is perturbed in place and restored; `objective` must read it afresh on each call.
// Objectives are usually dot(forward(input), random_weights), whose gradient is backward with
// dy = random_weights.
inline ::testing::AssertionResult check_gradient(const std::string& what, std::vector<double>& input,
                                                 const std::vector<double>& analytic,
                                                 const std::function<double()>& objective,
                                                 const GradCheckOptions& opt = {}) {
  if (input.size() != analytic.size())
    return ::testing::AssertionFailure() << what << ": gradient has " << analytic.size()
                                         << " elements for an input of " << input.size();
  const double f0 = objective();
  size_t kinks = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    const double saved = input[i];
    input[i] = saved + opt.step;
    const double f_plus = objective();
    input[i] = saved - opt.step;
    const double f_minus = objective();
    input[i] = saved;
    const double forward = (f_plus - f0) / opt.step, backward = (f0 - f_minus) / opt.step;
    const double numeric = (f_plus - f_minus) / (2 * opt.step);
    if (std::abs(forward - backward) > opt.kink_threshold * std::max(1.0, std::abs(numeric))) {
      ++kinks;
      continue;
    }
    const double a = analytic[i];
    if (!(std::abs(a - numeric) <= opt.abs_tol + opt.rel_tol * std::max(std::abs(a), std::abs(numeric))))
      return ::testing::AssertionFailure()
             << what << ": element " << i << " analytic " << a << " vs numeric " << numeric;
  }
  if (double(kinks) > opt.max_kink_fraction * double(input.size()))
    return ::testing::AssertionFailure() << what << ": " << kinks << " of " << input.size()
                                         << " elements sit on kinks; choose other inputs";
  return ::testing::AssertionSuccess();
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace polytask::testing
