// CUDA batch normalisation (kernels/batchnorm.h) over (N, C, spatial) tensors.
//
// A channel's elements are N rows of `spatial` contiguous floats, C·spatial apart. Every pass is
// organised per channel (blockIdx.y = channel) so that a block needs one set of channel
// constants; within a channel, consecutive threads take consecutive elements (coalesced for
// spatial ≥ 8; the dense case spatial = 1 is tiny and launch-bound in the workloads).
//
// Two paths, chosen from the shape alone (so the bits never depend on timing):
//  - fused: one block per channel computes the channel's sums, then applies them (a second read
//    of the channel, mostly from L1/L2). One launch. Taken when a channel is small (≤ 4096
//    elements) or when there are too many channels for the partials workspace.
//  - split: `stat_blocks` blocks per channel each reduce a slice of it and store their partial
//    sums in `partials`; then the apply kernel's blocks (grid-wide, many per channel) each
//    combine their channel's partials in the same fixed order — so every block gets the same
//    bits — and normalise (or form dx for) their slice. Block 0 of each channel also writes the
//    per-channel outputs (save_mean / save_invstd / running stats, or dgamma / dbeta). Two
//    launches.
//
// Precision: each thread accumulates in double, blocks combine with the fixed-order tree of
// kernels/cuda/block_reduce.h. Forward sums (x - x₀) and (x - x₀)², x₀ the channel's first
// element, so var = E[d²] - E[d]² cancels only as much as x₀ is off the mean in standard
// deviations (a handful at worst for a sample of the data) rather than |mean| / std: the result
// agrees with the CPU's two-pass double variance to ~1e-15 relative. Every per-element formula
// is the CPU's, in double, rounded to float once; results agree with the CPU within an ulp
// (nvcc's fused multiply-adds and the summation order differ, in the last bits of a double).
#include "kernels/batchnorm.h"

#include <cstdint>

#include "kernels/cuda/block_reduce.h"
#include "kernels/cuda/launch.h"
#include "kernels/error.h"

namespace polytask::kernels::cuda {

namespace {

using detail::block_allreduce;
using detail::SumOp;

constexpr int kThreads = 256;
// A statistics block takes at least this many elements of its channel; a channel of at most
// this many takes the fused one-block path.
constexpr int64_t kMinPerStatsBlock = 16 * kThreads;
// Elements per thread in the apply passes (normalise, dx), which need no reduction.
constexpr int64_t kPerApplyThread = 8;
constexpr int64_t kMaxGridY = 65535;

struct ChannelGeometry {
  int64_t channels, spatial;
  int64_t count;  // n·spatial: the elements of one channel
  int64_t row;    // channels·spatial: from one example's channel to the next example's
};

// Where the split path keeps a channel's partials: for channel ch, the doubles from
// ch·(2B + 1): x₀ (forward only), then B first sums, then B second sums (B = stat blocks).
// (2B + 1)·C ≤ kReduceWorkspace.
struct PartialsLayout {
  int64_t blocks;
  __device__ __forceinline__ int64_t shift(int64_t ch) const { return ch * (2 * blocks + 1); }
  __device__ __forceinline__ int64_t first(int64_t ch, int64_t b) const {
    return shift(ch) + 1 + b;
  }
  __device__ __forceinline__ int64_t second(int64_t ch, int64_t b) const {
    return shift(ch) + 1 + blocks + b;
  }
};

// Elements a thread loads before it uses any: several independent loads in flight per thread
// are what covers HBM latency in a streaming kernel (one is not enough at any occupancy).
constexpr int kBatch = 4;

// Calls f(offsets, valid) for the elements first, first + step, ... (below count) of channel ch,
// kBatch at a time: offsets[u] is an element's index in the (N, C, spatial) tensor, the first
// `valid` of them are in range. The (example, position) pair advances by additions, not a
// division per element.
template <class F>
__device__ __forceinline__ void for_each_in_channel(const ChannelGeometry& g, int64_t ch,
                                                    int64_t first, int64_t step, F&& f) {
  if (first >= g.count) return;
  const int64_t s = g.spatial;
  const int64_t step_i = step / s, step_j = step - step_i * s;
  const int64_t i = first / s;
  int64_t j = first - i * s;
  int64_t offset = i * g.row + ch * s + j;
  const int64_t advance = step_i * g.row + step_j, wrap = g.row - s;
  for (int64_t k = first; k < g.count; k += kBatch * step) {
    int64_t offsets[kBatch];
    int valid = 0;
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      offsets[u] = offset;
      if (k + u * step < g.count) valid = u + 1;
      j += step_j;
      offset += advance;
      if (j >= s) {  // past the end of this example's row: on to the next example
        j -= s;
        offset += wrap;
      }
    }
    f(offsets, valid);
  }
}

// This block's share of a channel's sums, combined across the block (every thread gets them).
struct Sums {
  double first, second;
};
__device__ __forceinline__ Sums block_sums(Sums mine, double* scratch) {
  const double a = block_allreduce<kThreads>(mine.first, SumOp{}, scratch);
  const double b = block_allreduce<kThreads>(mine.second, SumOp{}, scratch);
  return {a, b};
}

// Σ (x - shift) and Σ (x - shift)² over this thread's elements.
__device__ __forceinline__ Sums shifted_sums(const ChannelGeometry& g, int64_t ch, int64_t first,
                                             int64_t step, const float* x, double shift) {
  double a = 0.0, b = 0.0;
  for_each_in_channel(g, ch, first, step, [&](const int64_t* offsets, int valid) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) v[u] = x[offsets[u]];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) {
        const double d = double(v[u]) - shift;
        a += d;
        b += d * d;
      }
  });
  return {a, b};
}

