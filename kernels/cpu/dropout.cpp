#include "kernels/dropout.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

void check_args(const char* op, int64_t count, float rate) {
  // Written so that NaN fails too; rate 1 would scale the (absent) survivors by 1/0.
  if (!(rate >= 0.0f && rate < 1.0f)) fail(op, ": rate ", rate, " is outside [0, 1)");
  if (count < 0) fail(op, ": negative element count ", count);
}

// One rounding of 1/(1-rate), shared by forward and backward so the two scale identically.
template <class T>
T keep_scale(float rate) {
  return static_cast<T>(1.0 / (1.0 - static_cast<double>(rate)));
}

// Calls apply(i, keep) for every element i < count with its mask bit dropout_keeps(seed,
// stream, first_index + i, rate), computing each Philox block once for its four elements (the
// per-element form computes it four times, and Philox4x32-10 is ~100 integer operations). The
// blocks are those of the global indices: when first_index is not a multiple of 4 the first
// and last blocks serve only some of their words.
// An element costs a quarter of a Philox block, ~9 ns on one core: ~25 loads and stores'
// worth, counted as 16 units of parallel work (parallel.h), so the workload's 128 x 64 goes
// parallel where an elementwise count would have kept it on one thread.
constexpr int64_t kElementCost = 16;

template <class Apply>
void for_each_mask_bit(int64_t count, float rate, uint64_t seed, uint64_t stream,
                       uint64_t first_index, Apply apply) {
  // Element i has global index first_index + i = 4 * (first_block + j) + w with j = (lead + i) / 4
  // and w = (lead + i) % 4; modulo 2^64 its block is (first_block + j) mod 2^62.
  const int64_t lead = static_cast<int64_t>(first_index & 3u);
  const uint64_t first_block = first_index >> 2, block_mask = ~uint64_t(0) >> 2;
  const int64_t blocks = (lead + count + 3) / 4;
  const int threads = parallel_threads(count * kElementCost);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t j = 0; j < blocks; ++j) {
    const Philox4x32 r =
        philox_block(seed, stream, (first_block + static_cast<uint64_t>(j)) & block_mask);
    const int64_t first = 4 * j - lead;
    for (int64_t w = std::max<int64_t>(0, -first); w < 4 && first + w < count; ++w)
      apply(first + w, dropout_keeps(philox_word_uniform(r.v[w]), rate));
  }
}

}  // namespace

template <class T>
void dropout_forward(int64_t count, float rate, uint64_t seed, uint64_t stream,
                     uint64_t first_index, const T* x, T* y) {
  check_args("dropout_forward", count, rate);
  if (rate == 0.0f) {
    // Every uniform draw is >= 0, so the mask keeps all; skip the Philox work.
    if (y != x)
      for (int64_t i = 0; i < count; ++i) y[i] = x[i];
    return;
  }
  const T scale = keep_scale<T>(rate);
  for_each_mask_bit(count, rate, seed, stream, first_index,
                    [=](int64_t i, bool keep) { y[i] = keep ? x[i] * scale : T(0); });
}

template <class T>
void dropout_backward(int64_t count, float rate, uint64_t seed, uint64_t stream,
                      uint64_t first_index, const T* dy, T* dx, GradMode mode) {
  check_args("dropout_backward", count, rate);
  if (rate == 0.0f) {
    for (int64_t i = 0; i < count; ++i) store_grad(mode, dx[i], dy[i]);
    return;
  }
  const T scale = keep_scale<T>(rate);
  for_each_mask_bit(count, rate, seed, stream, first_index, [=](int64_t i, bool keep) {
    store_grad(mode, dx[i], keep ? dy[i] * scale : T(0));
  });
}

template void dropout_forward<float>(int64_t, float, uint64_t, uint64_t, uint64_t, const float*,
                                     float*);
template void dropout_forward<double>(int64_t, float, uint64_t, uint64_t, uint64_t, const double*,
                                      double*);
template void dropout_backward<float>(int64_t, float, uint64_t, uint64_t, uint64_t, const float*,
                                      float*, GradMode);
template void dropout_backward<double>(int64_t, float, uint64_t, uint64_t, uint64_t, const double*,
                                       double*, GradMode);

}  // namespace polytask::kernels::cpu
