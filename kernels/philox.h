// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so any element's random number is a pure function of
// (seed, counter) and the CPU reference and a CUDA kernel produce bit-identical dropout masks
// without storing them.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define POLYTASK_HOST_DEVICE __host__ __device__
#else
#define POLYTASK_HOST_DEVICE
#endif

namespace polytask::kernels {

struct Philox4x32 {
  uint32_t v[4];
};

POLYTASK_HOST_DEVICE inline Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2,
                                                     uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * c0;
    const uint64_t p1 = uint64_t(kMul1) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// Block `block` of draw `stream` under `seed`: its four words serve elements 4·block .. 4·block+3.
POLYTASK_HOST_DEVICE inline Philox4x32 philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  return philox4x32_10(uint32_t(block), uint32_t(block >> 32), uint32_t(stream),
                       uint32_t(stream >> 32), uint32_t(seed), uint32_t(seed >> 32));
}

// One word as a uniform float in [0, 1): 24 random bits -> an exactly representable float.
POLYTASK_HOST_DEVICE inline float philox_word_uniform(uint32_t word) {
  return float(word >> 8) * (1.0f / 16777216.0f);
}

// A uniform float in [0, 1) for element `index` of draw `stream` under `seed`: the four words
// of one Philox block serve four consecutive elements (loops over elements should compute
// each block once, with philox_block, rather than four times through this).
POLYTASK_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox_word_uniform(philox_block(seed, stream, index >> 2).v[index & 3]);
}

}  // namespace polytask::kernels