// Σ dy and Σ dy·(x - mean) over this thread's elements.
__device__ __forceinline__ Sums gradient_sums(const ChannelGeometry& g, int64_t ch,
                                              int64_t first, int64_t step, const float* x,
                                              const float* dy, double mean) {
  double a = 0.0, b = 0.0;
  for_each_in_channel(g, ch, first, step, [&](const int64_t* offsets, int valid) {
    float xv[kBatch], gv[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) {
        xv[u] = x[offsets[u]];
        gv[u] = dy[offsets[u]];
      }
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) {
        const double gy = double(gv[u]);
        a += gy;
        b += gy * (double(xv[u]) - mean);
      }
  });
  return {a, b};
}

struct ChannelStats {
  double mean, var, invstd;
};
__device__ __forceinline__ ChannelStats stats_from(Sums sums, double shift, int64_t count,
                                                   float eps) {
  const double inv_count = 1.0 / double(count);
  const double offset = sums.first * inv_count;
  double var = sums.second * inv_count - offset * offset;  // biased, as Keras uses
  if (var < 0.0) var = 0.0;  // a rounding below zero (a NaN stays NaN)
  return {shift + offset, var, 1.0 / sqrt(var + double(eps))};
}

struct TrainOutputs {
  float* y;
  float* save_mean;
  float* save_invstd;
  float* running_mean;
  float* running_var;
};

// The per-channel outputs of the training forward, on one thread per channel.
__device__ __forceinline__ void store_channel_stats(const TrainOutputs& out, int64_t ch,
                                                    const ChannelStats& st, float momentum) {
  const double keep = double(momentum);
  out.save_mean[ch] = float(st.mean);
  out.save_invstd[ch] = float(st.invstd);
  out.running_mean[ch] = float(keep * double(out.running_mean[ch]) + (1.0 - keep) * st.mean);
  out.running_var[ch] = float(keep * double(out.running_var[ch]) + (1.0 - keep) * st.var);
}

