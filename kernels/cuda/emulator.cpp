#include "kernels/cuda/emulator.h"
#include "kernels/cuda/emulator_internal.h"

#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "kernels/error.h"

// AddressSanitizer tracks one stack per thread; a swapcontext onto a fiber's stack it was not
// told about makes it report false stack overflows or use-after-returns, and an exception thrown
// on a fiber stack confuses its unpoisoning. Each switch is announced to it
// (sanitizer/common_interface_defs.h); without ASan the announcements compile to nothing.
#if defined(__SANITIZE_ADDRESS__)
#define POLYTASK_EMULATOR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POLYTASK_EMULATOR_ASAN 1
#endif
#endif
#ifdef POLYTASK_EMULATOR_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace polytask::kernels::cuda::emulator {

namespace {

// Before swapcontext: the stack about to run. `fake_stack` saves the current context's ASan
// fake stack (nullptr when the current context ends for good).
inline void switch_stack_begin([[maybe_unused]] void** fake_stack,
                               [[maybe_unused]] const void* bottom, [[maybe_unused]] size_t size) {
#ifdef POLYTASK_EMULATOR_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#endif
}
// After swapcontext returned (or at a fiber's first instruction): the stack we came from.
inline void switch_stack_end([[maybe_unused]] void* fake_stack,
                             [[maybe_unused]] const void** from_bottom,
                             [[maybe_unused]] size_t* from_size) {
#ifdef POLYTASK_EMULATOR_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, from_bottom, from_size);
#endif
}

// Generous for kernels' register arrays (an 8x8 accumulator tile is 256 bytes) and the C
// library calls they make (expf, logf).
constexpr size_t kStackBytes = 64 * 1024;
constexpr unsigned kMaxThreadsPerBlock = 1024;

enum class State { Ready, AtBlockBarrier, AtWarpBarrier, AtWarpRelease, Done };

struct Fiber {
  ucontext_t context{};
  std::unique_ptr<char[]> stack;
  void* fake_stack = nullptr;  // ASan's, while the fiber is switched out
  State state = State::Ready;
  dim3 thread;
};

struct Block {
  const char* op = "";
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  ucontext_t scheduler{};
  void* scheduler_fake_stack = nullptr;  // ASan's, while a fiber runs
  const void* scheduler_stack = nullptr;  // the scheduler's stack, as ASan reports it
  size_t scheduler_stack_size = 0;
  size_t current = 0;
  unsigned threads = 0;
  // 32 lanes x 8 bytes per warp for shuffles and ballots.
  std::vector<unsigned char> warp_slots;
  std::exception_ptr error;
};

Block& block() {
  static Block b;
  return b;
}

void fiber_entry() {
  Block& b = block();
  switch_stack_end(nullptr, &b.scheduler_stack, &b.scheduler_stack_size);
  try {
    (*b.body)();
  } catch (...) {
    if (!b.error) b.error = std::current_exception();
  }
  b.fibers[b.current].state = State::Done;
  // uc_link returns to the scheduler; this fiber's stack frames end here.
  switch_stack_begin(nullptr, b.scheduler_stack, b.scheduler_stack_size);
}

void yield(State state) {
  Block& b = block();
  Fiber& f = b.fibers[b.current];
  f.state = state;
  switch_stack_begin(&f.fake_stack, b.scheduler_stack, b.scheduler_stack_size);
  swapcontext(&f.context, &b.scheduler);
  switch_stack_end(f.fake_stack, &b.scheduler_stack, &b.scheduler_stack_size);
}

// POLYTASK_EMULATOR_SCHEDULE=reverse runs the threads of each phase from the last to the
// first. CTest runs every emulated test both ways: a race where a thread reads what a later
// thread writes without a barrier between (or overwrites what an earlier one still has to
// read) gives wrong results in one of the two orders.
bool schedule_reversed() {
  static const bool reversed = [] {
    const char* env = std::getenv("POLYTASK_EMULATOR_SCHEDULE");
    return env && std::string(env) == "reverse";
  }();
  return reversed;
}

unsigned warp_of(size_t fiber) { return unsigned(fiber / 32); }

// Releases a barrier whose every live participant waits at it. Returns false on a deadlock.
bool release_barriers() {
  Block& b = block();
  bool any_live = false, all_at_block = true;
  for (const Fiber& f : b.fibers) {
    if (f.state == State::Done) continue;
    any_live = true;
    if (f.state != State::AtBlockBarrier) all_at_block = false;
  }
  if (!any_live) return true;
  if (all_at_block) {
    for (Fiber& f : b.fibers)
      if (f.state == State::AtBlockBarrier) f.state = State::Ready;
    return true;
  }
  bool released = false;
  const size_t warps = (b.fibers.size() + 31) / 32;
  for (size_t w = 0; w < warps; ++w) {
    const size_t begin = w * 32, end = std::min(b.fibers.size(), begin + 32);
    for (State wanted : {State::AtWarpBarrier, State::AtWarpRelease}) {
      bool all = true, some = false;
      for (size_t i = begin; i < end; ++i) {
        if (b.fibers[i].state == State::Done) continue;
        some = true;
        if (b.fibers[i].state != wanted) all = false;
      }
      if (some && all) {
        for (size_t i = begin; i < end; ++i)
          if (b.fibers[i].state == wanted) b.fibers[i].state = State::Ready;
        released = true;
      }
    }
  }
  return released;
}

uint64_t& block_counter() {
  static uint64_t count = 0;
  return count;
}

void run_block(const char* op, dim3 block_index, dim3 block_dim) {
  Block& b = block();
  blockIdx = block_index;
  ++block_counter();
  size_t i = 0;
  for (unsigned z = 0; z < block_dim.z; ++z)
    for (unsigned y = 0; y < block_dim.y; ++y)
      for (unsigned x = 0; x < block_dim.x; ++x, ++i) {
        Fiber& f = b.fibers[i];
        f.state = State::Ready;
        f.thread = dim3(x, y, z);
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.get();
        f.context.uc_stack.ss_size = kStackBytes;
        f.context.uc_link = &b.scheduler;
        makecontext(&f.context, fiber_entry, 0);
      }
  const bool reverse = schedule_reversed();
  for (;;) {
    bool ran = false;
    for (size_t i = 0; i < b.fibers.size(); ++i) {
      const size_t t = reverse ? b.fibers.size() - 1 - i : i;
      if (b.fibers[t].state != State::Ready) continue;
      b.current = t;
      threadIdx = b.fibers[t].thread;
      switch_stack_begin(&b.scheduler_fake_stack, b.fibers[t].stack.get(), kStackBytes);
      swapcontext(&b.scheduler, &b.fibers[t].context);
      switch_stack_end(b.scheduler_fake_stack, nullptr, nullptr);
      ran = true;
      if (b.error) std::rethrow_exception(b.error);
    }
    if (ran) continue;
    bool done = true;
    for (const Fiber& f : b.fibers) done = done && f.state == State::Done;
    if (done) return;
    if (!release_barriers())
      fail(op, ": emulated kernel deadlocked in block (", block_index.x, ", ", block_index.y, ", ",
           block_index.z, "): its threads wait at different barriers (a __syncthreads or a "
           "warp intrinsic in divergent code?)");
  }
}

}  // namespace

