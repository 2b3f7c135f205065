// Per-step values (the step number, loss seeds, optimiser constants) go to the device through
// one page-locked host allocation used as a ring of slots. cudaMemcpyAsync from pageable memory
// may make the driver copy into a staging buffer of its own and synchronise with the stream
// first, so a step that uploaded from pageable memory could wait for the GPU; from pinned
// memory the copy is queued and the call returns at once.
//
// Each upload writes its bytes into the next slot, queues slot -> device on cuda_stream() and
// records the slot's event behind that copy. A slot is written again only once its event has
// completed: the host waits there only when it is a whole ring ahead of the GPU, which normal
// running never is, and never overwrites bytes a queued copy has yet to read.
//
// Uploads happen outside CUDA graph captures: a captured copy from a slot would replay the
// slot's address, whose bytes later uploads have replaced. upload() refuses during a capture.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

struct CUevent_st;

namespace polytask {

class HostStaging {
 public:
  // `slots` slots of `slot_bytes` each, in one pinned allocation.
  HostStaging(size_t slot_bytes, int slots);
  // Waits for the copies still reading the ring, then frees it.
  ~HostStaging();
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  // Queues a copy of `bytes` from host `src` to device `device_dst` on cuda_stream(), through
  // the next slot; `src` may be reused as soon as this returns. `what` names the upload in
  // errors (too big for a slot, or made while capturing a CUDA graph).
  void upload(void* device_dst, const void* src, size_t bytes, const char* what);

  size_t slot_bytes() const { return slot_bytes_; }
  int slots() const { return int(events_.size()); }
  // How many uploads found their slot still being read and waited for it.
  int64_t waits() const {
    const std::lock_guard lock(mutex_);
    return waits_;
  }

 private:
  size_t slot_bytes_;
  unsigned char* ring_ = nullptr;    // slots * slot_bytes, page-locked
  std::vector<CUevent_st*> events_;  // per slot: recorded behind the last copy out of it
  mutable std::mutex mutex_;         // guards what follows
  std::vector<bool> in_use_;         // per slot: its event was recorded
  int next_ = 0;
  int64_t waits_ = 0;
};

// The engine's ring (created on first use, never freed: it lives as long as the CUDA context).
HostStaging& host_staging();

}  // namespace polytask
