// The caching allocator behind CUDA tensors: a training step frees and re-creates tensors
// (views, temporaries), and cudaMalloc/cudaFree synchronise the device, so freed blocks are
// kept by size and handed out again; cudaMalloc is called only when no cached block fits.
// One stream orders all of our work, so a block freed on the host can be reused at once: any
// kernel still reading it was queued before the kernels of its next owner.
#pragma once

#include <cstddef>
#include <cstdint>

namespace polytask {

struct DeviceMemoryStats {
  size_t bytes_in_use = 0;     // handed out and not yet released
  size_t bytes_cached = 0;     // released, kept for reuse
  size_t peak_bytes_in_use = 0;
  int64_t device_allocations = 0;  // cudaMalloc calls so far (tests: none inside a step)
  int64_t cache_hits = 0;
};

// Both throw polytask::Error when the build has no CUDA. allocate_device names `bytes` and the
// allocator's state when the device is out of memory, after releasing the cache and retrying.
void* allocate_device(size_t bytes);
void release_device(void* p) noexcept;
DeviceMemoryStats device_memory_stats();
// Returns every cached block to the driver (cudaFree); tests and long-lived processes.
void empty_device_cache();

}  // namespace polytask