cudaError_t& last_error() {
  static cudaError_t status = cudaSuccess;
  return status;
}

cudaError_t report(cudaError_t status) {
  if (status != cudaSuccess) last_error() = status;
  return status;
}

bool valid_launch(dim3 grid, dim3 block_dim) {
  const uint64_t threads = uint64_t(block_dim.x) * block_dim.y * block_dim.z;
  return threads != 0 && threads <= kMaxThreadsPerBlock && grid.x != 0 && grid.y != 0 &&
         grid.z != 0 && grid.y <= 65535 && grid.z <= 65535 && block_dim.z <= 64;
}

void block_barrier() { yield(State::AtBlockBarrier); }

unsigned lane_id() { return unsigned(block().current % 32); }

uint64_t blocks_started() { return block_counter(); }

const unsigned char* warp_exchange(const void* value, size_t bytes) {
  Block& b = block();
  const size_t me = b.current;
  std::memcpy(&b.warp_slots[me / 32 * 256 + me % 32 * 8], value, bytes);
  yield(State::AtWarpBarrier);
  return &b.warp_slots[warp_of(me) * 256];
}

void warp_release() { yield(State::AtWarpRelease); }

void run(const char* op, dim3 grid, dim3 block_dim, unsigned shared_bytes,
         const std::function<void()>& body) {
  if (!valid_launch(grid, block_dim)) {
    report(cudaErrorInvalidConfiguration);
    return;
  }
  const uint64_t threads = uint64_t(block_dim.x) * block_dim.y * block_dim.z;
  if (shared_bytes != 0)
    fail(op, ": the CUDA emulator does not support dynamic shared memory (", shared_bytes,
         " bytes asked)");
  Block& b = block();
  b.op = op;
  b.body = &body;
  b.error = nullptr;
  if (b.fibers.size() != threads) {
    b.fibers.resize(threads);
    for (Fiber& f : b.fibers)
      if (!f.stack) f.stack.reset(new char[kStackBytes]);
  }
  b.warp_slots.assign((threads + 31) / 32 * 256, 0);
  blockDim = block_dim;
  gridDim = grid;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) run_block(op, dim3(x, y, z), block_dim);
}

}  // namespace polytask::kernels::cuda::emulator

