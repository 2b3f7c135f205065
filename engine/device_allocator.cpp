#include "engine/device_allocator.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "kernels/error.h"

#if defined(POLYTASK_WITH_CUDA)
#include "engine/device.h"
#include "kernels/cuda/check.h"
#endif

namespace polytask {

#if defined(POLYTASK_WITH_CUDA)
namespace {

// Small blocks round to 512 bytes, large ones to 2 MiB, so that batch-sized buffers of
// slightly different sizes share blocks without wasting much.
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;
constexpr size_t kLargeFrom = size_t(1) << 20;

// Whether the engine's stream is being captured into a CUDA graph. Releasing the cache waits
// for the device (cudaDeviceSynchronize, cudaFree), which a GPU refuses during a capture and
// which would invalidate it, so the cache is never released then.
bool capturing_a_graph() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t asked = cudaStreamIsCapturing(cuda_stream(), &status);
  if (asked != cudaSuccess) {
    (void)cudaGetLastError();
    return true;  // cannot tell: do not risk it
  }
  return status != cudaStreamCaptureStatusNone;
}

// The capture refusals (kernels/cuda/emulator.h lists when a GPU gives each).
bool refused_by_capture(cudaError_t status) {
  return status == cudaErrorStreamCaptureUnsupported ||
         status == cudaErrorStreamCaptureInvalidated || status == cudaErrorStreamCaptureImplicit;
}

size_t rounded(size_t bytes) {
  const size_t unit = bytes >= kLargeFrom ? kLargeRound : kSmallRound;
  return (std::max<size_t>(bytes, 1) + unit - 1) / unit * unit;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t size = rounded(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits and wastes at most a quarter of itself.
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first - size <= it->first / 4) {
      void* p = it->second;
      stats_.bytes_cached -= it->first;
      free_.erase(it);
      ++stats_.cache_hits;
      return hand_out(p, sizes_.at(p));
    }
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation && !free_.empty() && !capturing_a_graph()) {
      (void)cudaGetLastError();
      release_cache_locked();
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      if (refused_by_capture(status))
        fail("allocating ", bytes, " bytes while a CUDA graph is being captured (",
             cudaGetErrorName(status), "): ", cudaGetErrorString(status),
             "; whatever a captured step needs must be allocated before the capture");
      if (status != cudaErrorMemoryAllocation)
        fail("allocating ", bytes, " bytes on the GPU failed: ", cudaGetErrorName(status), " (",
             cudaGetErrorString(status), ")");
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail("out of device memory allocating ", bytes, " bytes (", cudaGetErrorString(status),
           "; polytask holds ", stats_.bytes_in_use, " bytes, the device has ", free_bytes,
           " of ", total_bytes, " bytes free)");
    }
    ++stats_.device_allocations;
    sizes_[p] = size;
    return hand_out(p, size);
  }

  void release(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = sizes_.find(p);
    if (it == sizes_.end()) return;  // not ours: never happens, but never free blindly
    stats_.bytes_in_use -= it->second;
    stats_.bytes_cached += it->second;
    free_.emplace(it->second, p);
  }

  DeviceMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) return;
    if (capturing_a_graph())
      fail("emptying the device memory cache while a CUDA graph is being captured: releasing ",
           stats_.bytes_cached, " cached bytes waits for the device, which a capture forbids");
    release_cache_locked();
  }

 private:
  void* hand_out(void* p, size_t size) {
    stats_.bytes_in_use += size;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return p;
  }
  // Never during a capture (see capturing_a_graph). A failed call leaves the blocks it did not
  // free cached, and the stats say so.
  void release_cache_locked() {
    // Kernels queued on the stream may still use a cached block until the device is idle.
    POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto it = free_.begin(); it != free_.end(); it = free_.erase(it)) {
      POLYTASK_CUDA_CHECK(cudaFree(it->second));
      sizes_.erase(it->second);
      stats_.bytes_cached -= it->first;
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> sizes_;  // every block we own
  DeviceMemoryStats stats_;
};

// Never destroyed: tensors in static storage may release blocks during exit, after the
// driver has shut down, when freeing would only report errors.
CachingAllocator& allocator() {
  static auto* instance = new CachingAllocator;
  return *instance;
}

}  // namespace

void* allocate_device(size_t bytes) { return allocator().allocate(bytes); }
void release_device(void* p) noexcept { allocator().release(p); }
DeviceMemoryStats device_memory_stats() { return allocator().stats(); }
void empty_device_cache() { allocator().empty_cache(); }

#else

void* allocate_device(size_t bytes) {
  fail("cannot allocate ", bytes, " bytes on the GPU: this build of polytask has no CUDA support");
}
void release_device(void*) noexcept {}
DeviceMemoryStats device_memory_stats() { return {}; }
void empty_device_cache() {}

#endif

}  // namespace polytask
