// A CPU emulator for our CUDA kernel sources, so that the kernel logic (indexing, tiling edges,
// shared-memory staging, barriers, warp shuffles, reductions) is tested on machines without a
// GPU, CI included. The same kernels/cuda/*.cu files compile as plain C++ against this header
// (POLYTASK_CUDA_EMULATION); kernels/cuda/launch.h then runs each launch here.
//
// How it runs: blocks one after another; the threads of a block as cooperative fibers
// (ucontext), each running until it reaches __syncthreads, a warp-synchronous intrinsic or its
// end. A barrier releases only when every live thread of the block (or lane of the warp) waits
// at it, so a missing __syncthreads shows up as wrong results, and threads waiting at different
// barriers are reported as an error instead of hanging.
//
// Threads run in index order, or in reverse with POLYTASK_EMULATOR_SCHEDULE=reverse; CTest runs
// the emulated tests both ways, which exposes a missing barrier in either direction (a read
// before a later thread's write, or a write over what an earlier thread has yet to read).
//
// What it cannot find: races that only other interleavings expose, memory ordering, timing,
// and register or shared-memory limits. `__shared__` becomes `static`, which
// is right because blocks run one at a time. Not supported: dynamic (extern) shared memory,
// inline PTX, cooperative groups.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

struct CUstream_st;

// ---- CUDA language surface --------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

// The built-in index variables; the scheduler sets them before it resumes a thread.
inline dim3 threadIdx, blockIdx, blockDim, gridDim;
inline constexpr int warpSize = 32;

namespace polytask::kernels::cuda::emulator {

void block_barrier();
// Every live lane of the calling thread's warp stores `bytes` from `value` into its slot, then
// all wait; `slots` then shows all 32 lanes' values until the closing warp_release().
const unsigned char* warp_exchange(const void* value, size_t bytes);
void warp_release();
unsigned lane_id();
// How many blocks the emulator has started so far: state kept per block (the wmma argument
// checks of emulator_wmma.h) resets when this changes.
uint64_t blocks_started();

// Runs body() once per thread of every block of the grid.
void run(const char* op, dim3 grid, dim3 block, unsigned shared_bytes,
         const std::function<void()>& body);
// run(), or, while `stream` is being captured into a graph (cudaStreamBeginCapture), a node of
// that graph which cudaGraphLaunch runs.
void launch(const char* op, dim3 grid, dim3 block, unsigned shared_bytes, CUstream_st* stream,
            std::function<void()> body);

template <class T>
T shuffle_from(T value, unsigned src_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  const unsigned char* slots = warp_exchange(&value, sizeof(T));
  T out;
  std::memcpy(&out, slots + size_t(src_lane % 32) * 8, sizeof(T));
  warp_release();
  return out;
}

}  // namespace polytask::kernels::cuda::emulator

inline void __syncthreads() { polytask::kernels::cuda::emulator::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) {
  int unused = 0;
  polytask::kernels::cuda::emulator::warp_exchange(&unused, sizeof(unused));
  polytask::kernels::cuda::emulator::warp_release();
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned, T value, int src_lane, int width = 32) {
  const unsigned lane = polytask::kernels::cuda::emulator::lane_id();
  const unsigned base = lane / unsigned(width) * unsigned(width);
  return polytask::kernels::cuda::emulator::shuffle_from(value, base + unsigned(src_lane) % unsigned(width));
}
template <class T>
T __shfl_down_sync(unsigned, T value, unsigned delta, int width = 32) {
  const unsigned lane = polytask::kernels::cuda::emulator::lane_id();
  const unsigned end = lane / unsigned(width) * unsigned(width) + unsigned(width);
  const unsigned src = lane + delta < end ? lane + delta : lane;
  return polytask::kernels::cuda::emulator::shuffle_from(value, src);
}
template <class T>
T __shfl_up_sync(unsigned, T value, unsigned delta, int width = 32) {
  const unsigned lane = polytask::kernels::cuda::emulator::lane_id();
  const unsigned base = lane / unsigned(width) * unsigned(width);
  const unsigned src = lane >= base + delta ? lane - delta : lane;
  return polytask::kernels::cuda::emulator::shuffle_from(value, src);
}
template <class T>
T __shfl_xor_sync(unsigned, T value, int lane_mask, int width = 32) {
  const unsigned lane = polytask::kernels::cuda::emulator::lane_id();
  const unsigned base = lane / unsigned(width) * unsigned(width);
  const unsigned src = lane ^ unsigned(lane_mask);
  return polytask::kernels::cuda::emulator::shuffle_from(
      value, src >= base && src < base + unsigned(width) ? src : lane);
}
unsigned __ballot_sync(unsigned mask, int predicate);
inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) == __ballot_sync(mask, 1); }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0u; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }

template <class T>
T __ldg(const T* p) { return *p; }

// Math the kernels use that the C library lacks, or spells differently.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
// Round-to-nearest arithmetic the compiler may not contract (x86-64 without -mfma never does).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline unsigned __float_as_uint(float f) { unsigned x; std::memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }

// Atomics: threads never run at the same time here, so plain read-modify-write is atomic.
template <class T>
T atomicAdd(T* p, T v) { const T old = *p; *p = old + v; return old; }
template <class T>
T atomicMax(T* p, T v) { const T old = *p; *p = old > v ? old : v; return old; }
template <class T>
T atomicMin(T* p, T v) { const T old = *p; *p = old < v ? old : v; return old; }
template <class T>
T atomicExch(T* p, T v) { const T old = *p; *p = v; return old; }
template <class T>
T atomicCAS(T* p, T compare, T v) { const T old = *p; if (old == compare) *p = v; return old; }

// Tensor-core fragments (nvcuda::wmma) for the TF32/BF16 kernels.
#include "kernels/cuda/emulator_wmma.h"

// ---- CUDA runtime surface (host memory stands in for device memory) ----------------------
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
  // Stream capture (see the capture rules below).
  cudaErrorIllegalState = 401,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorCapturedEvent = 907,
  cudaErrorStreamCaptureWrongThread = 908,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

const char* cudaGetErrorName(cudaError_t status);
const char* cudaGetErrorString(cudaError_t status);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

// ---- Streams and stream capture (kernels/cuda/emulator_capture.cpp) ----------------------
//
// Each created stream is its own object; nullptr and cudaStreamLegacy are the legacy default
// stream. Outside a capture every stream runs its work at once, in call order (the emulator is
// serial, which is one valid order of independent streams). While a stream captures, kernel
// launches and async copies/memsets on it become nodes of its graph, which cudaGraphLaunch
// runs. Calls a GPU refuses during capture fail here with the same error code and invalidate the
// capture where the CUDA Programming Guide says they do, so tests catch a step that a GPU would
// refuse to capture.
//
// The rules, from the CUDA Programming Guide (CUDA Graphs, "Stream Capture": "Prohibited and
// Unhandled Operations", "Invalidation") and the runtime API reference in CUDA 13's
// cuda_runtime_api.h (cudaStreamBeginCapture, cudaStreamEndCapture, cudaStreamIsCapturing,
// cudaStreamGetCaptureInfo, cudaThreadExchangeStreamCaptureMode); the error codes where the
// reference names none are those ROCm's hip-tests expect on NVIDIA too (hipStreamBeginCapture.cc,
// hipStreamEndCapture.cc):
// - Synchronising or querying a capturing stream (cudaStreamSynchronize, cudaStreamQuery) is
//   invalid: cudaErrorStreamCaptureUnsupported, and the capture is invalidated. So is
//   synchronising the device while any stream captures (cudaDeviceSynchronize), in every mode:
//   it invalidates every capture.
// - While a stream created without cudaStreamNonBlocking captures, any use of the legacy stream
//   (a launch, an async copy, a synchronisation or query, the synchronous cudaMemcpy and
//   cudaMemset, which run on it) would depend on the capture: cudaErrorStreamCaptureImplicit,
//   and those captures are invalidated. cudaStreamIsCapturing / cudaStreamGetCaptureInfo on the
//   legacy stream then return cudaErrorStreamCaptureImplicit without invalidating anything.
// - "Potentially unsafe" calls, which the capture does not see, fail with cudaErrorStreamCaptureUnsupported and
//   invalidate the capture that forbids them, according to the calling thread's mode
//   (cudaThreadExchangeStreamCaptureMode, Global by default): Global forbids them while this
//   thread has a capture not begun as Relaxed, or another thread has a Global one; ThreadLocal
//   only the former; Relaxed never. The reference names only cudaMalloc as such a call; the
//   emulator treats cudaFree and the synchronous cudaMemcpy/cudaMemset alike (they wait for
//   the device). A synchronous copy or memset during a blocking stream's capture gets
//   cudaErrorStreamCaptureImplicit (the legacy-stream rule is checked first: our choice).
// - Every refused call is also remembered for cudaGetLastError, as the runtime does for any
//   failed call, so an ignored refusal resurfaces at the next launch check.
// - After invalidation, further work on the capturing stream fails with
//   cudaErrorStreamCaptureInvalidated until cudaStreamEndCapture, which ends the capture,
//   returns cudaErrorStreamCaptureInvalidated and a null graph.
// - cudaStreamBeginCapture: not on the legacy stream (cudaErrorStreamCaptureUnsupported), not
//   on a stream already capturing (cudaErrorIllegalState). cudaStreamEndCapture: on a stream
//   that is not capturing, cudaErrorIllegalState; from another thread than the one that began
//   a non-Relaxed capture, cudaErrorStreamCaptureWrongThread (the capture goes on).
//
// What it cannot detect: events and cross-stream dependencies (no cudaEventRecord /
// cudaStreamWaitEvent in capture, so no captured events, joins, cudaErrorStreamCaptureUnjoined
// or Unmatched), per-thread default streams, races between threads, and anything the real
// driver refuses that is not listed above (texture references, cudaStreamAttachMemAsync,
// pageable host memory read by a replayed copy). Destroying a capturing stream discards its
// capture.
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(uintptr_t{1}))