namespace emu = polytask::kernels::cuda::emulator;

unsigned __ballot_sync(unsigned, int predicate) {
  const unsigned char* slots = emu::warp_exchange(&predicate, sizeof(predicate));
  unsigned bits = 0;
  for (unsigned lane = 0; lane < 32; ++lane) {
    int p = 0;
    std::memcpy(&p, slots + lane * 8, sizeof(p));
    if (p) bits |= 1u << lane;
  }
  emu::warp_release();
  return bits;
}

const char* cudaGetErrorName(cudaError_t status) {
  switch (status) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t status) {
  switch (status) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnmatched: return "the capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t status = emu::last_error();
  emu::last_error() = cudaSuccess;
  return status;
}
cudaError_t cudaPeekAtLastError() { return emu::last_error(); }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (const cudaError_t refused = emu::refuse_potentially_unsafe_call()) return refused;
  // 256-byte alignment, as cudaMalloc guarantees; vectorised loads rely on it.
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!*p) return emu::report(cudaErrorMemoryAllocation);
  emu::note_device_allocation(*p, bytes);
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (const cudaError_t refused = emu::refuse_potentially_unsafe_call()) return refused;
  emu::run_pending();  // as on a GPU, freeing waits for the work that may still use it
  emu::forget_device_allocation(p);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (const cudaError_t refused = emu::refuse_synchronous_call()) return refused;
  emu::run_pending();
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  if (!bytes) return cudaSuccess;
  return emu::enqueue(stream, emu::async_copy(dst, src, bytes, emu::captures(stream)));
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (const cudaError_t refused = emu::refuse_synchronous_call()) return refused;
  emu::run_pending();
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (!bytes) return cudaSuccess;
  return emu::enqueue(stream, [p, value, bytes] { std::memset(p, value, bytes); });
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = size_t(16) << 30;
  return cudaSuccess;
}

// ==== pinned host memory and events ========================================================

struct CUevent_st {
  uint64_t position = 0;  // stream operations submitted before the last record
  bool captured = false;  // last recorded on a capturing stream
};