// y = (x - mean)·scale + shift over this thread's elements. y may alias x: each element is
// read, then written, by the same thread (a batch's loads all precede its stores).
__device__ __forceinline__ void normalize(const ChannelGeometry& g, int64_t ch, int64_t first,
                                          int64_t step, const float* x, float* y, double mean,
                                          double scale, double shift) {
  for_each_in_channel(g, ch, first, step, [&](const int64_t* offsets, int valid) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) v[u] = x[offsets[u]];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) y[offsets[u]] = float((double(v[u]) - mean) * scale + shift);
  });
}

// ---- forward, training ------------------------------------------------------------------------

// Fused path: grid (1, channel blocks), a block per channel.
__global__ void __launch_bounds__(kThreads)
    bn_train_fused_kernel(ChannelGeometry g, const float* x, const float* __restrict__ gamma,
                          const float* __restrict__ beta, float eps, float momentum,
                          TrainOutputs out) {
  __shared__ double scratch[kThreads / 32];
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double shift = double(x[ch * g.spatial]);
    const Sums sums = block_sums(shifted_sums(g, ch, threadIdx.x, kThreads, x, shift), scratch);
    const ChannelStats st = stats_from(sums, shift, g.count, eps);
    if (threadIdx.x == 0) store_channel_stats(out, ch, st, momentum);
    normalize(g, ch, threadIdx.x, kThreads, x, out.y, st.mean, double(gamma[ch]) * st.invstd,
              double(beta[ch]));
  }
}

// Split path, pass 1: grid (stat blocks, channels); each block stores its slice's partial sums,
// and block 0 the shift x₀ (the apply pass cannot re-read it when y overwrites x). `shifts`
// (the synchronised forward's running means) replaces x₀ when not null.
__global__ void __launch_bounds__(kThreads)
    bn_stats_kernel(ChannelGeometry g, const float* __restrict__ x,
                    const float* __restrict__ shifts, double* __restrict__ partials) {
  __shared__ double scratch[kThreads / 32];
  const PartialsLayout layout{gridDim.x};
  const int64_t ch = blockIdx.y;
  const double shift = shifts != nullptr ? double(shifts[ch]) : double(x[ch * g.spatial]);
  const Sums sums = block_sums(
      shifted_sums(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x,
                   int64_t(gridDim.x) * kThreads, x, shift),
      scratch);
  if (threadIdx.x != 0) return;
  partials[layout.first(ch, blockIdx.x)] = sums.first;
  partials[layout.second(ch, blockIdx.x)] = sums.second;
  if (blockIdx.x == 0) partials[layout.shift(ch)] = shift;
}

// A channel's partial sums combined by one block, in a fixed order (thread t takes partials t,
// t + kThreads, ... in order, then the block tree): every block that calls this for the same
// channel gets the same bits.
__device__ __forceinline__ Sums combine_partials(const double* partials,
                                                 const PartialsLayout& layout, int64_t ch,
                                                 double* scratch) {
  double a = 0.0, b = 0.0;
  for (int64_t p = threadIdx.x; p < layout.blocks; p += kThreads) {
    a += partials[layout.first(ch, p)];
    b += partials[layout.second(ch, p)];
  }
  return block_sums({a, b}, scratch);
}

// Split path, pass 2: grid (apply blocks, channels).
__global__ void __launch_bounds__(kThreads)
    bn_train_apply_kernel(ChannelGeometry g, int64_t stat_blocks, const float* x,
                          const float* __restrict__ gamma, const float* __restrict__ beta,
                          float eps, float momentum, TrainOutputs out,
                          const double* __restrict__ partials) {
  __shared__ double scratch[kThreads / 32];
  const PartialsLayout layout{stat_blocks};
  const int64_t ch = blockIdx.y;
  const double shift = partials[layout.shift(ch)];
  const ChannelStats st =
      stats_from(combine_partials(partials, layout, ch, scratch), shift, g.count, eps);
  if (blockIdx.x == 0 && threadIdx.x == 0) store_channel_stats(out, ch, st, momentum);
  normalize(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x, int64_t(gridDim.x) * kThreads,
            x, out.y, st.mean, double(gamma[ch]) * st.invstd, double(beta[ch]));
}

