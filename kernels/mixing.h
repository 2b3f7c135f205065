// The ops that mix representations in multi-task architectures (MMoE, cross-stitch units):
//  - softmax over a feature row: the gate of a mixture of experts;
//  - the gated mixture of MMoE (Ma et al. 2018, "Modeling Task Relationships in Multi-task
//    Learning with Multi-gate Mixture-of-Experts"): y = Σ_e gate_e · expert_e;
//  - one row of a cross-stitch unit (Misra et al. 2016, "Cross-stitch Networks for Multi-task
//    Learning"): y = Σ_s alpha_s · x_s with learned alpha.
//
// Every sum is taken in double in a fixed order and rounded once: the float kernels lose no
// float digits to cancellation, and the results never depend on the thread count.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"

namespace polytask::kernels {

// A gated mixture over `rows` samples of `experts` experts, each `width` wide. experts is
// (rows, experts·width), expert e of row r at [r·experts·width + e·width, ... + width); gate is
// (rows, experts); the output is (rows, width).
struct MixtureShape {
  int64_t rows = 0, experts = 0, width = 0;
};

// The most inputs a cross-stitch row takes (the CUDA kernels pass the pointers by value).
inline constexpr int kMaxCrossStitchInputs = 8;

namespace cpu {

// y = softmax(x) over each row of (rows, features), the row maximum subtracted first so that no
// exponent is positive.
template <class T>
void softmax_forward(int64_t rows, int64_t features, const T* x, T* y);

// dx = y ⊙ (dy − Σ_j y_j·dy_j) per row, from the forward's output y.
template <class T>
void softmax_backward(int64_t rows, int64_t features, const T* y, const T* dy, T* dx,
                      GradMode mode);

// y[r, j] = Σ_e gate[r, e] · experts[r, e·width + j].
template <class T>
void mixture_forward(const MixtureShape& s, const T* experts, const T* gate, T* y);

// dexperts[r, e·width + j] = gate[r, e]·dy[r, j] (experts_mode) and
// dgate[r, e] = Σ_j experts[r, e·width + j]·dy[r, j] (gate_mode). A null dexperts or dgate is
// skipped (that input needs no gradient).
template <class T>
void mixture_backward(const MixtureShape& s, const T* experts, const T* gate, const T* dy,
                      T* dexperts, GradMode experts_mode, T* dgate, GradMode gate_mode);

// y = Σ_s alpha[s]·xs[s] over `count` elements each, 1 <= inputs <= kMaxCrossStitchInputs.
template <class T>
void cross_stitch_forward(int64_t count, int inputs, const T* const* xs, const T* alpha, T* y);

// dx = alpha[input]·dy: the gradient of one input. One call per input, so that an input passed
// twice (one buffer, Overwrite then Accumulate) receives the sum.
template <class T>
void cross_stitch_backward_input(int64_t count, const T* alpha, int input, const T* dy, T* dx,
                                 GradMode mode);

// dalpha[s] = Σ_i xs[s][i]·dy[i] over `count` elements, each in index order.
template <class T>
void cross_stitch_backward_alpha(int64_t count, int inputs, const T* const* xs, const T* dy,
                                 T* dalpha, GradMode mode);

}  // namespace cpu

namespace cuda {

// The same ops on the device (kernels/cuda/mixing.cu), float only, asynchronous on `stream`;
// every pointer is device memory unless marked host. Products and sums are formed in double
// and rounded to float once, as on the CPU: the elementwise results (mixture_forward, the
// expert gradient, cross_stitch_forward, the input gradient) are the CPU's bits; the reductions
// (softmax's sums, the gate gradient, the alpha gradient) add in another fixed order and agree
// with the CPU within an ulp. Nothing uses atomics: the same inputs give the same bits on
// every run.

// Softmax per row: a group of 4 to 32 lanes per row (a block beyond 1024 features) finds the
// maximum, then Σ exp in double, then writes y = exp(x - max) / Σ.
void softmax_forward(int64_t rows, int64_t features, const float* x, float* y, Stream stream);
void softmax_backward(int64_t rows, int64_t features, const float* y, const float* dy, float* dx,
                      GradMode mode, Stream stream);

// dexperts or dgate may be null (skipped). The gate gradient is a dot of `width` elements per
// (row, expert), reduced by a lane group as softmax's rows are.
void mixture_forward(const MixtureShape& s, const float* experts, const float* gate, float* y,
                     Stream stream);
void mixture_backward(const MixtureShape& s, const float* experts, const float* gate,
                      const float* dy, float* dexperts, GradMode experts_mode, float* dgate,
                      GradMode gate_mode, Stream stream);

// xs: host array of `inputs` device pointers; alpha: device (inputs). 1 <= inputs <=
// kMaxCrossStitchInputs, else polytask::Error.
void cross_stitch_forward(int64_t count, int inputs, const float* const* xs, const float* alpha,
                          float* y, Stream stream);
// alpha: device; the kernel reads alpha[input] there (it changes every step).
void cross_stitch_backward_input(int64_t count, const float* alpha, int input, const float* dy,
                                 float* dx, GradMode mode, Stream stream);
// dalpha[s] = Σ xs[s][i]·dy[i], a deterministic two-pass reduction per s: a grid of (blocks, s)
// where each block sums a fixed grid-stride slice in double and reduces it with the block tree
// into `partials`, then one block per s combines its partials in a fixed order and writes
// dalpha[s] (one pass when a block suffices). partials: the stream's reduction workspace of
// kReduceWorkspace doubles (kernels/reduce.h). xs: host array of device pointers.
void cross_stitch_backward_alpha(int64_t count, int inputs, const float* const* xs, const float* dy,
                                 float* dalpha, GradMode mode, double* partials, Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