namespace polytask::kernels::cuda::emulator {
namespace {

// Address ranges (start -> bytes) of device and of pinned host allocations.
using Ranges = std::map<uintptr_t, size_t>;
struct Allocations {
  std::mutex mutex;
  Ranges device, pinned;
};
Allocations& allocations() {
  static Allocations a;
  return a;
}
bool within(const Ranges& ranges, const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  auto it = ranges.upper_bound(address);
  if (it == ranges.begin()) return false;
  --it;
  return address < it->first + std::max<size_t>(it->second, 1);
}

// The stream's work in submission order; `completed` of `submitted` operations have run.
struct WorkQueue {
  bool deferred = false;
  std::deque<std::function<void()>> pending;
  uint64_t submitted = 0, completed = 0;
};
WorkQueue& work() {
  static WorkQueue q;
  return q;
}

void run_pending_until(uint64_t position) {
  WorkQueue& q = work();
  while (q.completed < position && !q.pending.empty()) {
    const std::function<void()> op = std::move(q.pending.front());
    q.pending.pop_front();
    ++q.completed;
    op();
  }
}

std::atomic<int64_t>& pageable_copy_counter() {
  static std::atomic<int64_t> count{0};
  return count;
}

}  // namespace

void submit(std::function<void()> op) {
  WorkQueue& q = work();
  ++q.submitted;
  if (q.deferred) {
    q.pending.push_back(std::move(op));
    return;
  }
  ++q.completed;
  op();
}

void run_pending() { run_pending_until(work().submitted); }

std::function<void()> async_copy(void* dst, const void* src, size_t bytes, bool captured) {
  bool from_pageable_to_device = false;
  {
    Allocations& a = allocations();
    const std::lock_guard lock(a.mutex);
    from_pageable_to_device =
        within(a.device, dst) && !within(a.device, src) && !within(a.pinned, src);
  }
  if (from_pageable_to_device && work().deferred && !captured) {
    // A driver stages pageable bytes before the call returns: the host may reuse them at once.
    auto staged = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
    return [dst, staged] {
      pageable_copy_counter().fetch_add(1, std::memory_order_relaxed);
      std::memcpy(dst, staged->data(), staged->size());
    };
  }
  return [dst, src, bytes, from_pageable_to_device] {
    if (from_pageable_to_device) pageable_copy_counter().fetch_add(1, std::memory_order_relaxed);
    std::memmove(dst, src, bytes);
  };
}

void note_device_allocation(const void* p, size_t bytes) {
  Allocations& a = allocations();
  const std::lock_guard lock(a.mutex);
  a.device[reinterpret_cast<uintptr_t>(p)] = bytes;
}

void forget_device_allocation(const void* p) {
  Allocations& a = allocations();
  const std::lock_guard lock(a.mutex);
  a.device.erase(reinterpret_cast<uintptr_t>(p));
}

int64_t pageable_async_copies() { return pageable_copy_counter().load(std::memory_order_relaxed); }

void set_deferred_execution(bool deferred) {
  if (!deferred) run_pending();
  work().deferred = deferred;
}

size_t pending_operations() { return work().pending.size(); }

}  // namespace polytask::kernels::cuda::emulator

cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, cudaHostAllocDefault); }

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  if (const cudaError_t refused = emu::refuse_potentially_unsafe_call()) return refused;
  constexpr size_t kPage = 4096;  // page-locked memory comes in whole pages
  *p = std::aligned_alloc(kPage, (std::max<size_t>(bytes, 1) + kPage - 1) / kPage * kPage);
  if (!*p) return cudaErrorMemoryAllocation;
  emu::Allocations& a = emu::allocations();
  const std::lock_guard lock(a.mutex);
  a.pinned[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  emu::run_pending();  // queued copies may still read it
  {
    emu::Allocations& a = emu::allocations();
    const std::lock_guard lock(a.mutex);
    if (a.pinned.erase(reinterpret_cast<uintptr_t>(p)) == 0) return cudaErrorInvalidValue;
  }
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return cudaErrorInvalidValue;
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return cudaErrorInvalidValue;
  if (emu::captures(stream)) {
    event->captured = true;  // it now stands for part of the graph, not for stream work
    return cudaSuccess;
  }
  event->captured = false;
  event->position = emu::work().submitted;
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidValue;
  if (event->captured) return cudaErrorCapturedEvent;
  return emu::work().completed >= event->position ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidValue;
  if (event->captured) return cudaErrorCapturedEvent;
  emu::run_pending_until(event->position);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
// ==== end of pinned host memory and events =================================================
// ---- device properties ------------------------------------------------------------------
namespace polytask::kernels::cuda::emulator {
namespace {
FakeDevice& faked() {
  static FakeDevice device;
  return device;
}
}  // namespace

void fake_device(const FakeDevice& device) { faked() = device; }

cudaError_t function_attributes(cudaFuncAttributes* attributes) {
  if (!faked().kernel_image) return cudaErrorNoKernelImageForDevice;
  *attributes = {};
  attributes->maxThreadsPerBlock = int(kMaxThreadsPerBlock);
  attributes->ptxVersion = attributes->binaryVersion = faked().major * 10 + faked().minor;
  return cudaSuccess;
}
}  // namespace polytask::kernels::cuda::emulator

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  const emu::FakeDevice& faked = emu::faked();
  *prop = {};
  std::strncpy(prop->name, faked.name, sizeof(prop->name) - 1);
  prop->totalGlobalMem = size_t(16) << 30;  // as cudaMemGetInfo reports
  prop->major = faked.major;
  prop->minor = faked.minor;
  prop->multiProcessorCount = 1;  // blocks run one at a time
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = emu::faked().major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = emu::faked().minor; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