// ---- forward, inference -----------------------------------------------------------------------

// grid (apply blocks, channel blocks): no reduction, the CPU's formula per element.
__global__ void __launch_bounds__(kThreads)
    bn_infer_kernel(ChannelGeometry g, const float* x, const float* __restrict__ gamma,
                    const float* __restrict__ beta, const float* __restrict__ running_mean,
                    const float* __restrict__ running_var, float eps, float* y) {
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double invstd = 1.0 / sqrt(double(running_var[ch]) + double(eps));
    normalize(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x,
              int64_t(gridDim.x) * kThreads, x, y, double(running_mean[ch]),
              double(gamma[ch]) * invstd, double(beta[ch]));
  }
}

// ---- backward ---------------------------------------------------------------------------------

struct BackwardInputs {
  const float* x;
  const float* dy;
  const float* gamma;
  const float* save_mean;
  const float* save_invstd;
};
struct BackwardOutputs {
  float* dx;  // null: only the parameter gradients are wanted
  float* dgamma;
  float* dbeta;
};

template <bool kAccumulate>
__device__ __forceinline__ void store_grad(float* dst, float value) {
  if constexpr (kAccumulate)
    *dst = *dst + value;
  else
    *dst = value;
}

// dgamma = Σ dy·x̂, dbeta = Σ dy, on one thread per channel.
template <bool kAccumulate>
__device__ __forceinline__ void store_parameter_grads(const BackwardOutputs& out, int64_t ch,
                                                      Sums sums, double invstd) {
  if (out.dgamma != nullptr) store_grad<kAccumulate>(out.dgamma + ch, float(sums.second * invstd));
  if (out.dbeta != nullptr) store_grad<kAccumulate>(out.dbeta + ch, float(sums.first));
}

// dx = γ·invstd/m · (m·dy - Σdy - x̂·Σdy·x̂), the CPU's expression, over this thread's elements.
// m is the channel's element count: this batch's, or every rank's in the synchronised backward.
template <bool kAccumulate>
__device__ __forceinline__ void input_grads(const ChannelGeometry& g, int64_t ch, int64_t first,
                                            int64_t step, const BackwardInputs& in, float* dx,
                                            Sums sums, double mean, double invstd, double m) {
  const double scale = double(in.gamma[ch]) * invstd / m;
  const double sum_dy = sums.first, sum_dy_xhat = sums.second * invstd;
  for_each_in_channel(g, ch, first, step, [&](const int64_t* offsets, int valid) {
    float xv[kBatch], gv[kBatch], old[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) {
        xv[u] = in.x[offsets[u]];
        gv[u] = in.dy[offsets[u]];
        if constexpr (kAccumulate) old[u] = dx[offsets[u]];
      }
#pragma unroll
    for (int u = 0; u < kBatch; ++u)
      if (u < valid) {
        const double xhat = (double(xv[u]) - mean) * invstd;
        const double value = scale * (m * double(gv[u]) - sum_dy - xhat * sum_dy_xhat);
        dx[offsets[u]] = kAccumulate ? old[u] + float(value) : float(value);
      }
  });
}

// Fused path: grid (1, channel blocks), a block per channel.
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    bn_backward_fused_kernel(ChannelGeometry g, BackwardInputs in, BackwardOutputs out) {
  __shared__ double scratch[kThreads / 32];
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double mean = double(in.save_mean[ch]), invstd = double(in.save_invstd[ch]);
    const Sums sums =
        block_sums(gradient_sums(g, ch, threadIdx.x, kThreads, in.x, in.dy, mean), scratch);
    if (threadIdx.x == 0) store_parameter_grads<kAccumulate>(out, ch, sums, invstd);
    if (out.dx != nullptr)
      input_grads<kAccumulate>(g, ch, threadIdx.x, kThreads, in, out.dx, sums, mean, invstd,
                               double(g.count));
  }
}

