// Convolution problems for the CUDA conv2d tests (tests/cuda/test_conv2d.cpp,
// test_tensor_cores.cpp; `using namespace polytask::testing::conv;`): named cases, random inputs
// and seeds for accumulated gradients, and the CPU references in double (kernels::cpu::conv2d_*)
// with their error scales.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d.h"
#include "tests/support/error_bounds.h"
#include "tests/support/gradcheck.h"

namespace polytask::testing::conv {

struct Case {
  const char* name;
  kernels::Conv2dShape s;
};

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
