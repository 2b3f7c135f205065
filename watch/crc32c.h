// CRC-32C (Castagnoli), the checksum of TFRecord framing, and TensorFlow's masked form of it
// (a rotation plus a constant, so a CRC stored inside CRC-checked data does not check itself).
#pragma once

#include <cstddef>
#include <cstdint>

namespace polytask::watch {

// CRC-32C of `n` bytes, continuing from `crc` (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// TensorFlow's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h: Mask).
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace polytask::watch