// Split path, pass 1: grid (stat blocks, channels).
__global__ void __launch_bounds__(kThreads)
    bn_gradient_sums_kernel(ChannelGeometry g, BackwardInputs in,
                            double* __restrict__ partials) {
  __shared__ double scratch[kThreads / 32];
  const PartialsLayout layout{gridDim.x};
  const int64_t ch = blockIdx.y;
  const double mean = double(in.save_mean[ch]);
  const Sums sums = block_sums(gradient_sums(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x,
                                             int64_t(gridDim.x) * kThreads, in.x, in.dy, mean),
                               scratch);
  if (threadIdx.x != 0) return;
  partials[layout.first(ch, blockIdx.x)] = sums.first;
  partials[layout.second(ch, blockIdx.x)] = sums.second;
}

// Split path, pass 2: grid (apply blocks, channels); one block per channel when dx is null.
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    bn_backward_apply_kernel(ChannelGeometry g, int64_t stat_blocks, BackwardInputs in,
                             BackwardOutputs out, const double* __restrict__ partials) {
  __shared__ double scratch[kThreads / 32];
  const PartialsLayout layout{stat_blocks};
  const int64_t ch = blockIdx.y;
  const double mean = double(in.save_mean[ch]), invstd = double(in.save_invstd[ch]);
  const Sums sums = combine_partials(partials, layout, ch, scratch);
  if (blockIdx.x == 0 && threadIdx.x == 0)
    store_parameter_grads<kAccumulate>(out, ch, sums, invstd);
  if (out.dx != nullptr)
    input_grads<kAccumulate>(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x,
                             int64_t(gridDim.x) * kThreads, in, out.dx, sums, mean, invstd,
                             double(g.count));
}

// ---- synchronised BatchNorm
// ----------------------------------------------------------------------
//
// Each pass writes its per-channel sums (first sums at sums[ch], second at sums[C + ch]) for the
// caller to add up over the ranks, then applies the summed ones. Same reductions as above.

__device__ __forceinline__ void store_sums(double* sums, int64_t channels, int64_t ch, Sums v) {
  sums[ch] = v.first;
  sums[channels + ch] = v.second;
}

// Forward sums, one block per channel: Σ(x - r), Σ(x - r)², r = running_mean[ch].
__global__ void __launch_bounds__(kThreads)
    bn_sync_sums_fused_kernel(ChannelGeometry g, const float* __restrict__ x,
                              const float* __restrict__ running_mean, double* __restrict__ sums) {
  __shared__ double scratch[kThreads / 32];
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double shift = double(running_mean[ch]);
    const Sums v = block_sums(shifted_sums(g, ch, threadIdx.x, kThreads, x, shift), scratch);
    if (threadIdx.x == 0) store_sums(sums, g.channels, ch, v);
  }
}

// Split path, pass 2 of either direction: grid (1, channels), a channel's partials combined
// (bn_stats_kernel's or bn_gradient_sums_kernel's) into sums. The backward also stores this
// batch's parameter gradients (out.dgamma / out.dbeta; null when the forward calls it).
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    bn_sync_sums_finish_kernel(ChannelGeometry g, int64_t stat_blocks,
                               const double* __restrict__ partials, double* __restrict__ sums,
                               const float* __restrict__ save_invstd, BackwardOutputs out) {
  __shared__ double scratch[kThreads / 32];
  const PartialsLayout layout{stat_blocks};
  const int64_t ch = blockIdx.y;
  const Sums v = combine_partials(partials, layout, ch, scratch);
  if (threadIdx.x != 0) return;
  store_sums(sums, g.channels, ch, v);
  if (save_invstd != nullptr)
    store_parameter_grads<kAccumulate>(out, ch, v, double(save_invstd[ch]));
}

