// Benchmark inputs: n floats uniform in [-1, 1), the same for the same seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace polytask::bench {

inline std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(rng);
  return v;
}

}  // namespace polytask::bench
