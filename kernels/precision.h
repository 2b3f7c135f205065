// The arithmetic a GEMM or convolution kernel multiplies with: FP32 on the FMA units (the
// default, bit-exact as before), or the tensor cores with TF32 or BF16 operands.
//
// Whatever the choice, every tensor stays FP32 in memory — weights (the "master" copy the
// optimiser updates), activations and gradients — and every sum accumulates in FP32. Only the
// two operands of each product are rounded as they enter the tensor cores:
//   TF32  8-bit exponent, 10-bit mantissa (unit roundoff 2^-11): FP32's range, ~3 decimal digits
//   BF16  8-bit exponent,  7-bit mantissa (unit roundoff 2^-8):  FP32's range, ~2 decimal digits
// The product of two such operands is exact in FP32 (11·11 or 8·8 significant bits), so the
// only new error is the operand rounding: a dot product of k terms is off from the FP32 one by
// at most ~2·u·sum|a||b| (u = 2^-11 or 2^-8), usually ~u·sqrt(k)-ish of it.
//
// Why BF16 needs no loss scaling here: loss scaling exists for FP16, whose 5-bit exponent
// flushes gradients below 2^-24 to zero and overflows above 65504. BF16 keeps FP32's 8-bit
// exponent, so every FP32 gradient, however small or large, rounds to a BF16 value of the same
// magnitude (to 2^-8 relative; subnormals below 2^-126 aside, as in FP32 itself). And since the
// gradients are stored and accumulated in FP32 anyway, nothing underflows on the way out
// either. Scaling the loss would change no rounding decision (a power of two only shifts the
// exponent), so it would buy nothing.
#pragma once

#include <string>

namespace polytask::kernels {

enum class MathPrecision {
  FP32,  // FP32 fused multiply-adds on the FMA units (the default)
  TF32,  // tensor cores, operands rounded to TF32, FP32 accumulation
  BF16,  // tensor cores, operands rounded to BF16, FP32 accumulation
};

// "fp32", "tf32" or "bf16".
const char* precision_name(MathPrecision precision);

// The inverse of precision_name, case-insensitive; throws polytask::Error naming the accepted
// spellings (fp32|tf32|bf16) for anything else.
MathPrecision parse_precision(const std::string& text);

// The operand roundings of the tensor-core kernels, on the host, bit for bit as the device
// does them — for CPU references that want the same rounded operands:
//   round_to_tf32: __float_to_tf32 (PTX cvt.rna.tf32.f32): nearest, ties AWAY from zero, to a
//                  10-bit mantissa; the result is a float whose low 13 bits are 0.
//   round_to_bf16: __float2bfloat16 (PTX cvt.rn.bf16.f32): nearest, ties to even, to a 7-bit
//                  mantissa, returned widened back to float (low 16 bits 0).
// Both keep infinities, return a quiet NaN for a NaN, and overflow to infinity past the largest
// representable value, as the hardware conversions do.
float round_to_tf32(float x);
float round_to_bf16(float x);
// round_to_tf32 / round_to_bf16 / the identity, per precision.
float round_operand(MathPrecision precision, float x);

}  // namespace polytask::kernels