// The global statistics from the summed sums, one thread per channel: the per-channel outputs
// (save_mean, save_invstd, running averages), and sums overwritten with mean and invstd for
// bn_sync_apply_kernel (which must not read the running mean this kernel updates).
__global__ void __launch_bounds__(kThreads)
    bn_sync_stats_kernel(int64_t channels, int64_t count, float eps, float momentum,
                         TrainOutputs out, double* __restrict__ sums) {
  const int64_t ch = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (ch >= channels) return;
  const double shift = double(out.running_mean[ch]);
  const ChannelStats st = stats_from({sums[ch], sums[channels + ch]}, shift, count, eps);
  store_channel_stats(out, ch, st, momentum);
  sums[ch] = st.mean;
  sums[channels + ch] = st.invstd;
}

// grid (apply blocks, channel blocks): y from the channel's mean and invstd.
__global__ void __launch_bounds__(kThreads)
    bn_sync_apply_kernel(ChannelGeometry g, const float* x, const float* __restrict__ gamma,
                         const float* __restrict__ beta, const double* __restrict__ stats,
                         float* y) {
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y)
    normalize(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x, int64_t(gridDim.x) * kThreads, x,
              y, stats[ch], double(gamma[ch]) * stats[g.channels + ch], double(beta[ch]));
}

// Backward sums, one block per channel: Σdy, Σdy·(x - mean), and this batch's parameter
// gradients.
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    bn_sync_gradient_sums_fused_kernel(ChannelGeometry g, BackwardInputs in, BackwardOutputs out,
                                       double* __restrict__ sums) {
  __shared__ double scratch[kThreads / 32];
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double mean = double(in.save_mean[ch]), invstd = double(in.save_invstd[ch]);
    const Sums v =
        block_sums(gradient_sums(g, ch, threadIdx.x, kThreads, in.x, in.dy, mean), scratch);
    if (threadIdx.x != 0) continue;
    store_sums(sums, g.channels, ch, v);
    store_parameter_grads<kAccumulate>(out, ch, v, invstd);
  }
}

// grid (apply blocks, channel blocks): dx from the summed sums, m the global count.
template <bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    bn_sync_dx_kernel(ChannelGeometry g, double m, BackwardInputs in, float* dx,
                      const double* __restrict__ sums) {
  for (int64_t ch = blockIdx.y; ch < g.channels; ch += gridDim.y) {
    const double mean = double(in.save_mean[ch]), invstd = double(in.save_invstd[ch]);
    input_grads<kAccumulate>(g, ch, int64_t(blockIdx.x) * kThreads + threadIdx.x,
                             int64_t(gridDim.x) * kThreads, in, dx,
                             {sums[ch], sums[g.channels + ch]}, mean, invstd, m);
  }
}

// ---- host side ----------------------------------------------------------------------------------

ChannelGeometry geometry(const char* op, const BatchNormShape& s) {
  if (s.n < 0 || s.c < 0 || s.spatial < 0)
    fail(op, ": negative shape (", s.n, ", ", s.c, ", ", s.spatial, ")");
  return {s.c, s.spatial, s.n * s.spatial, s.c * s.spatial};
}

// Statistics blocks per channel: one per kMinPerStatsBlock elements, at most what the partials
// hold ((2B + 1)·C ≤ kReduceWorkspace). 1 selects the fused path.
int64_t stat_blocks(const ChannelGeometry& g) {
  const int64_t fit = (kReduceWorkspace / g.channels - 1) / 2;
  const int64_t wanted = (g.count + kMinPerStatsBlock - 1) / kMinPerStatsBlock;
  const int64_t blocks = wanted < fit ? wanted : fit;
  return blocks < 1 ? 1 : blocks;
}

// Apply blocks per channel: kPerApplyThread elements a thread.
unsigned apply_blocks(const ChannelGeometry& g) {
  return blocks_for(g.count, unsigned(kThreads * kPerApplyThread));
}

unsigned channel_blocks(const ChannelGeometry& g) {
  return unsigned(g.channels < kMaxGridY ? g.channels : kMaxGridY);
}

