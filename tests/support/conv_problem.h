// Convolution problems for the conv2d tests (tests/cuda/test_conv2d.cpp, test_tensor_cores.cpp,
// tests/kernels/test_cpu_fast_kernels.cpp; `using namespace polytask::testing::conv;`): named
// cases, random inputs and seeds for accumulated gradients, and the CPU references in double
// (kernels::cpu::conv2d_*) with their error scales.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/error.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gradcheck.h"

namespace polytask::testing::conv {

struct Case {
  const char* name;
  kernels::Conv2dShape s;
};

inline std::string describe(const Case& c) {
  const kernels::Conv2dShape& s = c.s;
  return cat(c.name, ": n=", s.n, " c_in=", s.c_in, " ", s.h_in, "x", s.w_in, " -> c_out=", s.c_out,
             " ", s.h_out, "x", s.w_out, ", kernel ", s.k_h, "x", s.k_w, ", stride ", s.stride_h,
             "x", s.stride_w, ", pad ", s.pad_top, "/", s.pad_left);
}

// Odd sizes, shared by the CUDA tests and the CPU fast-path tests. The emulator runs ~1 µs
// per thread switch; all of these stay small for it.
inline std::vector<Case> odd_cases() {
  constexpr kernels::Padding kValid = kernels::Padding::Valid, kSame = kernels::Padding::Same;
  return {
      {"stride 2 valid", kernels::conv2d_shape(3, 5, 11, 11, 7, 3, 3, 2, 2, kValid)},
      {"stride 2 same", kernels::conv2d_shape(3, 5, 11, 11, 7, 3, 3, 2, 2, kSame)},
      {"1x1", kernels::conv2d_shape(2, 6, 7, 9, 5, 1, 1, 1, 1, kValid)},
      {"5x5 same", kernels::conv2d_shape(2, 3, 9, 8, 4, 5, 5, 1, 1, kSame)},
      // Even kernel width and stride 2 on an even height: Keras puts the extra padding
      // row/column at the bottom/right, so the padding is asymmetric.
      {"3x2 stride 2x1 same", kernels::conv2d_shape(2, 4, 10, 7, 6, 3, 2, 2, 1, kSame)},
      {"C_in 1", kernels::conv2d_shape(2, 1, 12, 12, 8, 3, 3, 1, 1, kValid)},
      // Stride above the kernel: some input pixels are read by no window (their dx is 0).
      {"2x2 stride 3", kernels::conv2d_shape(2, 3, 10, 10, 4, 2, 2, 3, 3, kValid)},
      // Channel counts just past the 32- and 64-wide tiles, on both sides.
      {"C_out 33", kernels::conv2d_shape(1, 2, 6, 5, 33, 3, 3, 1, 1, kSame)},
      {"C_in 40, C_out 65", kernels::conv2d_shape(1, 40, 4, 5, 65, 3, 3, 1, 1, kSame)},
      // Depths past the gather table (256 rows): forward K = 540, backward-data K = 270.
      {"deep", kernels::conv2d_shape(1, 60, 4, 4, 30, 3, 3, 1, 1, kSame)},
      // Stride 2 'same' on an even size: padding 0 on top, 1 at the bottom.
      {"32x32 stride 2 same", kernels::conv2d_shape(2, 8, 32, 32, 16, 3, 3, 2, 2, kSame)},
      // A pixel count past two 128-row tiles.
      {"many pixels", kernels::conv2d_shape(3, 2, 9, 10, 3, 3, 3, 1, 1, kSame)},
      // Images of 256 output pixels or more: the filter gradient reads dy in place, image by
      // image (the first layer's 26x26, and an odd 'same' one with a dot-product tail).
      {"C_in 1, 28x28", kernels::conv2d_shape(3, 1, 28, 28, 8, 3, 3, 1, 1, kValid)},
      {"17x19 same", kernels::conv2d_shape(2, 2, 17, 19, 5, 3, 3, 1, 1, kSame)},
  };
}

inline int64_t x_size(const kernels::Conv2dShape& s) { return s.n * s.c_in * s.h_in * s.w_in; }
inline int64_t y_size(const kernels::Conv2dShape& s) { return s.n * s.c_out * s.h_out * s.w_out; }
inline int64_t w_size(const kernels::Conv2dShape& s) { return s.c_out * s.patch_size(); }

// Random inputs for one case: x, w, b, dy, and seeds for the accumulated gradients.
struct Inputs {
  std::vector<float> x, w, b, dy, dx_seed, dw_seed, db_seed;
};

inline Inputs make_inputs(const kernels::Conv2dShape& s, uint64_t seed) {
  const auto n = [](int64_t v) { return static_cast<size_t>(v); };
  Inputs in;
  in.x = random_vector<float>(n(x_size(s)), seed);
  in.w = random_vector<float>(n(w_size(s)), seed + 1);
  in.b = random_vector<float>(n(s.c_out), seed + 2);
  in.dy = random_vector<float>(n(y_size(s)), seed + 3);
  in.dx_seed = random_vector<float>(n(x_size(s)), seed + 4);
  in.dw_seed = random_vector<float>(n(w_size(s)), seed + 5);
  in.db_seed = random_vector<float>(n(s.c_out), seed + 6);
  return in;
}

inline std::vector<double> cpu_conv_workspace(const kernels::Conv2dShape& s) {
  return std::vector<double>(
      static_cast<size_t>(std::max<int64_t>(1, kernels::cpu::conv2d_workspace_elements(s))));
}

// y = conv(x, w) (+ b when `b` is given), then ReLU if asked, and its scale.
inline BoundedReference conv_forward_reference(const kernels::Conv2dShape& s,
                                               const std::vector<float>& x_in,
                                               const std::vector<float>& w_in,
                                               const std::vector<float>* b_in, bool relu) {
  BoundedReference ref;
  ref.value.resize(static_cast<size_t>(y_size(s)));
  ref.scale.resize(ref.value.size());
  std::vector<double> ws = cpu_conv_workspace(s);
  const auto x = to_double(x_in), w = to_double(w_in);
  const auto b = b_in ? to_double(*b_in) : std::vector<double>();
  const auto xa = absolute(x), wa = absolute(w), ba = absolute(b);
  kernels::cpu::conv2d_forward<double>(s, x.data(), w.data(), b_in ? b.data() : nullptr,
                                       ref.value.data(), ws.data());
  kernels::cpu::conv2d_forward<double>(s, xa.data(), wa.data(), b_in ? ba.data() : nullptr,
                                       ref.scale.data(), ws.data());
  if (relu)  // 1-Lipschitz: the bound on the pre-activation holds after it
    for (double& v : ref.value) v = v < 0.0 ? 0.0 : v;
  return ref;
}

// dx from dy and w, starting from dx_seed (which Overwrite replaces), and its scale.
inline BoundedReference conv_backward_data_reference(const kernels::Conv2dShape& s,
                                                     const std::vector<float>& dy_in,
                                                     const std::vector<float>& w_in,
                                                     const std::vector<float>& dx_seed,
                                                     kernels::GradMode mode) {
  BoundedReference ref;
  ref.value = to_double(dx_seed);
  ref.scale = absolute(ref.value);
  std::vector<double> ws = cpu_conv_workspace(s);
  const auto dy = to_double(dy_in), w = to_double(w_in);
  const auto dya = absolute(dy), wa = absolute(w);
  kernels::cpu::conv2d_backward_data<double>(s, dy.data(), w.data(), ref.value.data(), mode,
                                             ws.data());
  kernels::cpu::conv2d_backward_data<double>(s, dya.data(), wa.data(), ref.scale.data(), mode,
                                             ws.data());
  return ref;
}

struct FilterReference {
  BoundedReference dw, db;
};

// dw and db from x and dy, starting from the seeds (which Overwrite replaces), and their scales.
inline FilterReference conv_backward_filter_reference(
    const kernels::Conv2dShape& s, const std::vector<float>& x_in, const std::vector<float>& dy_in,
    const std::vector<float>& dw_seed, const std::vector<float>& db_seed, kernels::GradMode mode) {
  FilterReference ref;
  ref.dw.value = to_double(dw_seed);
  ref.dw.scale = absolute(ref.dw.value);
  ref.db.value = to_double(db_seed);
  ref.db.scale = absolute(ref.db.value);
  std::vector<double> ws = cpu_conv_workspace(s);
  const auto x = to_double(x_in), dy = to_double(dy_in);
  const auto xa = absolute(x), dya = absolute(dy);
  kernels::cpu::conv2d_backward_filter<double>(s, x.data(), dy.data(), ref.dw.value.data(),
                                               ref.db.value.data(), mode, ws.data());
  kernels::cpu::conv2d_backward_filter<double>(s, xa.data(), dya.data(), ref.dw.scale.data(),
                                               ref.db.scale.data(), mode, ws.data());
  return ref;
}

}  // namespace polytask::testing::conv
