// Deterministic reductions on the device, and the workspace every reducing CUDA kernel shares
// (the dot product here; the losses in kernels/loss.h; the metrics in kernels/metrics.h).
//
// A reduction runs in two passes. The first has at most kReduceBlocks blocks; each combines a
// fixed slice of the input in a fixed order and writes one partial; the second is one block
// that combines the partials in a fixed tree. The grid depends only on the problem's size, so
// the same inputs give the same bits on every run and every GPU (float atomicAdd would not: the
// order of its additions changes from run to run). A first pass that needs only one block
// finishes the reduction itself, so small batches cost one launch.
//
// The partials live in a caller-owned device buffer of kReduceWorkspace doubles. Kernels on one
// stream run in order, so one buffer per stream serves every reduction on it; nothing here
// allocates. Its contents need no initialisation and mean nothing between calls.
//
// The CPU side has no counterpart: the balancers' dot (engine/balancers/grad_ops.h) is the
// reference, an index-order sum in double.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace polytask::kernels::cuda {

// The most blocks a first pass uses (and partials it writes).
inline constexpr int kReduceBlocks = 1024;
// Size in doubles of the `partials` workspace the reducing kernels take: one partial per block,
// and a second per-block slot for the kernels that also reduce a minimum (the first bad label).
inline constexpr int64_t kReduceWorkspace = 2 * int64_t(kReduceBlocks);

// *result = Σ a[i]·b[i] over count elements, each product and every sum in double (a float
// product is exact in double, so only the additions round). a, b: device (count); result: one
// device double; partials: device workspace of kReduceWorkspace doubles.
void dot(int64_t count, const float* a, const float* b, double* result, double* partials,
         Stream stream);

}  // namespace polytask::kernels::cuda
