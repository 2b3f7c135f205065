// Where tensors live, and the raw memory operations behind them. The CUDA half compiles only
// when the build found a CUDA toolkit (POLYTASK_WITH_CUDA); without one, asking for a device
// tensor throws a clear error instead of failing to build.
#pragma once

#include <cstddef>
#include <string>

#include "kernels/cuda/stream.h"

namespace polytask {

enum class Device { CPU, CUDA };

const char* device_name(Device d);
// "cpu" | "cuda" | "auto" (CUDA when a device is present, else CPU).
Device parse_device(const std::string& text);

// True when the build has CUDA and the driver reports at least one device.
bool cuda_available();
// One line describing why CUDA cannot be used ("built without CUDA", "no CUDA device: ..."),
// empty when it can. GPU tests print this when they skip.
std::string cuda_unavailable_reason();

// The one stream all of the engine's CUDA work runs on, in order (created on first use).
// Copies to the host wait for it; kernels and device-side copies are queued on it.
kernels::cuda::Stream cuda_stream();
// The reduction workspace of the kernels that reduce on cuda_stream() (kernels/reduce.h):
// kernels::cuda::kReduceWorkspace doubles, allocated once; one serves every reduction because
// the stream runs them in order.
double* cuda_reduce_partials();
// Waits until every op queued on cuda_stream() has finished; kernel faults surface here.
void cuda_synchronize();
// The POLYTASK_CUDA_SYNC debug switch (kernels/cuda/launch.h): synchronise and check after every
// kernel launch. Always false in a build without CUDA.
bool cuda_sync_after_launch();

// Allocation and copies. Device memory comes from the caching allocator
// (engine/device_allocator.h); errors name the size asked for.
void* allocate_bytes(Device d, size_t bytes);
void free_bytes(Device d, void* p) noexcept;
// Copies to the host wait for the GPU. Copies from (pageable) host memory may wait too, so
// per-step values use engine/host_staging.h instead.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// How many device-to-host copies copy_bytes made so far: each one waits for the GPU, so tests
// count them to prove a training step makes none.
int64_t device_to_host_copies();
void zero_bytes(Device d, void* p, size_t bytes);

}  // namespace polytask