template <bool kAccumulate>
void backward_with(const ChannelGeometry& g, const BackwardInputs& in, const BackwardOutputs& out,
                   double* partials, Stream stream) {
  const int64_t blocks = stat_blocks(g);
  if (blocks == 1) {
    launch("batchnorm_backward", bn_backward_fused_kernel<kAccumulate>,
           dim3(1, channel_blocks(g)), kThreads, 0, stream, g, in, out);
    return;
  }
  launch("batchnorm_backward", bn_gradient_sums_kernel, dim3(unsigned(blocks), unsigned(g.channels)),
         kThreads, 0, stream, g, in, partials);
  const unsigned apply = out.dx != nullptr ? apply_blocks(g) : 1u;
  launch("batchnorm_backward", bn_backward_apply_kernel<kAccumulate>,
         dim3(apply, unsigned(g.channels)), kThreads, 0, stream, g, blocks, in, out, partials);
}

template <bool kAccumulate>
void sync_backward_sums_with(const ChannelGeometry& g, const BackwardInputs& in,
                             const BackwardOutputs& out, double* sums, double* partials,
                             Stream stream) {
  const int64_t blocks = stat_blocks(g);  // 1 for an empty batch: its sums are zeros
  if (blocks == 1) {
    launch("batchnorm_sync_backward_sums", bn_sync_gradient_sums_fused_kernel<kAccumulate>,
           dim3(1, channel_blocks(g)), kThreads, 0, stream, g, in, out, sums);
    return;
  }
  launch("batchnorm_sync_backward_sums", bn_gradient_sums_kernel,
         dim3(unsigned(blocks), unsigned(g.channels)), kThreads, 0, stream, g, in, partials);
  launch("batchnorm_sync_backward_sums", bn_sync_sums_finish_kernel<kAccumulate>,
         dim3(1, unsigned(g.channels)), kThreads, 0, stream, g, blocks,
         static_cast<const double*>(partials), sums, in.save_invstd, out);
}

}  // namespace

void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float eps, float momentum, float* y,
                             float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, double* partials, Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_forward_train", s);
  if (g.count == 0 || g.channels == 0) return;
  const TrainOutputs out{y, save_mean, save_invstd, running_mean, running_var};
  const int64_t blocks = stat_blocks(g);
  if (blocks == 1) {
    launch("batchnorm_forward_train", bn_train_fused_kernel, dim3(1, channel_blocks(g)),
           kThreads, 0, stream, g, x, gamma, beta, eps, momentum, out);
    return;
  }
  launch("batchnorm_forward_train", bn_stats_kernel, dim3(unsigned(blocks), unsigned(g.channels)),
         kThreads, 0, stream, g, x, static_cast<const float*>(nullptr), partials);
  launch("batchnorm_forward_train", bn_train_apply_kernel,
         dim3(apply_blocks(g), unsigned(g.channels)), kThreads, 0, stream, g, blocks, x, gamma,
         beta, eps, momentum, out, partials);
}

void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float eps, float* y, Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_forward_infer", s);
  if (g.count == 0 || g.channels == 0) return;
  launch("batchnorm_forward_infer", bn_infer_kernel, dim3(apply_blocks(g), channel_blocks(g)),
         kThreads, 0, stream, g, x, gamma, beta, running_mean, running_var, eps, y);
}

void batchnorm_backward(const BatchNormShape& s, const float* x, const float* dy,
                        const float* gamma, const float* save_mean, const float* save_invstd,
                        float* dx, float* dgamma, float* dbeta, GradMode mode, double* partials,
                        Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_backward", s);
  if (g.channels == 0 || (dx == nullptr && dgamma == nullptr && dbeta == nullptr)) return;
  const BackwardInputs in{x, dy, gamma, save_mean, save_invstd};
  const BackwardOutputs out{dx, dgamma, dbeta};
  if (mode == GradMode::Accumulate)
    backward_with<true>(g, in, out, partials, stream);
  else
    backward_with<false>(g, in, out, partials, stream);
}

