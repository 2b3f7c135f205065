#include "kernels/cuda/emulator.h"

#include <ucontext.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace polytask::kernels::cuda::emulator {

namespace {

// Generous for kernels' register arrays (an 8x8 accumulator tile is 256 bytes) and the C
// library calls they make (expf, logf).
constexpr size_t kStackBytes = 64 * 1024;
constexpr unsigned kMaxThreadsPerBlock = 1024;

enum class State { Ready, AtBlockBarrier, AtWarpBarrier, AtWarpRelease, Done };

struct Fiber {
  ucontext_t context{};
  std::unique_ptr<char[]> stack;
  State state = State::Ready;
  dim3 thread;
};

struct Block {
  const char* op = "";
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  ucontext_t scheduler{};
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

cudaError_t& last_error() {
  static cudaError_t status = cudaSuccess;
  return status;
}

void fiber_entry() {
  Block& b = block();
  try {
    (*b.body)();
  } catch (...) {
    if (!b.error) b.error = std::current_exception();
  }
  b.fibers[b.current].state = State::Done;
  // uc_link returns to the scheduler.
}

void yield(State state) {
  Block& b = block();
  Fiber& f = b.fibers[b.current];
  f.state = state;
  swapcontext(&f.context, &b.scheduler);
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
      swapcontext(&b.scheduler, &b.fibers[t].context);
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
  const uint64_t threads = uint64_t(block_dim.x) * block_dim.y * block_dim.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535 || block_dim.z > 64) {
    last_error() = cudaErrorInvalidConfiguration;
    return;
  }
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

namespace {
struct Node {
  std::function<void()> run;  // a kernel over its grid, or a copy/memset
};
}  // namespace

}  // namespace polytask::kernels::cuda::emulator

struct CUgraph_st {
  std::vector<polytask::kernels::cuda::emulator::Node> nodes;
  bool invalidated = false;
};
struct CUgraphExec_st {
  std::vector<polytask::kernels::cuda::emulator::Node> nodes;
};

namespace polytask::kernels::cuda::emulator {
namespace {
// The graph being captured, and the stream it captures (one capture at a time).
CUgraph_st*& capturing_graph() {
  static CUgraph_st* graph = nullptr;
  return graph;
}
CUstream_st*& capturing_stream() {
  static CUstream_st* stream = nullptr;
  return stream;
}
// Some call that a GPU refuses during capture was made: the capture is invalidated.
cudaError_t refuse_during_capture() {
  if (!capturing_graph()) return cudaSuccess;
  capturing_graph()->invalidated = true;
  return cudaErrorStreamCaptureUnsupported;
}
// Runs `op` now, or records it when `stream` is capturing.
cudaError_t enqueue(CUstream_st* stream, std::function<void()> op) {
  if (capturing_graph() && stream == capturing_stream()) {
    capturing_graph()->nodes.push_back({std::move(op)});
    return cudaSuccess;
  }
  op();
  return cudaSuccess;
}
}  // namespace

void launch(const char* op, dim3 grid, dim3 block, unsigned shared_bytes, CUstream_st* stream,
            std::function<void()> body) {
  if (capturing_graph() && stream == capturing_stream()) {
    // Launch errors surface at capture, as on a GPU; the kernel runs at each graph launch.
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (threads == 0 || threads > kMaxThreadsPerBlock || grid.x == 0 || grid.y == 0 || grid.z == 0) {
      last_error() = cudaErrorInvalidConfiguration;
      return;
    }
    capturing_graph()->nodes.push_back(
        {[op, grid, block, shared_bytes, body = std::move(body)] { run(op, grid, block, shared_bytes, body); }});
    return;
  }
  run(op, grid, block, shared_bytes, body);
}

}  // namespace polytask::kernels::cuda::emulator

namespace emu = polytask::kernels::cuda::emulator;

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (emu::capturing_graph()) return cudaErrorStreamCaptureUnsupported;
  emu::capturing_graph() = new CUgraph_st;
  emu::capturing_stream() = stream;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!emu::capturing_graph() || stream != emu::capturing_stream()) return cudaErrorInvalidValue;
  CUgraph_st* captured = emu::capturing_graph();
  emu::capturing_graph() = nullptr;
  emu::capturing_stream() = nullptr;
  if (captured->invalidated) {
    delete captured;
    *graph = nullptr;
    return cudaErrorStreamCaptureInvalidated;
  }
  *graph = captured;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return cudaErrorInvalidValue;
  for (auto& node : exec->nodes) emu::enqueue(stream, node.run);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

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
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
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
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
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
  if (const cudaError_t refused = emu::refuse_during_capture()) return refused;
  // 256-byte alignment, as cudaMalloc guarantees; vectorised loads rely on it.
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (const cudaError_t refused = emu::refuse_during_capture()) return refused;
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  if (!bytes) return cudaSuccess;
  return emu::enqueue(stream, [dst, src, bytes] { std::memmove(dst, src, bytes); });
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (const cudaError_t refused = emu::refuse_during_capture()) return refused;
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (!bytes) return cudaSuccess;
  return emu::enqueue(stream, [p, value, bytes] { std::memset(p, value, bytes); });
}
cudaError_t cudaDeviceSynchronize() { return emu::refuse_during_capture(); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu::refuse_during_capture(); }
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  static char token;
  *stream = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = size_t(16) << 30;
  return cudaSuccess;
}

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
