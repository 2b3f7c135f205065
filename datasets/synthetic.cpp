#include "datasets/synthetic.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace polytask::datasets {

namespace {

constexpr int kSide = 28;
constexpr int kClasses = 10;
constexpr int kStrokesPerClass = 4;

struct Stroke {
  double row, col, sigma_row, sigma_col, amplitude;
};

// The class patterns are part of the data set's definition, not of a call: fixed seed.
std::vector<std::vector<Stroke>> class_patterns() {
  std::mt19937_64 rng(0x5eed'd161'75ULL);
  std::uniform_real_distribution<double> pos(7.0, 21.0), sigma(1.2, 4.0), amp(0.6, 1.0);
  std::vector<std::vector<Stroke>> patterns(kClasses);
  for (auto& strokes : patterns)
    for (int s = 0; s < kStrokesPerClass; ++s)
      strokes.push_back({pos(rng), pos(rng), sigma(rng), sigma(rng), amp(rng)});
  return patterns;
}

}  // namespace

Dataset synthetic_digits(int64_t n, uint64_t seed) {
  if (n <= 0) fail("synthetic_digits: the number of images must be positive, got ", n);
  static const auto patterns = class_patterns();
  Tensor images = Tensor::empty({n, 1, kSide, kSide});
  Tensor digits = Tensor::empty({n}, DType::I32);
  Tensor parity = Tensor::empty({n}, DType::I32);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> label(0, kClasses - 1), shift(-2, 2);
  std::uniform_real_distribution<double> gain(0.7, 1.3);
  std::normal_distribution<double> noise(0.0, 0.15);
  float* px = images.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int digit = label(rng);
    const int dr = shift(rng), dc = shift(rng);
    const double g = gain(rng);
    digits.data<int32_t>()[i] = digit;
    parity.data<int32_t>()[i] = digit % 2;
    float* img = px + i * kSide * kSide;
    for (int r = 0; r < kSide; ++r)
      for (int c = 0; c < kSide; ++c) {
        double v = 0;
        for (const auto& s : patterns[size_t(digit)]) {
          const double y = (r - dr - s.row) / s.sigma_row, x = (c - dc - s.col) / s.sigma_col;
          v += s.amplitude * std::exp(-0.5 * (x * x + y * y));
        }
        img[r * kSide + c] = float(std::clamp(g * v + noise(rng), 0.0, 1.0));
      }
  }
  return Dataset{{{"image", images}}, {{"digit", digits}, {"parity", parity}}};
}

}  // namespace polytask::datasets
