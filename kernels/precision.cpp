#include "kernels/precision.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>

#include "kernels/error.h"

namespace polytask::kernels {

namespace {

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

bool is_nan_bits(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

}  // namespace

const char* precision_name(MathPrecision precision) {
  switch (precision) {
    case MathPrecision::FP32:
      return "fp32";
    case MathPrecision::TF32:
      return "tf32";
    case MathPrecision::BF16:
      return "bf16";
  }
  return "?";
}

MathPrecision parse_precision(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const MathPrecision p : {MathPrecision::FP32, MathPrecision::TF32, MathPrecision::BF16})
    if (lower == precision_name(p)) return p;
  fail("unknown math precision '", text, "': expected fp32|tf32|bf16");
}

float round_to_tf32(float x) {
  const uint32_t u = bits_of(x);
  if (is_nan_bits(u)) return float_of(0x7fffffffu);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // ±infinity
  // Adding half of the dropped range (bit 12) and truncating rounds half-way cases up in
  // magnitude: ties away from zero. A carry into the exponent is the correct rounding too, up
  // to infinity past the largest TF32 value.
  return float_of((u + 0x1000u) & 0xffffe000u);
}

float round_to_bf16(float x) {
  const uint32_t u = bits_of(x);
  if (is_nan_bits(u)) return float_of(0x7fff0000u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  // Half the dropped range minus one, plus the kept part's lowest bit: ties go to even.
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return float_of(rounded & 0xffff0000u);
}

float round_operand(MathPrecision precision, float x) {
  switch (precision) {
    case MathPrecision::FP32:
      return x;
    case MathPrecision::TF32:
      return round_to_tf32(x);
    case MathPrecision::BF16:
      return round_to_bf16(x);
  }
  return x;
}

}  // namespace polytask::kernels