void batchnorm_sync_forward_sums(const BatchNormShape& s, const float* x, const float* running_mean,
                                 double* sums, double* partials, Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_sync_forward_sums", s);
  if (g.channels == 0) return;
  const int64_t blocks = stat_blocks(g);  // 1 for an empty batch: its sums are zeros
  if (blocks == 1) {
    launch("batchnorm_sync_forward_sums", bn_sync_sums_fused_kernel, dim3(1, channel_blocks(g)),
           kThreads, 0, stream, g, x, running_mean, sums);
    return;
  }
  launch("batchnorm_sync_forward_sums", bn_stats_kernel,
         dim3(unsigned(blocks), unsigned(g.channels)), kThreads, 0, stream, g, x, running_mean,
         partials);
  launch("batchnorm_sync_forward_sums", bn_sync_sums_finish_kernel<false>,
         dim3(1, unsigned(g.channels)), kThreads, 0, stream, g, blocks,
         static_cast<const double*>(partials), sums, static_cast<const float*>(nullptr),
         BackwardOutputs{nullptr, nullptr, nullptr});
}

void batchnorm_sync_forward_apply(const BatchNormShape& s, int64_t count, const float* x,
                                  const float* gamma, const float* beta, float eps, float momentum,
                                  double* sums, float* y, float* save_mean, float* save_invstd,
                                  float* running_mean, float* running_var, Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_sync_forward_apply", s);
  if (count <= 0 || g.channels == 0) return;
  const TrainOutputs out{y, save_mean, save_invstd, running_mean, running_var};
  launch("batchnorm_sync_forward_apply", bn_sync_stats_kernel,
         dim3(blocks_for(g.channels, unsigned(kThreads))), kThreads, 0, stream, g.channels, count,
         eps, momentum, out, sums);
  if (g.count == 0) return;  // no rows here; the running averages still moved
  launch("batchnorm_sync_forward_apply", bn_sync_apply_kernel,
         dim3(apply_blocks(g), channel_blocks(g)), kThreads, 0, stream, g, x, gamma, beta,
         static_cast<const double*>(sums), y);
}

void batchnorm_sync_backward_sums(const BatchNormShape& s, const float* x, const float* dy,
                                  const float* save_mean, const float* save_invstd, double* sums,
                                  float* dgamma, float* dbeta, GradMode mode, double* partials,
                                  Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_sync_backward_sums", s);
  if (g.channels == 0) return;
  const BackwardInputs in{x, dy, nullptr, save_mean, save_invstd};
  const BackwardOutputs out{nullptr, dgamma, dbeta};
  if (mode == GradMode::Accumulate)
    sync_backward_sums_with<true>(g, in, out, sums, partials, stream);
  else
    sync_backward_sums_with<false>(g, in, out, sums, partials, stream);
}

void batchnorm_sync_backward_dx(const BatchNormShape& s, int64_t count, const float* x,
                                const float* dy, const float* gamma, const float* save_mean,
                                const float* save_invstd, const double* sums, float* dx,
                                GradMode mode, Stream stream) {
  const ChannelGeometry g = geometry("batchnorm_sync_backward_dx", s);
  if (count <= 0 || g.count == 0 || g.channels == 0 || dx == nullptr) return;
  const BackwardInputs in{x, dy, gamma, save_mean, save_invstd};
  const dim3 grid(apply_blocks(g), channel_blocks(g));
  if (mode == GradMode::Accumulate)
    launch("batchnorm_sync_backward_dx", bn_sync_dx_kernel<true>, grid, kThreads, 0, stream, g,
           double(count), in, dx, sums);
  else
    launch("batchnorm_sync_backward_dx", bn_sync_dx_kernel<false>, grid, kThreads, 0, stream, g,
           double(count), in, dx, sums);
}

}  // namespace polytask::kernels::cuda