struct CUgraph_st;
struct CUgraphExec_st;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};

cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, cudaStreamCaptureStatus* status,
                                     unsigned long long* id = nullptr);
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
// ---- end of streams and stream capture --------------------------------------------------

// ==== pinned host memory and events =================================================// Page-locked host memory is ordinary host memory here, but the emulator remembers its ranges:
// an async copy into device memory from anything else (pageable memory, which a GPU driver may
// stage through a buffer of its own and synchronise for) is counted, so tests can prove that a
// training step never copies from pageable memory.
//
// Events mark a point of the stream's work. Work runs at once unless a test defers it
// (set_deferred_execution), so that a queue the host runs ahead of can be emulated; then an
// event is complete once the work queued before its record has run, and waiting for it runs
// that work. As on a GPU, recording an event on a capturing stream adds no node: the event
// then belongs to the capture, and querying or waiting for it fails with
// cudaErrorCapturedEvent until it is recorded outside a capture again.
enum cudaHostAllocFlags : unsigned {
  cudaHostAllocDefault = 0,
  cudaHostAllocPortable = 1,
  cudaHostAllocMapped = 2,
  cudaHostAllocWriteCombined = 4,
};
enum cudaEventFlags : unsigned {
  cudaEventDefault = 0,
  cudaEventBlockingSync = 1,
  cudaEventDisableTiming = 2,
};

cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventDestroy(cudaEvent_t event);

namespace polytask::kernels::cuda::emulator {
// How many cudaMemcpyAsync calls so far copied from pageable (not cudaMallocHost /
// cudaHostAlloc) host memory into device memory.
int64_t pageable_async_copies();
// While on, stream work (kernels, async copies and memsets) queues instead of running; it runs,
// in order, when something waits for it (a stream, device or event synchronisation, a
// synchronous copy) or when deferral is switched off. An async copy from pageable memory takes
// its bytes at the call, as a driver's staging does; one from pinned memory reads them when it
// runs, so a host that overwrites pinned memory too early is caught.
void set_deferred_execution(bool deferred);
// Stream work queued and not yet run.
size_t pending_operations();
}  // namespace polytask::kernels::cuda::emulator
// ==== end of pinned host memory and events =================================================

// ---- device properties ------------------------------------------------------------------
// What the engine's start-up check (engine/device.h) asks about the GPU: its name and compute
// capability, and whether our kernel image loads on it. The emulator answers as a compute
// capability 9.0 GPU that loads every kernel, unless a test fakes another with
// polytask::kernels::cuda::emulator::fake_device (a 6.1 GPU, a 7.5 one, a missing image...).
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major;
  int minor;
  int multiProcessorCount;
};
struct cudaFuncAttributes {
  size_t sharedSizeBytes;
  int maxThreadsPerBlock;
  int numRegs;
  int ptxVersion;
  int binaryVersion;
};
enum cudaDeviceAttr {
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
};

namespace polytask::kernels::cuda::emulator {
struct FakeDevice {
  const char* name = "polytask CPU emulator";
  int major = 9, minor = 0;
  // false: cudaFuncGetAttributes answers cudaErrorNoKernelImageForDevice, as the runtime does
  // when the fatbinary holds neither SASS for the GPU nor PTX it can compile.
  bool kernel_image = true;
};
// The device the property queries describe from now on; fake_device({}) restores the default.
void fake_device(const FakeDevice& device);
cudaError_t function_attributes(cudaFuncAttributes* attributes);
}  // namespace polytask::kernels::cuda::emulator

cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
// Every kernel is the same C++ here: the answer depends only on the faked device.
template <class Kernel>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, Kernel*) {
  return polytask::kernels::cuda::emulator::function_attributes(attributes);
}
