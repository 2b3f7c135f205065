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

void check_count(const char* what, int64_t n) {
  if (n <= 0) fail(what, ": the number of examples must be positive, got ", n);
}

constexpr int kTwoInputA = 50, kTwoInputB = 100, kTwoInputClasses = 10;

// The two-input set's labelling map, W (10 x 150) then u (150): fixed, like the digit patterns.
const std::vector<double>& two_input_map() {
  static const auto map = [] {
    std::mt19937_64 rng(0x7770'1a9b'17ULL);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> m(size_t((kTwoInputClasses + 1) * (kTwoInputA + kTwoInputB)));
    for (auto& v : m) v = normal(rng);
    return m;
  }();
  return map;
}

}  // namespace

Dataset synthetic_digits(int64_t n, uint64_t seed) {
  check_count("synthetic_digits", n);
  static const auto patterns = class_patterns();
  Tensor images = Tensor::empty({n, 1, kSide, kSide});
  Tensor digits = Tensor::empty({n}, DType::I32);
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
  return Dataset{{{"image", images}}, {{"class", digits}}};
}

Dataset synthetic_rgb(int64_t n, uint64_t seed) {
  check_count("synthetic_rgb", n);
  constexpr int kPlane = kSide * kSide;
  Tensor images = Tensor::empty({n, 3, kSide, kSide});
  Tensor classes = Tensor::empty({n}, DType::I32);
  Tensor values = Tensor::empty({n, 1});
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> label(0, 2);
  std::uniform_real_distribution<double> level(0.2, 0.9), centre(6.0, 22.0), sigma(3.0, 7.0),
      weak_gain(0.25, 0.6);
  std::normal_distribution<double> pixel_noise(0.0, 0.05), value_noise(0.0, 0.02);
  float* px = images.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int cls = label(rng);
    const double lvl = level(rng), r0 = centre(rng), c0 = centre(rng), s = sigma(rng);
    double gains[3];
    for (int ch = 0; ch < 3; ++ch) gains[ch] = ch == cls ? 1.0 : weak_gain(rng);
    float* img = px + i * 3 * kPlane;
    double sum = 0;
    for (int ch = 0; ch < 3; ++ch)
      for (int r = 0; r < kSide; ++r)
        for (int c = 0; c < kSide; ++c) {
          const double y = (r - r0) / s, x = (c - c0) / s;
          const double blob = std::exp(-0.5 * (x * x + y * y));
          const double v = lvl * gains[ch] * (0.35 + 0.65 * blob) + pixel_noise(rng);
          const float p = float(std::clamp(v, 0.0, 1.0));
          img[ch * kPlane + r * kSide + c] = p;
          sum += double(p);
        }
    classes.data<int32_t>()[i] = cls;
    values.data<float>()[i] = float(0.5 * sum / (3 * kPlane) + value_noise(rng));
  }
  return Dataset{{{"image", images}}, {{"class", classes}, {"value", values}}};
}

Dataset synthetic_two_input(int64_t n, uint64_t seed) {
  check_count("synthetic_two_input", n);
  constexpr int kWidth = kTwoInputA + kTwoInputB;
  const auto& map = two_input_map();
  const double* u = map.data() + kTwoInputClasses * kWidth;
  Tensor a = Tensor::empty({n, kTwoInputA});
  Tensor b = Tensor::empty({n, kTwoInputB});
  Tensor classes = Tensor::empty({n}, DType::I32);
  Tensor values = Tensor::empty({n, 1});
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0), value_noise(0.0, 0.1);
  double x[kWidth];
  for (int64_t i = 0; i < n; ++i) {
    for (double& v : x) v = normal(rng);
    for (int j = 0; j < kTwoInputA; ++j) a.data<float>()[i * kTwoInputA + j] = float(x[j]);
    for (int j = 0; j < kTwoInputB; ++j)
      b.data<float>()[i * kTwoInputB + j] = float(x[kTwoInputA + j]);
    int best = 0;
    double best_score = -1e300, value = 0;
    for (int k = 0; k < kTwoInputClasses; ++k) {
      double score = 0;
      for (int j = 0; j < kWidth; ++j) score += map[size_t(k * kWidth + j)] * double(float(x[j]));
      if (score > best_score) best_score = score, best = k;
    }
    for (int j = 0; j < kWidth; ++j) value += u[j] * double(float(x[j]));
    classes.data<int32_t>()[i] = best;
    values.data<float>()[i] = float(value / std::sqrt(double(kWidth)) + value_noise(rng));
  }
  return Dataset{{{"a", a}, {"b", b}}, {{"class", classes}, {"value", values}}};
}

}  // namespace polytask::datasets
