#include "engine/host_staging.h"

#include <cstring>

#include "engine/cuda_graph.h"
#include "engine/device.h"
#include "kernels/error.h"

#if defined(POLYTASK_WITH_CUDA)
#include "kernels/cuda/check.h"
#endif

namespace polytask {

#if defined(POLYTASK_WITH_CUDA)

HostStaging::HostStaging(size_t slot_bytes, int slots)
    : slot_bytes_(slot_bytes), events_(size_t(slots > 0 ? slots : 0), nullptr),
      in_use_(events_.size(), false) {
  if (slot_bytes == 0 || slots <= 0)
    fail("host staging: a ring needs slots of at least one byte, got ", slots, " slots of ",
         slot_bytes, " bytes");
  if (!cuda_available()) fail("host staging: ", cuda_unavailable_reason());
  void* ring = nullptr;
  POLYTASK_CUDA_CHECK(cudaHostAlloc(&ring, slot_bytes * size_t(slots), cudaHostAllocDefault));
  ring_ = static_cast<unsigned char*>(ring);
  try {
    // Timing-free events: only completion is asked of them, which is cheaper to record.
    for (CUevent_st*& event : events_)
      POLYTASK_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  } catch (...) {
    for (CUevent_st* event : events_)
      if (event) cudaEventDestroy(event);
    cudaFreeHost(ring_);
    throw;
  }
}

HostStaging::~HostStaging() {
  // No exceptions from a destructor: a failed wait leaves nothing better to do than free.
  for (size_t i = 0; i < events_.size(); ++i) {
    if (in_use_[i]) cudaEventSynchronize(events_[i]);
    cudaEventDestroy(events_[i]);
  }
  cudaFreeHost(ring_);
}

void HostStaging::upload(void* device_dst, const void* src, size_t bytes, const char* what) {
  if (bytes == 0) return;
  if (bytes > slot_bytes_)
    fail(what, ": ", bytes, " bytes do not fit a host staging slot of ", slot_bytes_, " bytes");
  if (capturing_cuda_graph())
    fail(what, ": staged while capturing a CUDA graph, which would record a copy from a staging "
         "slot and replay its address; stage before the capture");
  // Two networks training on two threads share the ring: one upload at a time takes a slot.
  const std::lock_guard lock(mutex_);
  const size_t slot = size_t(next_);
  next_ = (next_ + 1) % slots();
  CUevent_st* const event = events_[slot];
  if (in_use_[slot]) {
    // The copy that last read this slot may still be queued: the host is a whole ring ahead.
    const cudaError_t status = cudaEventQuery(event);
    if (status == cudaErrorNotReady) {
      // Not a failure, but the runtime may keep it as the last error, which the next kernel
      // launch's check (kernels/cuda/launch.cu) would then report: clear it.
      (void)cudaGetLastError();
      ++waits_;
      POLYTASK_CUDA_CHECK(cudaEventSynchronize(event));
    } else {
      POLYTASK_CUDA_CHECK(status);
    }
  }
  unsigned char* const staged = ring_ + slot * slot_bytes_;
  std::memcpy(staged, src, bytes);
  const cudaStream_t stream = cuda_stream();
  POLYTASK_CUDA_CHECK(cudaMemcpyAsync(device_dst, staged, bytes, cudaMemcpyHostToDevice, stream));
  POLYTASK_CUDA_CHECK(cudaEventRecord(event, stream));
  in_use_[slot] = true;
}

HostStaging& host_staging() {
  // 256 slots of 1 KiB: a step uploads twice (network, optimiser), so the host may run 128
  // steps ahead before it waits; a slot holds the step and the seeds of up to 254 tasks.
  static HostStaging* const ring = new HostStaging(1024, 256);
  return *ring;
}

#else

HostStaging::HostStaging(size_t slot_bytes, int) : slot_bytes_(slot_bytes) {
  fail("host staging needs CUDA: ", cuda_unavailable_reason());
}
HostStaging::~HostStaging() = default;
void HostStaging::upload(void*, const void*, size_t, const char* what) {
  fail(what, ": host staging needs CUDA: ", cuda_unavailable_reason());
}
HostStaging& host_staging() { fail("host staging needs CUDA: ", cuda_unavailable_reason()); }

#endif

}  // namespace polytask
